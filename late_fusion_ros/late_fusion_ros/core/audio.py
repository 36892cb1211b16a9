# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Audio decoding, resampling, framing and stamping (audio_common_msgs semantics).

Plain values in, numpy arrays out: no ROS import, so every function here is
unit-tested without a ROS graph.
"""

from dataclasses import dataclass

from late_fusion_ros.core.errors import InputError
import numpy as np
import soxr

# sample_format (as AudioInfo spells it) -> (numpy dtype, zero level, scale to [-1, 1]);
# float formats are already in [-1, 1].
_PCM_FORMATS = {
    'U8': (np.dtype('u1'), 128.0, 1.0 / 128),
    'S16LE': (np.dtype('<i2'), 0.0, 1.0 / 2 ** 15),
    'S16BE': (np.dtype('>i2'), 0.0, 1.0 / 2 ** 15),
    'S32LE': (np.dtype('<i4'), 0.0, 1.0 / 2 ** 31),
    'S32BE': (np.dtype('>i4'), 0.0, 1.0 / 2 ** 31),
    'F32LE': (np.dtype('<f4'), None, None),
    'F32BE': (np.dtype('>f4'), None, None),
}
_UNCOMPRESSED_CODINGS = {'', 'wave', 'wav', 'pcm', 'raw'}


def _as_bytes(data) -> np.ndarray:
    """View a bytes-like value or uint8 array as a flat uint8 array, copying only if needed."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    # bytes, bytearray, memoryview and array.array('B') all expose the buffer protocol.
    return np.frombuffer(data, dtype=np.uint8)


def decode_pcm(data, sample_format: str, channels: int) -> np.ndarray:
    """Decode interleaved PCM bytes to float32 samples of shape (frames, channels) in [-1, 1]."""
    if channels < 1:
        raise InputError('bad_channels', f'channels must be >= 1, got {channels}')
    try:
        dtype, offset, scale = _PCM_FORMATS[sample_format.upper()]
    except KeyError:
        raise InputError('unknown_sample_format',
                         f'unsupported sample_format {sample_format!r}; '
                         f'supported: {", ".join(_PCM_FORMATS)}') from None
    raw = _as_bytes(data)
    if raw.size == 0:
        raise InputError('empty', 'audio chunk has no data')
    frame_bytes = dtype.itemsize * channels
    if raw.size % frame_bytes:
        raise InputError('odd_byte_count',
                         f'{raw.size} bytes is not a whole number of {sample_format} '
                         f'frames of {channels} channel(s) ({frame_bytes} bytes each)')
    samples = raw.view(dtype).astype(np.float32)
    if dtype.kind == 'f':
        if not np.isfinite(samples).all():
            raise InputError('non_finite', 'float audio contains NaN or infinity')
    else:
        samples -= offset
        samples *= scale
    return samples.reshape(-1, channels)


def check_coding_format(coding_format: str) -> None:
    """Reject compressed audio (e.g. mp3): only raw PCM can be decoded."""
    if coding_format.lower() not in _UNCOMPRESSED_CODINGS:
        raise InputError('compressed_audio',
                         f'audio coding_format {coding_format!r} is compressed; only raw PCM '
                         'is supported: set format:=wave on audio_capture')


def to_mono(x: np.ndarray, channel: int = -1) -> np.ndarray:
    """Downmix (channel=-1, mean over channels) or pick one channel of (frames, channels) audio."""
    if x.ndim != 2:
        raise InputError('wrong_dimension', f'expected (frames, channels), got shape {x.shape}')
    if channel == -1:
        mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
    elif 0 <= channel < x.shape[1]:
        mono = x[:, channel]
    else:
        raise InputError('bad_channel', f'channel {channel} out of range for {x.shape[1]} '
                                        'channel(s); use -1 to downmix')
    return np.ascontiguousarray(mono, dtype=np.float32)


class StreamResampler:
    """
    Resample a mono float32 stream chunk by chunk, carrying filter state across chunks.

    Backed by python-soxr (the resampler librosa uses); chunked output equals
    whole-signal output up to float rounding, delayed by the filter latency.
    """

    def __init__(self, in_rate: int, out_rate: int):
        """Prepare a resampler from in_rate to out_rate (Hz); equal rates pass through."""
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f'sample rates must be positive, got {in_rate} -> {out_rate}')
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None
        self.reset()

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample one chunk of 1-D float32 samples and return the output available so far."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter (end of a stream), then reset."""
        tail = np.zeros(0, np.float32)
        if self._stream is not None:
            tail = self._stream.resample_chunk(tail, last=True)
        self.reset()
        return tail

    def reset(self) -> None:
        """Forget the carried state, e.g. after a gap in the stream."""
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype='float32')


@dataclass(frozen=True)
class Frame:
    """One analysis window of a mono stream."""

    samples: np.ndarray
    stamp: float
    seq: int


