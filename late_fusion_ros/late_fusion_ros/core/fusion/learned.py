# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Trained fusion strategies: a meta-learner over scores and attention over embeddings.

Both read their weights from files that hold plain arrays only (numpy .npz read with
allow_pickle=False, or torch files read with weights_only=True), so a model file can never
run code. training.py writes these files.
"""

import os
import pickle
from typing import Dict, Mapping, Sequence
import zipfile

import numpy as np

from . import datatypes as t
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
    term per modality: the feature positions and values of its scores.
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

    def project(self, inp):
        """Return (feature positions, scores, presence position) of the input."""
        if inp.modality not in self.modality_names and inp.modality not in self._positions:
            return None
        spots = self._positions.get(inp.modality, {})
        pairs = [(spots[label], s) for label, s in zip(inp.labels, inp.scores) if label in spots]
        pos = np.fromiter((p for p, _ in pairs), np.intp, len(pairs))
        values = np.fromiter((s for _, s in pairs), np.float64, len(pairs))
        presence = (len(self.features) + self.modality_names.index(inp.modality)
                    if inp.modality in self.modality_names else None)
        return pos, values, presence

    def bind(self, names):
        """One feature row per modality: its scores at their positions, its presence bit."""
        super().bind(names)
        self._rows = np.zeros((len(self.names), len(self.features) + len(self.modality_names)))

    def store(self, index, term):
        """Write the modality's feature row (positions are disjoint between modalities)."""
        super().store(index, term)
        row = self._rows[index]
        row[:] = 0.0
        if term is not None:
            pos, values, presence = term
            row[pos] = values
            if presence is not None:
                row[presence] = 1.0

    def fuse(self, weight, reliability, fresh):
        """Assemble the feature vector from the fresh modalities and run the model."""
        used = fresh & self.has_term
        if not used.any():
            return None
        x = used.astype(np.float64) @ self._rows
        for i, (weight, bias) in enumerate(self._layers):
            x = weight @ x + bias
            if i < len(self._layers) - 1:
                x = np.maximum(x, 0.0)
        return argmax_fused(list(self.labels), _softmax(x))


class Attention(Strategy):
    """
    Attention over per-modality embedding tokens (see attention_model.AttentionFusionModel).

    strategy_params 'model_path' names the model file. Cached term per modality: its token's
    attention score and value, i.e. the per-modality projection, the dominant cost. Fusing
    runs softmax attention over the fresh tokens with log(weight) as an additive bias, so a
    decaying modality fades smoothly and a stale or absent one is masked out. Runs under
    torch.inference_mode(); the thread count is left to the caller. FusionResult.attention
    holds every known modality's attention weight (0 when masked).
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
        self._known = [cfg.name for cfg in self.modalities if cfg.name in self.model.dims]
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
        """One token (attention score, value vector) per modality."""
        super().bind(names)
        self._scores = np.zeros(len(self.names))
        self._values = np.zeros((len(self.names), self._head_weight.shape[1]))

    def store(self, index, term):
        """Keep the modality's token."""
        super().store(index, term)
        if term is not None:
            self._scores[index], self._values[index] = term

    def fuse(self, weight, reliability, fresh):
        """Attend over the fresh tokens and classify (AttentionFusionModel.combine in numpy)."""
        used = np.flatnonzero(fresh & self.has_term & (weight > 0.0))
        if not used.size:
            return None
        # A handful of tiny tensors costs more in torch dispatch than the arithmetic itself,
        # so the pooling and head run in numpy on the model's own weights.
        attn = _softmax(self._scores[used] + np.log(weight[used]))
        context = attn @ self._values[used]
        probs = _softmax(self._head_weight @ context + self._head_bias)
        attention = dict.fromkeys(self._known, 0.0)
        attention.update(zip([self.names[i] for i in used], attn.tolist()))
        return argmax_fused(list(self.labels), probs, attention=attention)
