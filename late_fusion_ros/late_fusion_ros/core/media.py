# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Real test media made on the machine: espeak-ng speech, silence and noise; photos.

Used by the demo, the integration tests and the benchmarks so that the models see real
speech and real photographs, never synthetic stand-ins.
"""

from dataclasses import dataclass
import os
import subprocess
import tempfile
from typing import List, Tuple

import numpy as np

RATE = 16000
SENTENCES = [
    'Hello robot, can you hear me?',
    'Please bring me the coffee cup from the kitchen table.',
    'Turn left at the door and stop next to the cat.',
]


@dataclass
class Segment:
    """A stretch of a scenario: kind is 'speech', 'silence' or 'noise'."""

    kind: str
    start: float
    end: float


def speech(text: str, rate: int = RATE, voice: str = 'en-us') -> np.ndarray:
    """Speak `text` with espeak-ng `voice` (e.g. 'en-gb+f3') as int16 mono samples at `rate`."""
    from scipy.io import wavfile
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = os.path.join(tmp, 'raw.wav'), os.path.join(tmp, 'out.wav')
        subprocess.run(['espeak-ng', '-v', voice, '-w', raw, text], check=True)
        subprocess.run(['sox', raw, '-r', str(rate), '-c', '1', '-b', '16', out], check=True)
        _, samples = wavfile.read(out)
    return samples.astype(np.int16)


def noise(seconds: float, rate: int = RATE, volume: float = 0.1) -> np.ndarray:
    """Return `seconds` of sox pink noise as int16 samples."""
    from scipy.io import wavfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'noise.wav')
        subprocess.run(['sox', '-n', '-r', str(rate), '-c', '1', '-b', '16', out, 'synth',
                        str(seconds), 'pinknoise', 'vol', str(volume)], check=True)
        _, samples = wavfile.read(out)
    return samples.astype(np.int16)


def scenario(pattern: str = 'speech silence speech noise speech silence',
             gap: float = 3.0, rate: int = RATE) -> Tuple[np.ndarray, List[Segment]]:
    """
    Concatenate spoken sentences, silences and noise; return samples and segments.

    Speech segments are the espeak-ng utterances themselves (trimmed of their leading and
    trailing quiet), so a segment's bounds are where the speech really is.
    """
    parts, segments, t, k = [], [], 0.0, 0
    for kind in pattern.split():
        if kind == 'speech':
            s = speech(SENTENCES[k % len(SENTENCES)], rate)
            k += 1
            loud = np.flatnonzero(np.abs(s) > 500)
            s = s[loud[0]:loud[-1] + 1] if len(loud) else s
        elif kind == 'silence':
            s = np.zeros(int(gap * rate), np.int16)
        elif kind == 'noise':
            s = noise(gap, rate)
        else:
            raise ValueError(f'unknown segment kind {kind!r}')
        parts.append(s)
        segments.append(Segment(kind, t, t + len(s) / rate))
        t += len(s) / rate
    return np.concatenate(parts), segments


def photo(name: str) -> np.ndarray:
    """Return the scikit-image sample named `name` (e.g. astronaut, chelsea) as RGB uint8."""
    import skimage.data
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def camera_frame(name: str, width: int = 1280, height: int = 720) -> np.ndarray:
    """Return the photo `name` scaled to cover width x height and centre-cropped, RGB uint8."""
    from PIL import Image
    rgb = photo(name)
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    h, w = max(height, round(rgb.shape[0] * scale)), max(width, round(rgb.shape[1] * scale))
    big = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(big[top:top + height, left:left + width])


def stereo(mono: np.ndarray, right_gain: float = 0.8) -> np.ndarray:
    """
    Return (frames, 2) int16 audio: `mono` left and `right_gain` times it right.

    That is how a stereo microphone pair a little off-centre hears one talker.
    """
    right = np.clip(np.round(mono.astype(np.float32) * right_gain), -32768, 32767)
    return np.stack([mono, right.astype(np.int16)], axis=1)
