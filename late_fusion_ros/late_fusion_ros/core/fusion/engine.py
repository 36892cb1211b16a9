# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The fusion engine: per-modality state, validation, staleness and delta-state updates.

Every modality keeps its latest accepted input and the strategy's cached term for it. An
arrival validates the input, recomputes only its own modality's term and then fuses: the
other modalities' terms are reused and only their weights are recomputed for `now`.
Strategies whose fused state grows with the modalities (meta_learner, attention) keep it
and replace only the arriving modality's part of it (Strategy.fuse_delta, delta.py).

The per-modality numbers that fusing needs (stamps, priors, confidences, counters, the
strategies' cached terms) live in arrays indexed by modality, so that weighing and fusing
are a few vectorised operations whatever the number of modalities: the cost of an arrival
stays flat from 2 to 16 modalities (bench/bench_fusion_delta.py) instead of growing with a
Python loop over them. The per-modality reports of a result are read from a snapshot of
those arrays only when asked for (ModalityReports).
"""

from collections import Counter
from dataclasses import dataclass, field
import math
import threading
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import datatypes as t
from .datatypes import (
    EmbeddingInput, FusionConfig, FusionResult, ModalityConfig, ModalityReport, UpdateResult)
from .registry import make_strategy
from .sync import ApproximateSync

# A `now` this much earlier than the last one means the clock was reset (bag loop, sim time).
# A stamp more than max(this, max_age) older than its modality's last accepted one may mean
# that modality's stamps jumped back (a bag loop played without --clock, a restarted driver
# on another clock): once REWIND_CONFIRM such inputs in a row carry increasing stamps, the
# modality restarts from them. One stray old stamp is dropped and changes nothing.
TIME_RESET_TOLERANCE = 1.0
REWIND_CONFIRM = 3
# The largest forward jump of an encoder's seq counted as lost arrivals (3 s at 3,000/s).
MAX_SEQ_GAP = 10_000
# A stamp more than max(this, max_age) ahead of `now` is refused: accepted, it would become the
# modality's last stamp and every real input after it would be dropped as out_of_order.
FUTURE_TOLERANCE = 1.0
# Rejection reason for such a stamp (kept here: datatypes.REJECT_REASONS lacks it so far).
FUTURE_STAMP = 'future_stamp'
# Queue length of the 'sync' baseline, as commonly given to ApproximateTimeSynchronizer.
SYNC_QUEUE_SIZE = 10
# Counter key for inputs naming a modality that is not configured.
UNKNOWN_KEY = '<unknown>'
_EMPTY = np.zeros(0, np.float32)


def input_confidence(scores: np.ndarray) -> float:
    """
    Return how sure a modality's input is, in [0, 1].

    Several named scores (class probabilities): the most confident one. A single score is a
    detector's probability of its label, so 0.01 ("surely not speech") is as confident as
    0.99: max(p, 1 - p). No scores at all (an embedding only): 1.
    """
    if scores.size == 0:
        return 1.0
    if scores.size == 1:
        p = float(scores[0])
        return max(p, 1.0 - p)
    return float(scores.max())


@dataclass
class _Slot:
    """State of one configured modality."""

    cfg: ModalityConfig
    index: int = 0                        # position in the engine's arrays
    inp: Optional[EmbeddingInput] = None  # latest input used for fusion
    term: Any = None                      # strategy's cached term for `inp`
    confidence: float = 1.0               # max score of `inp`, 1 without scores
    arrival: float = 0.0                  # `now` when `inp` was accepted
    last_stamp: float = -math.inf         # latest accepted stamp, for ordering checks
    last_seq: Optional[int] = None
    last_output: Optional[float] = None   # `now` of the last output this modality triggered
    counts: Counter = field(default_factory=Counter)
    rewind: List[float] = field(default_factory=list)  # far older stamps in a row, for now
    arrival_seq: Optional[int] = None     # seq of the latest arrival from this modality

    def clear_state(self) -> None:
        self.inp, self.term, self.confidence, self.arrival = None, None, 1.0, 0.0
        self.last_stamp, self.last_seq, self.last_output = -math.inf, None, None
        self.arrival_seq = None
        self.rewind = []


def decay_factor(cfg: ModalityConfig, age: float) -> float:
    """Return the staleness factor in [0, 1] of an input `age` seconds old (0 once stale)."""
    if age > cfg.max_age:
        return 0.0
    age = max(age, 0.0)  # a stamp slightly ahead of `now` (clock skew) counts as fresh
    if cfg.decay == 'exponential':
        return math.exp(-age / cfg.time_constant)
    if cfg.decay == 'linear':
        return 1.0 - age / cfg.max_age
    return 1.0


class ModalityReports(Sequence):
    """
    The per-modality reports of one FusionResult, made on demand from a snapshot.

    Fusing needs only arrays; building one ModalityReport per modality on every arrival
    would make each arrival cost grow with the number of modalities, so the snapshot of
    the arrays taken at fusion time is turned into reports only when they are read.
    """

    __slots__ = ('_names', '_cols')

    def __init__(self, names: Sequence[str], cols: tuple):
        """Keep the modality names and the snapshot columns (present ... dropped)."""
        self._names = names
        self._cols = cols

    def __len__(self) -> int:
        """Return the number of configured modalities."""
        return len(self._names)

    @property
    def names(self) -> Sequence[str]:
        """Return the modality names, in report order."""
        return self._names

    def columns(self) -> tuple:
        """
        Return the snapshot arrays (present, stale, stamp, ahead, weight, seq, counts).

        For a reader of every report at once (the fusion node's serializer): one value per
        modality in each, counts as rows received, rejected, dropped; ahead is -age. Where
        present is False the reports say 0 for stamp, age, weight and seq. Read only.
        """
        return self._cols

    def __getitem__(self, i):
        """Return the ModalityReport of modality `i` (a list of them for a slice)."""
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        present, stale, stamp, ahead, weight, seq, counts = self._cols
        received, rejected, dropped = (int(c) for c in counts[:, i])
        if not present[i]:
            return ModalityReport(self._names[i], False, False, 0.0, 0.0, 0.0, 0,
                                  received, rejected, dropped)
        return ModalityReport(self._names[i], True, bool(stale[i]), float(stamp[i]),
                              -float(ahead[i]), float(weight[i]), int(seq[i]), received,
                              rejected, dropped)


class _Columns:
    """The engine's per-modality arrays for one configuration (index = slot index)."""

    def __init__(self, configs: Sequence[ModalityConfig]):
        n = len(configs)
        self.names = [c.name for c in configs]
        self.prior = np.array([c.prior for c in configs], np.float64)
        self.max_age = np.array([c.max_age for c in configs], np.float64)
        self.neg_max_age = -self.max_age
        self.is_exp = np.array([c.decay == 'exponential' for c in configs])
        self.is_lin = np.array([c.decay == 'linear' for c in configs])
        # Only exponential decay uses time_constant (and only then is it validated).
        self.inv_tau = np.array([1.0 / c.time_constant if c.decay == 'exponential' else 0.0
                                 for c in configs], np.float64)
        self.all_exp = bool(self.is_exp.all())
        self.present = np.zeros(n, bool)
        self.stamp = np.zeros(n, np.float64)
        self.conf = np.ones(n, np.float64)
        self.seq = np.zeros(n, np.uint64)
        self.counts = np.zeros((3, n), np.int64)  # received, rejected, dropped

    def weigh(self, now: float):
        """
        Return (ahead, stale, fresh, reliability, weight) of every modality as of `now`.

        ahead = stamp - now (minus the age). Written for few numpy calls: with 2 modalities
        each call's overhead, not the arithmetic, is the cost of an arrival.
        """
        ahead = self.stamp - now
        stale = ahead < self.neg_max_age
        stale &= self.present
        fresh = self.present ^ stale
        # A stamp slightly ahead of `now` (clock skew) counts as fresh: age 0, no decay.
        lag = np.minimum(ahead, 0.0)
        decay = np.exp(lag * self.inv_tau)  # 1 where the decay is not exponential
        if not self.all_exp:
            decay = np.where(self.is_lin, 1.0 + lag / self.max_age, decay)
        reliability = self.prior * decay
        reliability *= fresh
        return ahead, stale, fresh, reliability, reliability * self.conf


_KIND_ROW = {'received': 0, 'rejected': 1, 'dropped': 2}


_SUM = np.add.reduce  # ndarray.sum without its Python-level wrapper
_F32 = np.dtype(np.float32)
# Arrays up to this size are checked for NaN/Inf element by element in Python: the scores
# and the audio embedding of every arrival. numpy's reduction machinery costs more for them,
# most of all on the cold caches of a 31 Hz stream (~15 us of an arrival's ~200 there).
_SMALL = 64


def _is_flat_f32(x) -> bool:
    # `is` first: the dtype of a float32 array is numpy's one float32 descriptor, found
    # without comparing descriptors; an equal one (non-native '<f4' spelled otherwise) too.
    return type(x) is np.ndarray and x.ndim == 1 and (x.dtype is _F32 or x.dtype == _F32)


def _all_finite(x: np.ndarray) -> bool:
    """Return whether no value of the 1-D float32 array `x` is NaN or infinite."""
    if x.size <= _SMALL:
        return all(map(math.isfinite, x.tolist()))
    # A float64 sum is NaN or infinite exactly when an element is (float32 values cannot
    # add up to float64's overflow): one numpy call.
    return math.isfinite(_SUM(x, dtype=np.float64))


def _as_input(inp: EmbeddingInput) -> EmbeddingInput:
    """Return `inp` with data and scores as 1-D float32 arrays (no copy when they already are)."""
    if _is_flat_f32(inp.data) and _is_flat_f32(inp.scores):
        return inp  # what the fusion node hands over: checked without calling numpy
    data = np.asarray(inp.data, np.float32).reshape(-1)
    scores = np.asarray(inp.scores, np.float32).reshape(-1)
    if data is inp.data and scores is inp.scores:
        return inp
    return EmbeddingInput(inp.modality, inp.seq, inp.stamp, data, list(inp.labels), scores,
                          inp.encoder_id, inp.frame_id)


def _invalid_reason(inp: EmbeddingInput, cfg: ModalityConfig) -> str:
    """Return why `inp` is malformed, or '' (content checks only, no state involved)."""
    if not inp.data.size and not inp.scores.size:
        return t.EMPTY
    if len(inp.labels) != inp.scores.size:
        return t.LENGTH_MISMATCH
    if cfg.dim and inp.data.size != cfg.dim:
        return t.WRONG_DIMENSION
    if not (math.isfinite(inp.stamp) and _all_finite(inp.data) and _all_finite(inp.scores)):
        return t.NON_FINITE
    return ''


class FusionEngine:
    """
    Asynchronous late fusion of per-modality embeddings; see the module docstring.

    Thread-safe: one lock serialises update, evaluate, reconfigure and reset, so a
    reconfiguration always lands between two arrivals. The engine keeps references to the
    input arrays it accepts; callers hand over fresh arrays and do not modify them later.
    """

    def __init__(self, config: FusionConfig, full_recompute: bool = False,
                 fuse_from_scratch: bool = False):
        """
        Validate `config` (ValueError) and build the engine.

        The two references the delta update is measured against, both off by default:
        with `full_recompute` every present modality's term is recomputed on every arrival
        instead of only the arriving one's; outputs are identical (a term recomputed
        unchanged changes nothing). With `fuse_from_scratch` every output is fused from all
        the stored terms (Strategy.fuse) instead of by updating the fused state with the
        terms that changed (Strategy.fuse_delta); outputs are identical where a strategy
        keeps no fused state and agree within 1e-9 (rounding) where it keeps running sums
        (meta_learner, attention). Both together: full recomputation.
        """
        self.full_recompute = full_recompute
        self.fuse_from_scratch = fuse_from_scratch
        self._lock = threading.Lock()
        self._last_now: Optional[float] = None
        self._unknown: Counter = Counter()
        built = self._build(config, {})
        self._config, self._strategy, self._slots, self._sync, self._cols = built

    # -- configuration ----------------------------------------------------------------------

    @property
    def config(self) -> FusionConfig:
        """Return the active configuration."""
        return self._config

    def _build(self, config: FusionConfig, old: Dict[str, _Slot]):
        """
        Validate `config`; return new (config, strategy, slots, sync, columns), no side effects.

        Slots of modalities that still exist keep their state, with terms recomputed by the
        new strategy; an input the new configuration would reject is forgotten.
        """
        t.validate_config(config)
        strategy = make_strategy(config.strategy, config.strategy_params, config.modalities)
        strategy.bind([cfg.name for cfg in config.modalities])
        cols = _Columns(config.modalities)
        slots = {}
        for index, cfg in enumerate(config.modalities):
            prev = old.get(cfg.name)
            slot = _Slot(cfg, index) if prev is None else _Slot(
                cfg, index, prev.inp, None, prev.confidence, prev.arrival, prev.last_stamp,
                prev.last_seq, prev.last_output, Counter(prev.counts),
                arrival_seq=prev.arrival_seq)
            for kind, row in _KIND_ROW.items():
                cols.counts[row, index] = slot.counts[kind]
            if slot.inp is not None:
                if _invalid_reason(slot.inp, cfg) or strategy.check(slot.inp):
                    slot.inp, slot.confidence = None, 1.0
                else:
                    slot.term = strategy.project(slot.inp)
                    self._put(cols, strategy, slot)
            slots[cfg.name] = slot
        sync = None
        if config.policy == 'sync':
            sync = ApproximateSync(len(slots), SYNC_QUEUE_SIZE, config.sync_slop)
        return config, strategy, slots, sync, cols

    def reconfigure(self, config: FusionConfig) -> None:
        """Swap in `config` atomically; raise ValueError, changing nothing, when it is invalid."""
        with self._lock:
            built = self._build(config, self._slots)
            self._config, self._strategy, self._slots, self._sync, self._cols = built

    def reset(self) -> None:
        """Forget all inputs, pending sync sets and counters."""
        with self._lock:
            self._reset_state()
            for slot in self._slots.values():
                slot.counts.clear()
            self._cols.counts[:] = 0
            self._unknown.clear()
            self._last_now = None

    def _reset_state(self) -> None:
        for slot in self._slots.values():
            slot.clear_state()
            self._strategy.store(slot.index, None)
        self._cols.present[:] = False
        if self._sync is not None:
            self._sync.clear()

    def counters(self) -> Dict[str, Dict[str, int]]:
        """
        Return per modality: received, rejected, dropped and one count per reason seen.

        `lost` counts arrivals that never reached the engine (gaps in the encoder's seq).

        Inputs for unconfigured modalities are counted under '<unknown>'.
        """
        with self._lock:
            out = {name: self._counts(slot.counts) for name, slot in self._slots.items()}
            if self._unknown:
                out[UNKNOWN_KEY] = self._counts(self._unknown)
            return out

    def restart_intake(self) -> None:
        """
        Forget every modality's last arrival seq, keeping state and counters.

        For an intake that stopped on purpose (the node was inactive): the first arrival of
        each modality afterwards starts a new seq run, so what was published meanwhile is
        not counted as `lost`.
        """
        with self._lock:
            for slot in self._slots.values():
                slot.arrival_seq = None

    @staticmethod
    def _counts(counts: Counter) -> Dict[str, int]:
        return {'received': 0, 'rejected': 0, 'dropped': 0, **counts}

    # -- arrivals ---------------------------------------------------------------------------

    def update(self, inp: EmbeddingInput, now: float,
               arrived_on: Optional[str] = None) -> UpdateResult:
        """
        Validate `inp`, update its modality's state and fuse; `now` on the stamps' clock.

        `arrived_on` names the modality whose input (topic) `inp` came through: an input
        naming another modality is rejected there, as 'foreign_modality', and counted in
        that modality's counters, so every reject belongs to where it arrived.
        """
        with self._lock:
            reset = self._last_now is not None and now < self._last_now - TIME_RESET_TOLERANCE
            if reset:
                self._reset_state()
            self._last_now = now
            result = self._update(inp, now, arrived_on)
            result.reset = reset or result.reset  # _update flags a rewind of stamps
            return result

    @staticmethod
    def _future_limit(slot: _Slot) -> float:
        return max(FUTURE_TOLERANCE, slot.cfg.max_age)

    def future_limit(self, modality: str) -> float:
        """Return how far ahead of `now` an input of `modality` may be stamped (seconds)."""
        slot = self._slots.get(modality)
        return FUTURE_TOLERANCE if slot is None else self._future_limit(slot)

    def count(self, modality: str, reason: str, kind: str = 'rejected') -> None:
        """Count an input of `modality` refused before it became an EmbeddingInput."""
        with self._lock:
            self._reject(self._slots.get(modality), reason, kind)

    def _reject(self, slot: Optional[_Slot], reason: str, kind: str) -> UpdateResult:
        """Count a refused input under `kind` and `reason` (None: an unknown modality)."""
        counts = self._unknown if slot is None else slot.counts
        counts[kind] += 1
        counts[reason] += 1
        if slot is not None:
            self._cols.counts[_KIND_ROW[kind], slot.index] += 1
        return UpdateResult(False, reason, None)

    @staticmethod
    def _note_seq(slot: _Slot, seq: int) -> None:
        """Count arrivals lost before the engine: gaps in an encoder's seq, valid or not."""
        last, slot.arrival_seq = slot.arrival_seq, seq
        # Every arrival, rejected or not, advances the source's seq: only a forward jump is a
        # loss. A seq that goes back is a restarted encoder (or a bag loop); a jump beyond
        # MAX_SEQ_GAP is another source, not seconds of losses.
        if last is not None and 1 < seq - last <= MAX_SEQ_GAP:
            slot.counts['lost'] += seq - last - 1

    def _update(self, inp: EmbeddingInput, now: float,
                arrived_on: Optional[str]) -> UpdateResult:
        if arrived_on is not None and arrived_on in self._slots and \
                inp.modality not in ('', arrived_on):
            return self._reject(self._slots[arrived_on], t.FOREIGN_MODALITY, 'rejected')
        name = arrived_on if arrived_on is not None and not inp.modality else inp.modality
        slot = self._slots.get(name)
        if slot is None:
            return self._reject(None, t.UNKNOWN_MODALITY, 'rejected')
        if inp.modality != name:
            inp = EmbeddingInput(name, inp.seq, inp.stamp, inp.data, inp.labels, inp.scores,
                                 inp.encoder_id, inp.frame_id)
        self._note_seq(slot, inp.seq)
        inp = _as_input(inp)
        reason = _invalid_reason(inp, slot.cfg) or self._strategy.check(inp)
        if reason:
            return self._reject(slot, reason, 'rejected')
        if inp.stamp - now > self._future_limit(slot):
            return self._reject(slot, FUTURE_STAMP, 'rejected')
        # Far older than the last accepted stamp: a stray old stamp, or the stamps' clock
        # jumped back (a bag loop without --clock). Only a confirmed rewind resets the state,
        # like a backwards `now` does; a stray old stamp is dropped and changes nothing.
        stamp_reset = False
        if slot.last_stamp - inp.stamp > max(TIME_RESET_TOLERANCE, slot.cfg.max_age):
            if slot.rewind and inp.stamp <= slot.rewind[-1]:
                slot.rewind = []
            slot.rewind.append(inp.stamp)
            if len(slot.rewind) < REWIND_CONFIRM:
                return self._reject(slot, t.OUT_OF_ORDER, 'dropped')
            stamp_reset = True
            self._reset_state()
        else:
            slot.rewind = []
        if inp.seq == slot.last_seq:
            return self._reject(slot, t.DUPLICATE_SEQ, 'dropped')
        if inp.stamp < slot.last_stamp:
            return self._reject(slot, t.OUT_OF_ORDER, 'dropped')
        slot.counts['received'] += 1
        self._cols.counts[0, slot.index] += 1
        slot.last_stamp, slot.last_seq = inp.stamp, inp.seq
        term = self._strategy.project(inp)
        if self._sync is None:
            self._store(slot, inp, term, now)
        else:
            matched = self._sync.add(slot.index, inp.stamp, (inp, term))
            if matched is None:
                return UpdateResult(True, t.WAITING_FOR_SYNC, None, stamp_reset)
            for other, (other_inp, other_term) in zip(self._slots.values(), matched):
                self._store(other, other_inp, other_term, now)
        if self.full_recompute:
            for other in self._slots.values():
                if other.inp is not None:
                    other.term = self._strategy.project(other.inp)
                    self._strategy.put(other.index, other.term, other.inp.stamp,
                                       other.confidence)
        interval = (self._config.min_interval or {}).get(inp.modality, 0.0)
        if interval > 0.0 and slot.last_output is not None and now - slot.last_output < interval:
            slot.counts['dropped'] += 1
            slot.counts[t.RATE_LIMITED] += 1
            self._cols.counts[2, slot.index] += 1
            return UpdateResult(True, t.RATE_LIMITED, None, stamp_reset)
        slot.last_output = now
        return UpdateResult(True, '', self._evaluate(now, inp), stamp_reset)

    def _store(self, slot: _Slot, inp: EmbeddingInput, term: Any, now: float) -> None:
        slot.inp, slot.term, slot.arrival = inp, term, now
        slot.confidence = input_confidence(inp.scores)
        self._put(self._cols, self._strategy, slot)

    @staticmethod
    def _put(cols: _Columns, strategy, slot: _Slot) -> None:
        """Copy a slot's input into the arrays and its term into the strategy's cache."""
        i = slot.index
        cols.present[i] = True
        cols.stamp[i] = slot.inp.stamp
        cols.conf[i] = slot.confidence
        cols.seq[i] = slot.inp.seq
        strategy.put(i, slot.term, slot.inp.stamp, slot.confidence)

    # -- fusion -----------------------------------------------------------------------------

    def evaluate(self, now: float) -> FusionResult:
        """Fuse the cached state as of `now` without any new input (e.g. from a timer)."""
        with self._lock:
            return self._evaluate(now, None)

    def _evaluate(self, now: float, trigger: Optional[EmbeddingInput]) -> FusionResult:
        cols = self._cols
        ahead, stale, fresh, reliability, weight = cols.weigh(now)
        # Strategies return None when no fresh modality carries a term for them.
        if self.fuse_from_scratch:
            fused = self._strategy.fuse(weight, reliability, fresh)
        else:
            fused = self._strategy.fuse_delta(now, weight, reliability, fresh)
        reports = ModalityReports(cols.names, (
            cols.present.copy(), stale, cols.stamp.copy(), ahead, weight, cols.seq.copy(),
            cols.counts.copy()))
        name, seq, stamp = ('', 0, now) if trigger is None else (
            trigger.modality, trigger.seq, trigger.stamp)
        if fused is None:
            # Nothing usable: say so instead of inventing numbers.
            return FusionResult(name, seq, stamp, self._config.strategy, [], _EMPTY, '', 0.0,
                                False, reports)
        # A dict is copied (Fused's default is shared); a mapping computed when read
        # (learned.AttentionWeights) is a snapshot already: copying it would cost O(modalities).
        attention = fused.attention
        if type(attention) is dict:
            attention = dict(attention)
        return FusionResult(name, seq, stamp, self._config.strategy, list(fused.labels),
                            fused.scores, fused.decision, float(fused.confidence), True,
                            reports, attention)
