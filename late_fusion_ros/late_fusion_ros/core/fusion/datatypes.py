# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Plain data types of the fusion engine: inputs, configuration and results.

They mirror the ROS interfaces (late_fusion_msgs Embedding, FusionOutput, ModalityState) so
that the node only copies fields; nothing here imports ROS.
"""

from dataclasses import dataclass, field
import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

DECAYS = ('exponential', 'linear', 'none')
POLICIES = ('async', 'sync')

# Rejection reasons: the input is invalid, counted as 'rejected'.
UNKNOWN_MODALITY = 'unknown_modality'
FOREIGN_MODALITY = 'foreign_modality'  # names another modality than its topic's
WRONG_DIMENSION = 'wrong_dimension'
NON_FINITE = 'non_finite'
EMPTY = 'empty'
LENGTH_MISMATCH = 'length_mismatch'
# Drop reasons: a valid input that is ignored or not published, counted as 'dropped'.
DUPLICATE_SEQ = 'duplicate_seq'
OUT_OF_ORDER = 'out_of_order'
RATE_LIMITED = 'rate_limited'
# Accepted, but no output yet.
WAITING_FOR_SYNC = 'waiting_for_sync'
TIME_RESET = 'time_reset'
REJECT_REASONS = (UNKNOWN_MODALITY, FOREIGN_MODALITY, WRONG_DIMENSION, NON_FINITE, EMPTY,
                  LENGTH_MISMATCH)
DROP_REASONS = (DUPLICATE_SEQ, OUT_OF_ORDER, RATE_LIMITED)


@dataclass
class EmbeddingInput:
    """One encoder output, as carried by late_fusion_msgs/Embedding."""

    modality: str
    seq: int
    stamp: float
    data: np.ndarray
    labels: Sequence[str]
    scores: np.ndarray
    encoder_id: str = ''
    frame_id: str = ''


@dataclass
class ModalityConfig:
    """How one modality is weighted and when it goes stale."""

    name: str
    prior: float = 1.0
    max_age: float = 2.0
    decay: str = 'exponential'
    time_constant: float = 1.0
    dim: int = 0


@dataclass
class FusionConfig:
    """Complete engine configuration; swapped atomically by FusionEngine.reconfigure."""

    modalities: List[ModalityConfig]
    strategy: str = 'weighted_average'
    strategy_params: dict = field(default_factory=dict)
    policy: str = 'async'
    sync_slop: float = 0.1
    min_interval: Dict[str, float] = field(default_factory=dict)


@dataclass
class ModalityReport:
    """State of one modality at fusion time; mirrors late_fusion_msgs/ModalityState."""

    modality: str
    present: bool
    stale: bool
    stamp: float
    age: float
    weight: float
    seq: int
    received: int
    rejected: int
    dropped: int


@dataclass
class FusionResult:
    """One fused output; mirrors late_fusion_msgs/FusionOutput."""

    trigger_modality: str
    trigger_seq: int
    stamp: float
    strategy: str
    labels: List[str]
    scores: np.ndarray
    decision: str
    confidence: float
    valid: bool
    modalities: List[ModalityReport]
    # {modality: attention weight} (attention strategy only): a read-only mapping computed
    # when first read, so that fusing does not pay for a dict of every modality.
    attention: Mapping[str, float] = field(default_factory=dict)


@dataclass
class UpdateResult:
    """Outcome of FusionEngine.update: acceptance, reason and the output to publish, if any."""

    accepted: bool
    reason: str
    output: Optional[FusionResult]
    reset: bool = False


def _finite(value, minimum: float, strict: bool) -> bool:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and (value > minimum if strict else value >= minimum)


def validate_modalities(modalities: Sequence[ModalityConfig]) -> None:
    """Raise ValueError unless every modality config is usable and names are unique."""
    if not modalities:
        raise ValueError('at least one modality must be configured')
    names = [m.name for m in modalities]
    if any(not isinstance(n, str) or not n for n in names):
        raise ValueError(f'modality names must be non-empty strings, got {names}')
    if len(set(names)) != len(names):
        raise ValueError(f'modality names must be unique, got {names}')
    for m in modalities:
        if not _finite(m.prior, 0.0, strict=False):
            raise ValueError(f'{m.name}: prior must be finite and >= 0, got {m.prior}')
        if not _finite(m.max_age, 0.0, strict=True):
            raise ValueError(f'{m.name}: max_age must be finite and > 0, got {m.max_age}')
        if m.decay not in DECAYS:
            raise ValueError(f'{m.name}: decay must be one of {DECAYS}, got {m.decay!r}')
        if m.decay == 'exponential' and not _finite(m.time_constant, 0.0, strict=True):
            raise ValueError(
                f'{m.name}: time_constant must be finite and > 0, got {m.time_constant}')
        if isinstance(m.dim, bool) or not isinstance(m.dim, (int, np.integer)) or m.dim < 0:
            raise ValueError(f'{m.name}: dim must be an integer >= 0, got {m.dim!r}')


def validate_config(config: FusionConfig) -> None:
    """Raise ValueError for anything wrong in `config` except the strategy's own parameters."""
    validate_modalities(config.modalities)
    if config.policy not in POLICIES:
        raise ValueError(f'policy must be one of {POLICIES}, got {config.policy!r}')
    if not _finite(config.sync_slop, 0.0, strict=False):
        raise ValueError(f'sync_slop must be finite and >= 0, got {config.sync_slop}')
    names = {m.name for m in config.modalities}
    for name, interval in dict(config.min_interval or {}).items():
        if name not in names:
            raise ValueError(f'min_interval names unknown modality {name!r}')
        if not _finite(interval, 0.0, strict=False):
            raise ValueError(f'min_interval[{name!r}] must be finite and >= 0, got {interval}')
    if not isinstance(config.strategy_params, dict):
        raise ValueError('strategy_params must be a dict')
