# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Streaming transcription: VAD endpointing, stable partials, one final per utterance.

`StreamingTranscriber.push` takes the 16 kHz windows of the shared AudioStream with their
speech probability (silero VAD) and only segments: it is cheap and runs for every window.
`process` then runs the decodes that are due, at most one partial per call, so a caller
that fell behind (its decoder was busy) decodes the newest audio once instead of every
partial it missed; finals are never skipped.

* An utterance starts at the first window whose speech probability reaches
  `vad_threshold` (with `pre_roll` seconds of audio before it, since the VAD fires late)
  and ends after `endpoint_silence` seconds below `vad_off_threshold`. Utterances with
  less than `min_speech` seconds of speech (a click, a cough) are dropped undecoded.
* The final is decoded on the audio up to `final_tail` seconds after the last speech
  window. That audio is complete as soon as the pause has lasted `final_tail`, so it is
  decoded then, speculatively: if the pause becomes an endpoint the result is the final at
  once, and if speech resumes it serves as one more partial hypothesis.
* Partials: while speech goes on, the utterance is re-decoded every `partial_interval`
  seconds of audio; a word is stable once two consecutive decodes agree on it and on every
  word before it (the local agreement of whisper_streaming, Machacek et al. 2023). Only the
  stable prefix is published, only when it grew, at most once per `partial_interval`.
* Whisper sees 30 s at a time. An utterance longer than `max_segment` is cut at a pause:
  its stable words are kept and the audio is cut at the quietest window between the last
  stable word and the next one; the unconfirmed tail is decoded again with what follows.
  Nothing before the cut is needed again, so no word is lost or heard twice.