class AudioFramer:
    """
    Cut a mono stream into windows of ``window`` samples starting ``hop`` samples apart.

    Samples are kept in a contiguous buffer that holds less than one window
    between pushes, so each push costs O(chunk + window) whatever the history.
    Stamps come from an anchor (a chunk stamp) plus an integer sample count, so
    they do not accumulate rounding error.
    """

    def __init__(self, window: int, hop: int, max_pending_windows: int = 0):
        """Configure the framing; max_pending_windows > 0 bounds windows returned per push."""
        if window < 1 or not 1 <= hop <= window:
            raise ValueError(f'need window >= 1 and 1 <= hop <= window, got {window}, {hop}')
        self.window = window
        self.hop = hop
        self.max_pending_windows = max_pending_windows
        self._buf = np.zeros(2 * window, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Drop buffered samples and the clock; counters restart at zero."""
        self._len = 0          # valid samples in _buf; _buf[0] starts the next window
        self._start = 0        # stream index of _buf[0]
        self._anchor = None    # (stream index, stamp) the clock is derived from
        self._rate = None
        self._seq = 0
        self.skipped_windows = 0
        self.resyncs = 0

    def _stamp_of(self, index: int) -> float:
        anchor_index, anchor_stamp = self._anchor
        return anchor_stamp + (index - anchor_index) / self._rate

    def push(self, samples: np.ndarray, first_sample_stamp: float, rate: int) -> list:
        """Append a chunk whose first sample was captured at first_sample_stamp; return Frames."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if rate != self._rate:
            # Buffered samples at another rate cannot share a window with these.
            self.reset()
            self._rate = rate
        end = self._start + self._len
        if self._anchor is None:
            self._anchor = (end, first_sample_stamp)
        elif abs(self._stamp_of(end) - first_sample_stamp) > 0.5 * self.window / rate:
            # Gap or clock jump: trust the chunk's stamp from here on; buffered samples
            # stay (the framing never loses audio) and are stamped back from it.
            self._anchor = (end, first_sample_stamp)
            self.resyncs += 1
        self._append(samples)

        count = (self._len - self.window) // self.hop + 1 if self._len >= self.window else 0
        first = 0
        if 0 < self.max_pending_windows < count:
            first = count - self.max_pending_windows
            self.skipped_windows += first
        frames = [
            Frame(self._buf[k * self.hop:k * self.hop + self.window].copy(),
                  self._stamp_of(self._start + k * self.hop), self._seq + k)
            for k in range(first, count)]
        self._seq += count
        self._consume(count * self.hop)
        return frames

    def _append(self, samples: np.ndarray) -> None:
        needed = self._len + samples.size
        if needed > self._buf.size:
            grown = np.zeros(max(needed, 2 * self._buf.size), dtype=np.float32)
            grown[:self._len] = self._buf[:self._len]
            self._buf = grown
        self._buf[self._len:needed] = samples
        self._len = needed

    def _consume(self, n: int) -> None:
        # Fewer than `window` samples remain after framing, so this move is cheap.
        rest = self._len - n
        self._buf[:rest] = self._buf[n:self._len]
        self._len = rest
        self._start += n


class HeaderlessStamper:
    """
    Stamp headerless audio chunks (AudioData has no header) from their arrival times.

    A chunk's first sample is stamped at the end of the previous chunk while
    the stream is continuous, and at ``arrival - duration`` after a resync.
    Returned stamps never decrease.
    """

    def __init__(self, max_skew: float = 0.5):
        """Resync when the running clock and arrival times disagree by more than max_skew s."""
        self.max_skew = max_skew
        self.reset()

    def reset(self) -> None:
        """Forget the running clock."""
        self._anchor = None    # stamp of the first sample since the last resync
        self._count = 0        # samples stamped since the anchor
        self._rate = None
        self._last = None

    def stamp(self, arrival: float, n_frames: int, rate: int) -> float:
        """Return the capture stamp of the first sample of a chunk that arrived at arrival."""
        estimate = arrival - n_frames / rate
        running = None if self._anchor is None else self._anchor + self._count / self._rate
        if rate != self._rate or running is None or abs(running - estimate) > self.max_skew:
            # Never decrease, unless the clock itself went back (sim time, a bag loop):
            # then follow it instead of pinning every chunk to the old stamp.
            went_back = self._last is not None and estimate < self._last - self.max_skew
            start = estimate if self._last is None or went_back else max(estimate, self._last)
            self._anchor, self._count, self._rate = start, 0, rate
        else:
            start = running
        self._count += n_frames
        self._last = start
        return start


class StreamClock:
    """
    Capture stamps for a resampled stream, and detection of gaps in it.

    soxr's stream output is time-aligned with its input (output sample j is input time
    j / out_rate; it withholds the first samples instead of delaying them), so the stamp of
    every output chunk follows from the stream's anchor stamp and the output count. A
    chunk whose own stamp disagrees with the input clock by more than `max_skew` seconds is
    a discontinuity: the caller resets its resampler and the clock re-anchors there.
    """

    def __init__(self, in_rate: int, out_rate: int, max_skew: float):
        """Clock for in_rate -> out_rate (Hz) tolerating `max_skew` s of stamp jitter."""
        self.in_rate, self.out_rate, self.max_skew = in_rate, out_rate, max_skew
        self._anchor = None
        self._n_in = self._n_out = 0

    def is_gap(self, stamp: float) -> bool:
        """Return True if an input chunk stamped `stamp` would start a new stream."""
        if self._anchor is None:
            return True
        return abs(stamp - (self._anchor + self._n_in / self.in_rate)) > self.max_skew

    def input_chunk(self, stamp: float, n_in: int) -> bool:
        """Account for an input chunk; return True if it starts a new (discontinuous) stream."""
        restart = self.is_gap(stamp)
        if restart:
            self._anchor, self._n_in, self._n_out = stamp, 0, 0
        self._n_in += n_in
        return restart

    def output_stamp(self, n_out: int) -> float:
        """Return the capture stamp of the next `n_out` output samples' first one."""
        stamp = self._anchor + self._n_out / self.out_rate
        self._n_out += n_out
        return stamp
