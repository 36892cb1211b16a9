# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Offline streaming speech to text (faster-whisper), ROS-free.

`whisper` finds and runs the model, `streaming` segments the VAD-scored stream into
utterances with stable partials and one final each, `text` scores transcripts against a
phrase table and measures word error rates.
"""

from .streaming import StreamingConfig, StreamingTranscriber, Transcript
from .text import DEFAULT_PHRASES, normalize_words, PhraseTable, ScoredWord, wer, word_errors
from .whisper import (Hypothesis, model_available, resolve_model, SAMPLE_RATE, WHEEL_MODELS,
                      WhisperRecognizer, Word)

__all__ = [
    'DEFAULT_PHRASES', 'Hypothesis', 'model_available', 'normalize_words', 'PhraseTable',
    'resolve_model', 'SAMPLE_RATE', 'ScoredWord', 'StreamingConfig', 'StreamingTranscriber',
    'Transcript', 'wer', 'WHEEL_MODELS', 'WhisperRecognizer', 'Word', 'word_errors']
