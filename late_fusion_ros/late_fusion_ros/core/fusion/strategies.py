# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Fusion strategies that need no training: weighted average, log-linear, speaking-to-robot.

A strategy splits fusion in two so that the engine can update state by deltas:
`project` turns one modality's input into a cached term (cost O(labels) or O(embedding)),
and `put` (`store` where the input's stamp and confidence do not matter) keeps it in the
strategy's per-modality arrays (row = the modality's index, given once by `bind`). `fuse`
combines the stored terms of the fresh modalities with their current weights from scratch,
in a few vectorised operations, so its cost does not grow with a Python loop over the
modalities; `fuse_delta`, what the engine calls on every arrival, may instead keep the
fused state and change only the terms that changed since the last call (the learned
strategies, whose fused state grows with the modalities, do: see delta.py); by default it
is `fuse`. The engine calls `project` only for the modality that arrived, and `fuse` only
as the reference (FusionEngine(fuse_from_scratch=True)).
"""

import math
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .datatypes import EmbeddingInput, ModalityConfig


class Fused(NamedTuple):
    """What a strategy returns; the engine wraps it into a FusionResult."""

    labels: List[str]
    scores: np.ndarray
    decision: str
    confidence: float
    attention: Dict[str, float] = {}


class Strategy:
    """
    Base class: parameter checking and the project / store / fuse contract.

    `fuse(weight, reliability, fresh)` gets one value per modality (in `bind` order):
    weight = prior * confidence * decay(age) and reliability = prior * decay(age), both 0
    for an absent or stale modality, and `fresh`, True where a modality is present and not
    stale. A modality whose stored term is None carries nothing for this strategy.
    """

    name = ''
    # Accepted strategy_params and their defaults; unknown keys are an error so typos surface.
    PARAMS: Dict[str, Any] = {}

    def __init__(self, params: dict, modalities: Sequence[ModalityConfig]):
        """Check `params` against PARAMS and keep the merged result in self.params."""
        unknown = set(params or {}) - set(self.PARAMS)
        if unknown:
            raise ValueError(f'{self.name}: unknown strategy_params {sorted(unknown)}')
        self.params = {**self.PARAMS, **(params or {})}
        self.modalities = list(modalities)
        self.names: List[str] = []
        self.has_term = np.zeros(0, bool)

    def bind(self, names: Sequence[str]) -> None:
        """Size the per-modality caches for `names` (the engine's modality order)."""
        self.names = list(names)
        self.has_term = np.zeros(len(self.names), bool)

    def check(self, inp: EmbeddingInput) -> str:
        """Return a rejection reason for inputs this strategy cannot use, or ''."""
        return ''

    def project(self, inp: EmbeddingInput) -> Any:
        """Return the cached term of one validated input, or None when it is not used."""
        raise NotImplementedError

    def store(self, index: int, term: Any) -> None:
        """Cache `term` (None: nothing) as modality `index`'s; subclasses keep its numbers."""
        self.has_term[index] = term is not None

    def put(self, index: int, term: Any, stamp: float, confidence: float) -> None:
        """Cache `term` with its input's capture stamp and confidence (by default: store)."""
        self.store(index, term)

    def fuse(self, weight: np.ndarray, reliability: np.ndarray,
             fresh: np.ndarray) -> Optional[Fused]:
        """Combine the stored terms; None when they carry nothing this strategy can use."""
        raise NotImplementedError

    def fuse_delta(self, now: float, weight: np.ndarray, reliability: np.ndarray,
                   fresh: np.ndarray) -> Optional[Fused]:
        """
        Return what fuse(weight, reliability, fresh) returns, as of `now`, within 1e-9.

        For strategies that keep their fused state between calls and update only the terms
        that changed (put, or a modality that went stale or came back): `weight` and
        `reliability` are those of `now`. By default: fuse.
        """
        return self.fuse(weight, reliability, fresh)


def argmax_fused(labels: List[str], scores: np.ndarray, **extra) -> Fused:
    """Return a Fused deciding for the best-scoring label, with its score as confidence."""
    best = int(np.argmax(scores))
    return Fused(labels, scores.astype(np.float32), labels[best], float(scores[best]), **extra)


class _LabelIndexed(Strategy):
    """
    Maps every modality's labels onto one growing fused label index.

    Each modality's term is a dense row over that index (its values, and a mask of the
    labels it reports), so fusing all modalities is one matrix-vector product.
    """

    def __init__(self, params, modalities):
        """Start with an empty fused label index."""
        super().__init__(params, modalities)
        self._index: Dict[str, int] = {}
        self._names: List[str] = []
        self._values = self._mask = np.zeros((0, 0))

    def bind(self, names):
        """Allocate one row per modality."""
        super().bind(names)
        self._values = np.zeros((len(self.names), 16))
        self._mask = np.zeros_like(self._values)

    def _indices(self, labels: Sequence[str]) -> np.ndarray:
        for label in labels:
            if label not in self._index:
                self._index[label] = len(self._names)
                self._names.append(label)
        return np.fromiter((self._index[label] for label in labels), np.intp, len(labels))

    def store(self, index, term):
        """Write the modality's row: its values (summed for a repeated label) and its mask."""
        super().store(index, term)
        self._values[index] = 0.0
        self._mask[index] = 0.0
        if term is None:
            return
        idx, values = term
        if len(self._names) > self._values.shape[1]:  # the label index grew: widen
            width = max(len(self._names), 2 * self._values.shape[1])
            for attr in ('_values', '_mask'):
                old = getattr(self, attr)
                grown = np.zeros((old.shape[0], width))
                grown[:, :old.shape[1]] = old
                setattr(self, attr, grown)
        np.add.at(self._values[index], idx, values)
        np.add.at(self._mask[index], idx, 1.0)

    def _sums(self, weight, fresh):
        """Return (per-label sum of w * value, per-label sum of w) over the fresh rows."""
        size = len(self._names)
        w = np.where(fresh & self.has_term & (weight > 0.0), weight, 0.0)
        return w @ self._values[:, :size], w @ self._mask[:, :size]


class WeightedAverage(_LabelIndexed):
    """
    Per label: sum_m w_m * s_m,l / sum_m w_m over the modalities that report label l.

    The decision is the label with the highest fused score and the confidence is that score.
    Cached term per modality: its label indices into the fused index and its scores.
    """

    name = 'weighted_average'

    def project(self, inp):
        """Map the input's labels onto the fused label index."""
        if not len(inp.labels):
            return None
        return self._indices(inp.labels), np.asarray(inp.scores, np.float64)

    def fuse(self, weight, reliability, fresh):
        """Weighted mean per label, over the modalities that report it."""
        num, den = self._sums(weight, fresh)
        used = np.flatnonzero(den > 0.0)
        if not used.size:
            return None
        return argmax_fused([self._names[i] for i in used], num[used] / den[used])


# |z| beyond which a sigmoid is 0 or 1 in float64 anyway; clipping keeps exp() from overflowing
# (math.exp raises OverflowError past ~709, np.exp warns and returns inf) when weights are large.
_SIGMOID_CLIP = 500.0


def _sigmoid(z):
    """Return 1 / (1 + e^-z) for a float or array without overflow (identical for |z| <= 500)."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -_SIGMOID_CLIP, _SIGMOID_CLIP)))


def _logit(p, eps: float):
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


# The same two functions for one float: on every arrival the speaking_to_robot strategy
# needs one of each, and math on a float costs a fraction of numpy's per-call overhead.
def _sigmoid_scalar(z: float) -> float:
    """Return 1 / (1 + e^-z) for one float without overflow."""
    return 1.0 / (1.0 + math.exp(-min(max(z, -_SIGMOID_CLIP), _SIGMOID_CLIP)))


def _logit_scalar(p: float, eps: float) -> float:
    """Return log(p / (1 - p)) for one probability clipped to [eps, 1 - eps]."""
    p = min(max(p, eps), 1.0 - eps)
    return math.log(p) - math.log1p(-p)


class LogLinear(_LabelIndexed):
    """
    Product of experts with weights as exponents (a weighted geometric pool).

    Default (`categorical: False`): every label is an independent Bernoulli event, which is
    what detector-style encoders emit ('speech', 'face', ...): the pooled distribution over
    {l, not l} is prod_m p^w_m against prod_m (1-p)^w_m, normalised over the two outcomes,
    i.e. p_l = sigmoid(sum_m w_m * logit(p_m,l)). With `categorical: True` the labels are
    treated as one distribution: p_l = softmax_l(sum_m w_m * log p_m,l). Probabilities are
    clipped to [eps, 1 - eps] first. Weights are not normalised: they act as inverse
    temperatures, so an aged (down-weighted) expert pulls its labels towards no evidence
    (0.5, resp. uniform) instead of keeping full say.
    """

    name = 'log_linear'
    PARAMS = {'eps': 1e-6, 'categorical': False}

    def __init__(self, params, modalities):
        """Check eps and the categorical switch."""
        super().__init__(params, modalities)
        eps = float(self.params['eps'])
        if not 0.0 < eps < 0.5:
            raise ValueError(f'log_linear: eps must be in (0, 0.5), got {eps}')
        self._eps = eps
        self._categorical = bool(self.params['categorical'])

    def project(self, inp):
        """Map labels onto the fused index and precompute each label's logit or log-prob."""
        if not len(inp.labels):
            return None
        p = np.asarray(inp.scores, np.float64)
        if self._categorical:
            values = np.log(np.clip(p, self._eps, 1.0 - self._eps))
        else:
            values = _logit(p, self._eps)
        return self._indices(inp.labels), values

    def fuse(self, weight, reliability, fresh):
        """Sum the weighted logits (log-probs) per label, then normalise."""
        z, den = self._sums(weight, fresh)
        used = np.flatnonzero(den > 0.0)
        if not used.size:
            return None
        z = z[used]
        if self._categorical:
            p = np.exp(z - z.max())
            p /= p.sum()
        else:
            p = _sigmoid(z)  # the softmax above is already stable (z - max <= 0)
        return argmax_fused([self._names[i] for i in used], p)


class SpeakingToRobot(Strategy):
    """
    Decide 'speaking' vs 'not_speaking' (someone is talking to the robot); needs no model.

    Cues, each turned into a logit with probabilities clipped to [eps, 1 - eps]:
      audio: a = logit(p_speech);
      vision: v = logit(p_face * p_mouth_moving), a visible face whose mouth moves (p_face
      taken as 1 when the vision encoder does not report it; without 'mouth_moving' vision
      gives no cue, since a face alone says nothing about speech);
      speech (the transcription node's phrase scores): when the latest utterance named the
      robot with score q > addressed_threshold, s = logit((1 + q) / 2), and no cue otherwise:
      people talk to a robot without naming it, so not hearing its name is no evidence
      against. q is Whisper's word probability, a confidence and not P(named): a correctly
      heard "robot" scored 0.42-0.79 over 17 espeak-ng utterances here (the mass splits
      between "robot" and "Robot"), so a name heard counts for, never against, and more
      the surer it was heard; the default threshold 0.3 drops only the least sure.
    P(speaking) = sigmoid(r_a * a + r_v * v + r_s * s), a log-linear pool where r = prior *
    decay(age) (the score is already in the cue, so it is not weighted by confidence again)
    and a stale or absent cue drops out. Speech heard while nobody faces the robot with a
    moving mouth is pulled down, which is the point of fusing; having been addressed by name
    pulls up while the voice goes on, but cannot outvote silence heard now. Decision:
    'speaking' when P >= threshold. Confidence: max(P, 1 - P), times
    `single_cue_confidence` when only one cue is fresh (for example audio alone while vision
    is absent or stale). Scores: [P, 1 - P].
    """

    name = 'speaking_to_robot'
    PARAMS = {'audio': 'audio', 'speech': 'speech', 'vision': 'vision', 'face': 'face',
              'mouth_moving': 'mouth_moving', 'speech_modality': 'speech',
              'addressed': 'addressed_to_robot', 'addressed_threshold': 0.3,
              'threshold': 0.5,
              'single_cue_confidence': 0.75, 'eps': 1e-3}
    LABELS = ['speaking', 'not_speaking']

    def __init__(self, params, modalities):
        """Check threshold, single_cue_confidence and eps."""
        super().__init__(params, modalities)
        p = self.params
        if not 0.0 < float(p['threshold']) < 1.0:
            raise ValueError(f'{self.name}: threshold must be in (0, 1), got {p["threshold"]}')
        if not 0.0 <= float(p['addressed_threshold']) < 1.0:
            raise ValueError(f'{self.name}: addressed_threshold must be in [0, 1), got '
                             f'{p["addressed_threshold"]}')
        if not 0.0 <= float(p['single_cue_confidence']) <= 1.0:
            raise ValueError(f'{self.name}: single_cue_confidence must be in [0, 1]')
        if not 0.0 < float(p['eps']) < 0.5:
            raise ValueError(f'{self.name}: eps must be in (0, 0.5), got {p["eps"]}')

    def project(self, inp):
        """Return the input's cue logit, or None when it carries no cue."""
        p = self.params
        labels, scores, modality = list(inp.labels), inp.scores, inp.modality
        if modality == p['audio'] and p['speech'] in labels:
            prob = float(scores[labels.index(p['speech'])])
        elif modality == p['vision'] and p['mouth_moving'] in labels:
            prob = float(scores[labels.index(p['mouth_moving'])]) * (
                float(scores[labels.index(p['face'])]) if p['face'] in labels else 1.0)
        elif modality == p['speech_modality'] and p['addressed'] in labels and \
                float(scores[labels.index(p['addressed'])]) > float(p['addressed_threshold']):
            prob = 0.5 * (1.0 + float(scores[labels.index(p['addressed'])]))
        else:
            return None
        return _logit_scalar(prob, float(p['eps']))

    def bind(self, names):
        """One cue logit per modality (0 where it has no cue: it then adds nothing)."""
        super().bind(names)
        self._cue = np.zeros(len(self.names))

    def store(self, index, term):
        """Keep the modality's cue logit."""
        super().store(index, term)
        self._cue[index] = 0.0 if term is None else term

    def fuse(self, weight, reliability, fresh):
        """Pool the fresh cues' logits and threshold the result."""
        count = int(np.count_nonzero(fresh & self.has_term))
        if not count:
            return None
        # reliability is 0 for a modality that is not fresh, the cue 0 where there is none.
        # (np.dot: the same inner loop and sum as @, without the gufunc machinery that
        # costs a cold arrival ~10 us more.)
        z = float(np.dot(reliability, self._cue))
        prob = _sigmoid_scalar(z)  # prior up to 1000 makes |z| far exceed exp's range
        confidence = max(prob, 1.0 - prob)
        if count < 2:
            confidence *= float(self.params['single_cue_confidence'])
        decision = 'speaking' if prob >= float(self.params['threshold']) else 'not_speaking'
        return Fused(list(self.LABELS), np.array([prob, 1.0 - prob], np.float32), decision,
                     confidence)
