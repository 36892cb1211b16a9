# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Trained fusion strategies: a meta-learner over scores and attention over embeddings.

Both read their weights from files that hold plain arrays only (numpy .npz read with
allow_pickle=False, or torch files read with weights_only=True), so a model file can never
run code. training.py writes these files.

Both update their fused state by deltas (fuse_delta): the meta-learner keeps the sum of
the modalities' first-layer terms, attention its softmax-weighted sum of values (delta.py);
an arrival replaces one term. `fuse` recomputes from scratch: the reference.
"""

from collections.abc import Mapping as MappingABC
import math
import os
import pickle
from typing import Dict, Iterator, Mapping, Sequence
import zipfile

import numpy as np

from . import datatypes as t
from .datatypes import ModalityConfig
from .delta import DecayedSoftmaxSum, RunningSum
from .strategies import argmax_fused, Strategy


def load_arrays(path: str) -> Dict[str, object]:
    """Load a dict of arrays (and string lists) from .npz or a torch file, without pickle."""
    if not path or not os.path.isfile(path):
        raise ValueError(f'model file not found: {path!r}')
    try:
        if path.endswith('.npz'):
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        import torch
        blob = torch.load(path, map_location='cpu', weights_only=True)
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        # Includes files holding anything but plain arrays: refused, never executed.
        raise ValueError(f'cannot load {path!r}: {exc}') from exc
    if not isinstance(blob, dict):
        raise ValueError(f'{path!r} does not hold a dict of arrays')
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in blob.items()}


def meta_feature_vector(features: Sequence[str], modalities: Sequence[str],
                        scores: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """
    Return the meta-learner's input for one moment.

    Layout: one score per entry of `features` ('modality/label'; 0 when the modality or
    label is missing), then one presence indicator per entry of `modalities` (1 when the
    modality is present and fresh). `scores` maps fresh modalities to {label: score}.
    """
    x = np.zeros(len(features) + len(modalities))
    for i, feature in enumerate(features):
        modality, label = feature.split('/', 1)
        x[i] = scores.get(modality, {}).get(label, 0.0)
    for j, modality in enumerate(modalities):
        x[len(features) + j] = 1.0 if modality in scores else 0.0
    return x


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class MetaLearner(Strategy):
    """
    Logistic regression (or a one-hidden-layer ReLU MLP) over per-modality scores.

    The input is meta_feature_vector (scores, 0 and a presence indicator of 0 for a missing
    or stale modality). The file (strategy_params 'model_path') holds 'features',
    'modalities', 'labels' (at least two) and 'weight' (K, H), 'bias' (K,), optionally
    'hidden_weight' (H, F) and 'hidden_bias' (H,). Output: softmax over 'labels'. Cached
    term per modality: its positions and values in the input (its scores, and 1 for its
    presence). The inputs of different modalities are disjoint, so the first layer is a sum
    over the modalities of each one's product with its own inputs: fuse_delta keeps that sum
    (delta.RunningSum) and an arrival replaces its modality's product, computed from its few
    inputs only, so the cost of an arrival does not grow with the model's input, which grows
    with the modalities.
    """

    name = 'meta_learner'
    PARAMS = {'model_path': ''}

    def __init__(self, params, modalities):
        """Load and check the model file."""
        super().__init__(params, modalities)
        w = load_arrays(self.params['model_path'])
        try:
            self.features = [str(f) for f in w['features']]
            self.modality_names = [str(m) for m in w['modalities']]
            self.labels = [str(label) for label in w['labels']]
            layers = [(np.asarray(w['hidden_weight'], np.float64),
                       np.asarray(w['hidden_bias'], np.float64))] if 'hidden_weight' in w else []
            layers.append((np.asarray(w['weight'], np.float64), np.asarray(w['bias'], np.float64)))
        except KeyError as exc:
            raise ValueError(f'meta_learner model lacks {exc}') from exc
        size = len(self.features) + len(self.modality_names)
        for weight, bias in layers:
            if weight.ndim != 2 or weight.shape[1] != size or bias.shape != weight.shape[:1]:
                raise ValueError(f'meta_learner layer shapes {weight.shape}, {bias.shape} '
                                 f'do not fit an input of {size}')
            size = weight.shape[0]
        if size != len(self.labels) or size < 2:
            raise ValueError('meta_learner needs one output per label and at least two labels')
        if any('/' not in f for f in self.features):
            raise ValueError("meta_learner features must read 'modality/label'")
        self._layers = layers
        self._positions = {}
        for i, feature in enumerate(self.features):
            modality, label = feature.split('/', 1)
            self._positions.setdefault(modality, {})[label] = i
        self._presence = {m: len(self.features) + j for j, m in enumerate(self.modality_names)}
        # The first layer's weights per input feature, contiguous: an arrival reads its rows.
        self._first_t = np.ascontiguousarray(layers[0][0].T)

    def project(self, inp):
        """Return (positions, values) in the model's input: the scores, and 1 for presence."""
        presence = self._presence.get(inp.modality)
        if presence is None and inp.modality not in self._positions:
            return None
        spots = self._positions.get(inp.modality, {})
        # A label given twice counts once, its last score (a feature holds one value).
        pairs = {spots[label]: s for label, s in zip(inp.labels, inp.scores) if label in spots}
        if presence is not None:
            pairs[presence] = 1.0
        pos = np.fromiter(pairs, np.intp, len(pairs))
        return pos, np.fromiter(pairs.values(), np.float64, len(pairs))

    def bind(self, names):
        """One term (input positions, values) per modality, and the first layer's sum."""
        super().bind(names)
        self._terms = [None] * len(self.names)
        self._first = RunningSum(len(self.names), self._first_t.shape[1])
        # Per modality, the first layer's rows of the features its last input had: an
        # encoder reports the same labels every time, so this is gathered once.
        self._rows_of = [(b'', None)] * len(self.names)

    def store(self, index, term):
        """Keep the modality's term (the engine calls put, with the stamp)."""
        self.put(index, term, None, 1.0)

    def put(self, index, term, stamp, confidence):
        """Keep the modality's term and its first-layer product (stamp: see RunningSum)."""
        super().store(index, term)
        self._terms[index] = term
        if term is None:
            self._first.put(index, None)
            return
        pos, values = term
        key, rows = self._rows_of[index]
        if key != pos.tobytes():
            key, rows = pos.tobytes(), self._first_t[pos]
            self._rows_of[index] = key, rows
        # The first layer's columns of this modality's inputs only.
        self._first.put(index, values @ rows, stamp)

    def fuse(self, weight, reliability, fresh):
        """Assemble the feature vector from the fresh modalities and run the model."""
        used = fresh & self.has_term
        if not used.any():
            return None
        # Positions are disjoint between modalities: each one writes its own features.
        x = np.zeros(len(self.features) + len(self.modality_names))
        for i in np.flatnonzero(used).tolist():
            pos, values = self._terms[i]
            x[pos] = values
        for i, (weight, bias) in enumerate(self._layers):
            x = weight @ x + bias
            if i < len(self._layers) - 1:
                x = np.maximum(x, 0.0)
        return argmax_fused(list(self.labels), _softmax(x))

    def fuse_delta(self, now, weight, reliability, fresh):
        """Run the model with its first layer's sum brought up to date term by term."""
        used = fresh & self.has_term
        if not used.any():
            return None
        x = self._first.total(used) + self._layers[0][1]
        for weight, bias in self._layers[1:]:
            x = weight @ np.maximum(x, 0.0) + bias
        return argmax_fused(list(self.labels), _softmax(x))


