# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Resemblyzer: a 256-d speaker (voice) embedding per 1.6 s of 16 kHz audio (weights in wheel)."""

import warnings

import numpy as np

from .base import AudioEncoder, EncoderOutput, register_audio, select_device


@register_audio('resemblyzer')
class ResemblyzerEncoder(AudioEncoder):
    """
    Who is speaking: Resemblyzer's GE2E voice encoder (Apache-2.0, `pretrained.pt` in the wheel).

    Windows are 1.6 s (25,600 samples at 16 kHz), the length of the "partial utterances"
    the model was trained on, so a window is exactly one forward pass; `hop_seconds`
    (default 0.5) sets how often a new embedding comes out: a robot gets a speaker
    estimate twice a second, each one covering the last 1.6 s.

    Resemblyzer's `embed_utterance` resamples, trims silence and averages partials over a
    whole file; a stream has none of that, so this encoder runs the model's own layers on
    the mel frames of each window, after Resemblyzer's increase-only volume normalisation
    to -30 dBFS (gain capped at +30 dB so that silence is not turned into loud hiss).

    Output: `data` is the 256-d unit-norm embedding (all zeros when the model gives no
    activation at all, e.g. on digital silence); label `voiced` scores the fraction of the
    window's 30 ms frames that webrtcvad (aggressiveness `vad_mode`, 0-3) calls speech, so a
    consumer can ignore embeddings of windows with little voice in them.
    """

    name = 'resemblyzer'
    sample_rate = 16000
    window = 25600
    hop = 8000
    dim = 256
    mel_frames = 160
    target_dbfs = -30.0
    max_gain_db = 30.0
    vad_frame = 480  # 30 ms at 16 kHz, one of the three frame sizes webrtcvad accepts

    def __init__(self, device: str = 'cpu', hop_seconds: float = 0.5, vad_mode: int = 3, **_):
        import torch
        import webrtcvad
        with warnings.catch_warnings():
            # resemblyzer.audio imports scipy.ndimage.morphology, deprecated but working.
            warnings.simplefilter('ignore', DeprecationWarning)
            from resemblyzer import audio, VoiceEncoder
        from importlib.metadata import version
        hop = int(round(float(hop_seconds) * self.sample_rate))
        if not 0 < hop <= self.window:
            raise ValueError(f'hop_seconds must be in (0, {self.window / self.sample_rate}], '
                             f'got {hop_seconds}')
        if int(vad_mode) not in (0, 1, 2, 3):
            raise ValueError(f'vad_mode must be 0, 1, 2 or 3, got {vad_mode}')
        self.hop = hop
        self._torch = torch
        self._mel = audio.wav_to_mel_spectrogram
        self._device = select_device(device)
        # Loads pretrained.pt from the wheel (torch.load defaults to weights_only).
        self._model = VoiceEncoder(device=self._device, verbose=False).eval()
        self._vad = webrtcvad.Vad(int(vad_mode))
        self.encoder_id = f'resemblyzer/{version("Resemblyzer")}'

    def _voiced(self, samples: np.ndarray) -> float:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype('<i2')
        n = len(pcm) // self.vad_frame
        if n == 0:
            return 0.0
        frames = pcm[:n * self.vad_frame].reshape(n, self.vad_frame)
        voiced = sum(self._vad.is_speech(f.tobytes(), self.sample_rate) for f in frames)
        return voiced / n

    def encode(self, samples: np.ndarray) -> EncoderOutput:
        """Embed one 1.6 s window of float32 samples in [-1, 1]; score `voiced`."""
        torch = self._torch
        wav = np.zeros(self.window, np.float32)
        x = np.asarray(samples, np.float32).reshape(-1)[:self.window]
        wav[:len(x)] = x
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        if rms > 0:
            gain_db = min(max(self.target_dbfs - 20 * np.log10(rms), 0.0), self.max_gain_db)
            wav *= np.float32(10 ** (gain_db / 20))
        # center=True framing gives 161 frames for 25,600 samples; the model's partials
        # take the first 160, as embed_utterance's slicing does.
        mel = self._mel(wav)[:self.mel_frames]
        with torch.inference_mode():
            mels = torch.from_numpy(np.ascontiguousarray(mel))[None].to(self._device)
            _, (hidden, _) = self._model.lstm(mels)
            raw = self._model.relu(self._model.linear(hidden[-1]))[0]
            norm = float(torch.linalg.vector_norm(raw))
            # After the ReLU a zero norm means an all-zero vector: keep it rather than NaN.
            emb = (raw / norm if norm > 0 else raw).cpu().numpy().astype(np.float32)
        return EncoderOutput(data=emb, labels=['voiced'],
                             scores=np.array([self._voiced(x)], np.float32))
