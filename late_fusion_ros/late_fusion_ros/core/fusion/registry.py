# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Strategy registry: one parameter (the name) switches the fusion strategy."""

from typing import Dict, Sequence, Type

from .datatypes import ModalityConfig
from .learned import Attention, MetaLearner
from .strategies import LogLinear, SpeakingToRobot, Strategy, WeightedAverage

STRATEGIES: Dict[str, Type[Strategy]] = {
    cls.name: cls for cls in (SpeakingToRobot, WeightedAverage, LogLinear, MetaLearner, Attention)}


def make_strategy(name: str, params: dict = None,
                  modalities: Sequence[ModalityConfig] = ()) -> Strategy:
    """Build strategy `name` from `params`; ValueError for an unknown name or bad parameters."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f'unknown fusion strategy {name!r}; known: {sorted(STRATEGIES)}')
    try:
        return cls(dict(params or {}), modalities)
    except ValueError:
        raise
    except (OSError, KeyError, TypeError, RuntimeError) as exc:
        # Model files that are missing or malformed are configuration errors.
        raise ValueError(f'{name}: {type(exc).__name__}: {exc}') from exc
