# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Silero VAD: speech probability for every 32 ms of 16 kHz audio (weights ship in the wheel)."""

import numpy as np

from .base import AudioEncoder, EncoderOutput, register_audio, select_device


@register_audio('silero_vad')
class SileroVadEncoder(AudioEncoder):
    """
    Speech probability per 512-sample hop at 16 kHz, from the silero-vad package.

    Silero VAD is a streaming model: it keeps context between consecutive 512-sample
    chunks, so window == hop and the framer must feed it contiguous audio (it never
    drops samples); `reset` clears that context after a gap.
    """

    name = 'silero_vad'
    sample_rate = 16000
    window = 512
    hop = 512

    def __init__(self, device: str = 'cpu', **_):
        import silero_vad
        import torch
        from importlib.metadata import version
        self._torch = torch
        self._device = self.device = select_device(device)
        # load_silero_vad reads the TorchScript file shipped inside the wheel: no download.
        self._model = silero_vad.load_silero_vad(onnx=False).to(self._device)
        self._model.eval()
        self.encoder_id = f'silero_vad/{version("silero-vad")}'

    def encode(self, samples: np.ndarray) -> EncoderOutput:
        """Return the speech probability of this 32 ms chunk (label 'speech')."""
        with self._torch.inference_mode():
            x = self._torch.from_numpy(np.ascontiguousarray(samples, np.float32))
            prob = float(self._model(x.to(self._device), self.sample_rate).item())
        score = np.array([prob], np.float32)
        return EncoderOutput(data=score.copy(), labels=['speech'], scores=score)

    def reset(self) -> None:
        """Clear the model's streaming context."""
        self._model.reset_states()