class AttentionWeights(MappingABC):
    """
    Attention per modality of one fused output: {modality: weight}, computed when read.

    Building a dict of every modality's weight on every arrival would make the arrival's
    cost grow with the number of modalities; this keeps a snapshot of the tokens' scores and
    weights at fusion time (two small arrays) and computes softmax(score + log(weight)) over
    the used tokens when first read, the same formula and numbers as fusing from scratch.
    Read-only; compares equal to a dict of the same items.
    """

    __slots__ = ('_names', '_rows', '_scores', '_weight', '_used', '_dict')

    def __init__(self, names: Sequence[str], rows: Sequence[int], scores: np.ndarray,
                 weight: np.ndarray, used: np.ndarray):
        """Keep the snapshot: modality names with their rows, scores, weights, used rows."""
        self._names, self._rows = names, rows
        self._scores, self._weight, self._used = scores, weight, used
        self._dict = None

    def _items(self) -> Dict[str, float]:
        if self._dict is None:
            used = np.flatnonzero(self._used)
            attn = np.zeros(len(self._weight))
            attn[used] = _softmax(self._scores[used] + np.log(self._weight[used]))
            self._dict = dict(zip(self._names, attn[self._rows].tolist()))
        return self._dict

    def __getitem__(self, name: str) -> float:
        """Return modality `name`'s attention weight (0 when masked)."""
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the modalities the model knows, in configuration order."""
        return iter(self._names)

    def __len__(self) -> int:
        """Return the number of modalities the model knows."""
        return len(self._names)

    def __repr__(self) -> str:
        """Show the weights as a dict."""
        return repr(self._items())


class Attention(Strategy):
    """
    Attention over per-modality embedding tokens (see attention_model.AttentionFusionModel).

    strategy_params 'model_path' names the model file. Cached term per modality: its token's
    attention score and value, i.e. the per-modality projection, the dominant cost. Fusing
    runs softmax attention over the fresh tokens with log(weight) as an additive bias, so a
    decaying modality fades smoothly and a stale or absent one is masked out. fuse_delta
    keeps the softmax-weighted sum of the values (delta.DecayedSoftmaxSum: per modality its
    score, value and weight's parts; the decay's time dependence factored out per decay
    setting, with a running maximum for stability) and an arrival replaces one term, instead
    of attending over all tokens again. Runs under torch.inference_mode(); the thread count
    is left to the caller. FusionResult.attention holds every known modality's attention
    weight (0 when masked), computed when read (AttentionWeights).
    """

    name = 'attention'
    PARAMS = {'model_path': ''}

    def __init__(self, params, modalities):
        """Load the model and check its embedding lengths against the configured dims."""
        super().__init__(params, modalities)
        if not self.params['model_path']:
            raise ValueError('attention: strategy_params.model_path is required')
        import torch
        from .attention_model import load_attention_model
        self._torch = torch
        self.model, self.labels = load_attention_model(self.params['model_path'])
        for cfg in self.modalities:
            known = self.model.dims.get(cfg.name)
            if cfg.dim and known is not None and known != cfg.dim:
                raise ValueError(f'attention: model expects {known} values for {cfg.name}, '
                                 f'configured dim is {cfg.dim}')
        self._configs = {cfg.name: cfg for cfg in self.modalities}
        self._head_weight = self.model.head.weight.detach().double().numpy()
        self._head_bias = self.model.head.bias.detach().double().numpy()

    def check(self, inp):
        """Reject embeddings whose length does not match the model's projection."""
        dim = self.model.dims.get(inp.modality)
        return t.WRONG_DIMENSION if dim is not None and inp.data.size != dim else ''

    def project(self, inp):
        """Project the embedding to its token; return (attention score, value vector)."""
        if inp.modality not in self.model.dims:
            return None
        data = inp.data if inp.data.flags.writeable else inp.data.copy()
        with self._torch.inference_mode():
            score, value = self.model.token(inp.modality, self._torch.from_numpy(data))
        return float(score), value.double().numpy()

    def bind(self, names):
        """One token (attention score, value vector) per modality, and the running sum."""
        super().bind(names)
        configs = [self._configs.get(name) or ModalityConfig(name) for name in self.names]
        self._prior = [cfg.prior for cfg in configs]
        self._scores = np.zeros(len(self.names))
        self._values = np.zeros((len(self.names), self._head_weight.shape[1]))
        self._sum = DecayedSoftmaxSum(configs, self._head_weight.shape[1])
        known = [i for i, name in enumerate(self.names) if name in self.model.dims]
        self._known = [self.names[i] for i in known]
        self._known_rows = known

    def store(self, index, term):
        """Keep the modality's token (the engine calls put, with the stamp and confidence)."""
        self.put(index, term, 0.0, 1.0)

    def put(self, index, term, stamp, confidence):
        """Keep the modality's token, and its term of the running sum (weight's parts)."""
        super().store(index, term)
        if term is None:
            self._sum.drop(index)
            return
        score, value = term
        self._scores[index], self._values[index] = term
        # log(prior * confidence) + score; the sum applies the decay at `now`.
        weight = self._prior[index] * confidence
        base = score + math.log(weight) if weight > 0.0 else -math.inf
        self._sum.put(index, base, stamp, value)

    def _fused(self, context, weight, used):
        probs = _softmax(self._head_weight @ context + self._head_bias)
        attention = AttentionWeights(self._known, self._known_rows, self._scores.copy(), weight,
                                     used)
        return argmax_fused(list(self.labels), probs, attention=attention)

    def fuse(self, weight, reliability, fresh):
        """Attend over the fresh tokens and classify (AttentionFusionModel.combine in numpy)."""
        used = fresh & self.has_term & (weight > 0.0)
        idx = np.flatnonzero(used)
        if not idx.size:
            return None
        # A handful of tiny tensors costs more in torch dispatch than the arithmetic itself,
        # so the pooling and head run in numpy on the model's own weights.
        attn = _softmax(self._scores[idx] + np.log(weight[idx]))
        return self._fused(attn @ self._values[idx], weight, used)

    def fuse_delta(self, now, weight, reliability, fresh):
        """fuse, with the softmax-weighted sum of values kept and updated term by term."""
        used = fresh & self.has_term & (weight > 0.0)
        context = self._sum.combine(now, used)
        if context is None:
            return None
        return self._fused(context, weight, used)