"""

from collections import Counter, deque
from dataclasses import dataclass, field, replace
import math
from typing import Callable, Deque, List, Optional, Tuple

import numpy as np

from .text import normalize_words
from .whisper import Hypothesis, SAMPLE_RATE, Word


@dataclass(frozen=True)
class StreamingConfig:
    """Endpointing and partial cadence; seconds unless named otherwise."""

    vad_threshold: float = 0.5       # speech probability that starts an utterance
    vad_off_threshold: float = 0.35  # below this a window counts as silence
    pre_roll: float = 0.3            # audio kept from before the VAD fired
    min_speech: float = 0.2          # shorter utterances are dropped undecoded
    endpoint_silence: float = 0.5    # a pause this long ends the utterance
    final_tail: float = 0.25         # silence after the last speech kept for the final
    partial_interval: float = 1.0    # partial decodes and publications at most this often
    max_segment: float = 25.0        # cut longer utterances (Whisper's window is 30 s)

    def validated(self) -> 'StreamingConfig':
        """Return self; ValueError for settings that cannot work together."""
        if not 0.0 < self.vad_off_threshold <= self.vad_threshold < 1.0:
            raise ValueError('need 0 < vad_off_threshold <= vad_threshold < 1, got '
                             f'{self.vad_off_threshold}, {self.vad_threshold}')
        if not 0.0 <= self.final_tail < self.endpoint_silence:
            raise ValueError(f'final_tail ({self.final_tail}) must be shorter than '
                             f'endpoint_silence ({self.endpoint_silence})')
        if not 0.0 < self.partial_interval:
            raise ValueError('partial_interval must be > 0 (use a large value to disable)')
        if not 2.0 <= self.max_segment <= 30.0:
            raise ValueError(f'max_segment must be in [2, 30] s, got {self.max_segment}')
        if self.pre_roll < 0.0 or self.min_speech < 0.0:
            raise ValueError('pre_roll and min_speech must be >= 0')
        return self


@dataclass
class Transcript:
    """A partial or final transcript of one utterance; every time is a capture stamp."""

    utterance_id: int
    final: bool
    words: List[Word]        # start/end are capture stamps here, not offsets
    start: float             # the utterance's first sample
    end: float               # final: end of the last speech window; partial: decoded audio
    language: str = ''
    language_probability: float = 0.0
    processing_time: float = 0.0  # the decode that produced it

    @property
    def text(self) -> str:
        """Return the words as Whisper spelled them, joined."""
        return ''.join(w.text for w in self.words).strip()


@dataclass
class _Final:
    """An ended utterance waiting for its final decode."""

    utterance_id: int
    audio: np.ndarray
    audio_start: float       # stamp of audio[0] (the segment start after any cut)
    start: float             # stamp of the utterance's first sample
    end: float
    frozen: List[Word]
    key: Tuple[int, int]     # (segment number, frames): matches a speculative decode
    partials_published: bool
    speculative: Optional[Hypothesis] = None  # a decode of exactly `audio`, made early


def _last_frames(samples: List[np.ndarray], seconds: float) -> int:
    """Return the index from which the windows in `samples` span the last `seconds`."""
    i, left = len(samples), seconds
    while i > 0 and left >= len(samples[i - 1]) / SAMPLE_RATE - 1e-9:
        left -= len(samples[i - 1]) / SAMPLE_RATE
        i -= 1
    return i


def _key(words: List[Word]) -> List[Tuple[str, ...]]:
    return [tuple(normalize_words(w.text)) for w in words]


def _after(committed: List[Word], words: List[Word]) -> List[Word]:
    """
    Return the words of a hypothesis that come after the already stable ones.

    Usually the hypothesis repeats the stable words first. Where it words them differently,
    it is aligned by time as whisper_streaming does: the words that start after the last
    stable one ends (0.1 s of timestamp slack), minus a repeat of up to five stable words.
    """
    if not committed:
        return list(words)
    k = len(committed)
    if _key(words[:k]) == _key(committed):
        return list(words[k:])
    tail = [w for w in words if w.start > committed[-1].end - 0.1]
    for n in range(min(5, k, len(tail)), 0, -1):
        if _key(tail[:n]) == _key(committed[-n:]):
            return tail[n:]
    return tail


@dataclass
class _Utterance:
    """The utterance being heard: its current segment's windows and agreement state."""

    utterance_id: int
    start: float
    samples: List[np.ndarray] = field(default_factory=list)
    stamps: List[float] = field(default_factory=list)
    probs: List[float] = field(default_factory=list)
    segment: int = 0              # bumped at every cut
    last_speech: int = -1         # index of the last window at or above vad_off_threshold
    silence: float = 0.0          # seconds since it
    speech: float = 0.0           # seconds at or above vad_threshold, whole utterance
    frozen: List[Word] = field(default_factory=list)     # stable words before the cut
    previous: Optional[List[Word]] = None                # last hypothesis, for agreement
    committed: List[Word] = field(default_factory=list)  # stable words of this segment
    tail: List[Word] = field(default_factory=list)       # newest hypothesis after them
    published: int = 0            # stable words already published as a partial
    last_partial: float = -math.inf  # decoded-audio end of the last published partial
    since_partial: float = 0.0    # audio seconds since the last partial became due
    partials_due: int = 0
    speculative: Optional[Tuple[Tuple[int, int], Hypothesis]] = None

    def seconds(self) -> float:
        return sum(len(s) for s in self.samples) / SAMPLE_RATE


