# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""ROS-free asynchronous late fusion: data types, strategies and the delta-state engine."""

from .datatypes import (
    EmbeddingInput, FusionConfig, FusionResult, ModalityConfig, ModalityReport, UpdateResult)
from .engine import decay_factor, FusionEngine
from .registry import make_strategy, STRATEGIES
from .strategies import Fused, Strategy
from .sync import ApproximateSync

__all__ = [
    'ApproximateSync', 'decay_factor', 'EmbeddingInput', 'FusionConfig',
    'FusionEngine', 'FusionResult', 'Fused', 'make_strategy', 'ModalityConfig',
    'ModalityReport', 'STRATEGIES', 'Strategy', 'UpdateResult',
]
