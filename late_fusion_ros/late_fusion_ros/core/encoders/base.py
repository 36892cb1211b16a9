# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Encoder interfaces shared by the audio and vision encoders, and the encoder registry."""

from dataclasses import dataclass, field
import logging
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

_LOG = logging.getLogger(__name__)


@dataclass
class EncoderOutput:
    """What an encoder returns for one audio window or one image."""

    data: np.ndarray
    labels: List[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def select_device(requested: str):
    """
    Return a torch device for `requested` ('cpu', 'cuda', 'cuda:N'), falling back to CPU.

    The fallback is logged rather than raised so that one launch file serves robots with
    and without a GPU.
    """
    import torch
    requested = (requested or 'cpu').strip().lower()
    if requested.startswith('cuda'):
        if not torch.cuda.is_available():
            _LOG.warning("device '%s' requested but CUDA is not available: using cpu", requested)
            return torch.device('cpu')
        index = int(requested.split(':', 1)[1]) if ':' in requested else 0
        if index >= torch.cuda.device_count():
            _LOG.warning("device '%s' does not exist (%d CUDA devices): using cuda:0",
                         requested, torch.cuda.device_count())
            index = 0
        return torch.device('cuda', index)
    if requested != 'cpu':
        raise ValueError(f"unknown device '{requested}': use cpu, cuda or cuda:N")
    return torch.device('cpu')


class AudioEncoder:
    """
    A model over fixed-size mono windows of audio at `sample_rate`.

    Subclasses set `name`, `encoder_id`, `sample_rate`, `window` and `hop` (samples) and
    implement `encode`. `reset` is called on a stream discontinuity so that stateful models
    (silero VAD is one) do not carry context across a gap.
    """

    name = ''
    encoder_id = ''
    sample_rate = 16000
    window = 512
    hop = 512

    def encode(self, samples: np.ndarray) -> EncoderOutput:
        """Encode one window of `window` float32 samples in [-1, 1]."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any streaming state."""

    def warmup(self) -> None:
        """Run the model once on silence so that the first real input is not slow."""
        self.encode(np.zeros(self.window, np.float32))
        self.reset()


class VisionEncoder:
    """
    A model over RGB uint8 images of any size.

    `encode` takes the frame's capture time as `stamp` (seconds) so that encoders with a
    temporal cue (the face encoder's mouth movement) measure real time; stateless models
    ignore it. `reset` is called when the image stream breaks off.
    """

    name = ''
    encoder_id = ''
    # True when encode() keeps no state across frames and may run on several frames at
    # once from several threads (fusion_offline then encodes frames in parallel); False
    # (the safe default) for temporal models such as the face encoder's mouth movement.
    stateless = False

    def encode(self, rgb: np.ndarray, stamp: Optional[float] = None) -> EncoderOutput:
        """Encode one (H, W, 3) uint8 RGB image captured at `stamp` (None: unknown)."""
        raise NotImplementedError

    def encode_batch(self, rgbs: Sequence[np.ndarray],
                     stamps: Optional[Sequence[Optional[float]]] = None) -> List[EncoderOutput]:
        """
        Encode several frames, in order; return one EncoderOutput each.

        This default encodes them one by one; a model that takes a batch at once overrides
        it (fusion_offline's --batch). A stateful encoder sees them in the order given.
        """
        stamps = [None] * len(rgbs) if stamps is None else stamps
        return [self.encode(rgb, stamp=stamp) for rgb, stamp in zip(rgbs, stamps)]

    def reset(self) -> None:
        """Forget any state kept across frames."""

    def warmup(self) -> None:
        """Run the model once so that the first real frame is not slow."""
        self.encode(np.zeros((224, 224, 3), np.uint8))


AUDIO_ENCODERS: Dict[str, Callable[..., AudioEncoder]] = {}
VISION_ENCODERS: Dict[str, Callable[..., VisionEncoder]] = {}


def register_audio(name: str):
    """Register an AudioEncoder factory under `name` (class decorator)."""
    def deco(cls):
        AUDIO_ENCODERS[name] = cls
        return cls
    return deco


def register_vision(name: str):
    """Register a VisionEncoder factory under `name` (class decorator)."""
    def deco(cls):
        VISION_ENCODERS[name] = cls
        return cls
    return deco