class StreamingTranscriber:
    """
    Turn VAD-scored 16 kHz windows into partial and final Transcripts (see module doc).

    `decode(audio) -> Hypothesis` is the recogniser (WhisperRecognizer.transcribe); it is
    only ever called from `process`. Not thread-safe: one thread pushes and processes.
    Counters in `counts`; recent decode times (s) in `decode_times`.
    """

    def __init__(self, decode: Callable[[np.ndarray], Hypothesis],
                 config: StreamingConfig = StreamingConfig()):
        """Segment with `config` and decode with `decode`."""
        self.config = config.validated()
        self._decode_fn = decode
        self.counts = Counter()
        self.decode_times: Deque[float] = deque(maxlen=100)
        self._ring: Deque[Tuple[np.ndarray, float, float]] = deque()
        self._utt: Optional[_Utterance] = None
        self._finals: Deque[_Final] = deque()
        self._next_id = 0

    @property
    def in_utterance(self) -> bool:
        """Return True while an utterance is being heard."""
        return self._utt is not None

    def pending(self) -> int:
        """Return the number of ended utterances waiting for their final decode."""
        return len(self._finals)

    # ------------------------------------------------------------------ segmentation
    def push(self, samples: np.ndarray, stamp: float, prob: float,
             restart: bool = False) -> None:
        """
        Take one window: samples (16 kHz float32), capture stamp of its first sample, VAD.

        `restart`: the stream broke before this window (AudioStream's Frame.restart): an
        utterance in progress ends there, and the pre-roll is forgotten.
        """
        cfg = self.config
        if restart:
            if self._utt is not None:
                self._end_utterance()
            self._ring.clear()
        samples = np.asarray(samples, np.float32)
        if self._utt is None:
            self._ring.append((samples, stamp, prob))
            keep = cfg.pre_roll + len(samples) / SAMPLE_RATE
            while sum(len(s) for s, _, _ in self._ring) / SAMPLE_RATE > keep + 1e-9:
                self._ring.popleft()
            if prob < cfg.vad_threshold:
                return
            self._utt = _Utterance(self._next_id, self._ring[0][1])
            self._next_id += 1
            frames = list(self._ring)
            self._ring.clear()
            for s, t, p in frames:
                self._append(s, t, p)
        else:
            self._append(samples, stamp, prob)
        if self._utt is not None and self._utt.silence >= cfg.endpoint_silence - 1e-9:
            self._end_utterance()

    def _append(self, samples, stamp, prob) -> None:
        utt, cfg = self._utt, self.config
        seconds = len(samples) / SAMPLE_RATE
        utt.samples.append(samples)
        utt.stamps.append(stamp)
        utt.probs.append(prob)
        if prob >= cfg.vad_off_threshold:
            utt.last_speech, utt.silence = len(utt.samples) - 1, 0.0
        else:
            utt.silence += seconds
        if prob >= cfg.vad_threshold:
            utt.speech += seconds
        utt.since_partial += seconds
        if utt.since_partial >= cfg.partial_interval - 1e-9:
            utt.since_partial = 0.0
            utt.partials_due += 1

    def _tail_frames(self, utt: _Utterance) -> int:
        """Windows in the final's audio: up to final_tail seconds after the last speech."""
        if utt.last_speech < 0:
            return 0
        end, tail = utt.last_speech + 1, self.config.final_tail
        while end < len(utt.samples) and tail > 1e-9:
            tail -= len(utt.samples[end]) / SAMPLE_RATE
            end += 1
        return end

    def _end_utterance(self) -> None:
        utt, self._utt = self._utt, None
        self.counts['utterances'] += 1
        # Windows after the endpoint's last speech may start the next utterance's pre-roll.
        after = max(utt.last_speech + 1, _last_frames(utt.samples, self.config.pre_roll))
        self._ring.extend(zip(utt.samples[after:], utt.stamps[after:], utt.probs[after:]))
        if utt.partials_due:  # partials that fell due while the decoder was busy
            self.counts['partials_skipped'] += utt.partials_due
        if utt.speech < self.config.min_speech - 1e-9 and not utt.frozen:
            self.counts['short_utterances'] += 1
            return
        n = self._tail_frames(utt)
        if n == 0 and not utt.frozen:
            return
        last = utt.last_speech
        end = (utt.stamps[last] + len(utt.samples[last]) / SAMPLE_RATE) if last >= 0 \
            else utt.stamps[0]
        audio = np.concatenate(utt.samples[:n]) if n else np.zeros(0, np.float32)
        early = utt.speculative
        self._finals.append(_Final(
            utt.utterance_id, audio, utt.stamps[0], utt.start, end, list(utt.frozen),
            (utt.segment, n), utt.published > 0,
            early[1] if early is not None and early[0] == (utt.segment, n) else None))

    # ------------------------------------------------------------------ decoding
    def process(self) -> List[Transcript]:
        """
        Run the decodes that are due; return the transcripts to publish, oldest first.

        Every ended utterance gets its final (a speculative decode of the same audio is
        reused). Then, for the utterance in progress, at most one of: a cut (it outgrew
        max_segment), the speculative final decode (its pause reached final_tail), or a
        partial decode (one fell due while speech goes on; if several did, the rest are
        counted as skipped).
        """
        out: List[Transcript] = []
        while self._finals:
            out += self._finalize(self._finals.popleft())
        utt = self._utt
        if utt is None:
            return out
        cfg = self.config
        n_final = self._tail_frames(utt)
        if utt.seconds() >= cfg.max_segment:
            self._cut(utt)
        elif (utt.silence >= cfg.final_tail - 1e-9 and n_final
              and (utt.speculative is None or utt.speculative[0] != (utt.segment, n_final))):
            hyp = self._decode(np.concatenate(utt.samples[:n_final]), 'speculative_decodes')
            utt.speculative = ((utt.segment, n_final), hyp)
            out += self._agree(utt, hyp)
            utt.partials_due = 0
        elif utt.partials_due:
            self.counts['partials_skipped'] += utt.partials_due - 1
            utt.partials_due = 0
            if utt.probs[-1] >= cfg.vad_off_threshold:  # in a pause the final comes first
                out += self._agree(utt, self._decode(np.concatenate(utt.samples),
                                                     'partial_decodes'))
        return out

    def _decode(self, audio: np.ndarray, kind: str) -> Hypothesis:
        hyp = self._decode_fn(audio)
        self.counts['decodes'] += 1
        self.counts[kind] += 1
        self.decode_times.append(hyp.processing_time)
        return hyp

    @staticmethod
    def _absolute(words: List[Word], t0: float) -> List[Word]:
        return [replace(w, start=t0 + w.start, end=t0 + w.end) for w in words]

    def _agree(self, utt: _Utterance, hyp: Hypothesis) -> List[Transcript]:
        """Extend the stable words by what two consecutive hypotheses agree on after them."""
        words = self._absolute(hyp.words, utt.stamps[0])
        tail = _after(utt.committed, words)
        if utt.previous is not None:
            old, new = _key(_after(utt.committed, utt.previous)), _key(tail)
            n = 0
            while n < min(len(old), len(new)) and old[n] == new[n]:
                n += 1
            utt.committed = utt.committed + tail[:n]
            tail = tail[n:]
        utt.previous, utt.tail = words, tail
        stable = utt.frozen + utt.committed
        decoded_end = utt.stamps[0] + hyp.audio_seconds
        if (len(stable) <= utt.published
                or decoded_end - utt.last_partial < self.config.partial_interval - 1e-6):
            return []
        utt.published, utt.last_partial = len(stable), decoded_end
        self.counts['partials'] += 1
        return [Transcript(utt.utterance_id, False, list(stable), utt.start, decoded_end,
                           hyp.language, hyp.language_probability, hyp.processing_time)]

    def _cut(self, utt: _Utterance) -> None:
        """Cut a segment that outgrew max_segment at a pause after its stable words."""
        hyp = self._decode(np.concatenate(utt.samples), 'cut_decodes')
        self._agree(utt, hyp)  # updates the stable words; a partial waits for the next decode
        seg_end = utt.stamps[-1] + len(utt.samples[-1]) / SAMPLE_RATE
        keep, rest = utt.committed, utt.tail
        if not keep:
            # No agreement yet (partials were skipped): keep all but the last word, which
            # the window edge may have cut off; it is decoded again with what follows.
            words = self._absolute(hyp.words, utt.stamps[0])
            keep, rest = words[:-1], words[-1:]
        if keep:
            lo = keep[-1].end
            hi = rest[0].start if rest else seg_end
            inside = [i for i, t in enumerate(utt.stamps)
                      if t >= lo and t + len(utt.samples[i]) / SAMPLE_RATE <= hi]
            cut = min(inside, key=lambda i: utt.probs[i]) if inside else \
                next((i for i, t in enumerate(utt.stamps) if t >= lo), len(utt.stamps) - 1)
        else:
            cut = 0
        if cut < 1:
            # Nothing recognised in a whole window (or no pause after the stable words):
            # keep only the last second, so that the segment shrinks whatever happens.
            cut = _last_frames(utt.samples, 1.0)
        self.counts['cuts'] += 1
        utt.frozen = utt.frozen + list(keep)
        utt.published = min(utt.published, len(utt.frozen))
        del utt.samples[:cut], utt.stamps[:cut], utt.probs[:cut]
        utt.last_speech -= cut
        utt.segment += 1
        utt.previous, utt.committed, utt.tail, utt.speculative = None, [], [], None

    def _finalize(self, job: _Final) -> List[Transcript]:
        hyp = job.speculative
        if hyp is not None:
            self.counts['speculative_hits'] += 1
        elif len(job.audio):
            hyp = self._decode(job.audio, 'final_decodes')
        else:
            hyp = Hypothesis()
        words = job.frozen + self._absolute(hyp.words, job.audio_start)
        if not words and not job.partials_published:
            self.counts['empty_finals'] += 1  # noise the VAD took for speech: nothing to say
            return []
        self.counts['finals'] += 1
        return [Transcript(job.utterance_id, True, words, job.start, job.end, hyp.language,
                           hyp.language_probability, hyp.processing_time)]
