# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Unit tests of the ROS-free audio core: decoding, resampling, framing, stamping."""

import array

from late_fusion_ros.core.audio import (AudioFramer, AudioStream, check_coding_format, decode_pcm,
                                        HeaderlessStamper, StreamClock, StreamFormat,
                                        StreamResampler, to_mono)
from late_fusion_ros.core.errors import InputError
import numpy as np
import pytest

RNG = np.random.default_rng(7)
# Known samples in [-1, 1), interleaved as (frames, channels).
SIGNAL = RNG.uniform(-1, 1, size=(50, 3)).astype(np.float32)

# Independent encoders: sample_format -> (bytes of SIGNAL, tolerance of the round trip);
# truncation and the 2**n - 1 vs 2**n scale each cost up to one quantisation step.
ENCODED = {
    'S16LE': ((SIGNAL * 32767).astype('<i2').tobytes(), 2 / 32767),
    'S16BE': ((SIGNAL * 32767).astype('>i2').tobytes(), 2 / 32767),
    'S32LE': ((SIGNAL.astype(np.float64) * (2**31 - 1)).astype('<i4').tobytes(), 1e-6),
    'S32BE': ((SIGNAL.astype(np.float64) * (2**31 - 1)).astype('>i4').tobytes(), 1e-6),
    'F32LE': (SIGNAL.astype('<f4').tobytes(), 0),
    'F32BE': (SIGNAL.astype('>f4').tobytes(), 0),
    'U8': ((SIGNAL * 127 + 128).astype('u1').tobytes(), 2 / 127),
}


@pytest.mark.parametrize('sample_format', sorted(ENCODED))
def test_every_sample_format_round_trips(sample_format):
    """Decode every sample format from every container rclpy may hand over."""
    data, tol = ENCODED[sample_format]
    for container in (data, bytearray(data), memoryview(data), array.array('B', data),
                      np.frombuffer(data, np.uint8)):
        out = decode_pcm(container, sample_format.lower(), 3)
        assert out.dtype == np.float32 and out.shape == SIGNAL.shape
        np.testing.assert_allclose(out, SIGNAL, atol=tol + 1e-7)


def test_interleaving_downmix_and_channel_pick():
    """De-interleave stereo, then pick each channel and downmix."""
    left = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    right = -left / 2
    stereo = decode_pcm(np.stack([left, right], axis=1).astype('<f4').tobytes(), 'F32LE', 2)
    np.testing.assert_array_equal(to_mono(stereo, 0), left)
    np.testing.assert_array_equal(to_mono(stereo, 1), right)
    np.testing.assert_allclose(to_mono(stereo), (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(to_mono(stereo[:, :1]), left)


@pytest.mark.parametrize('call, reason', [
    (lambda: decode_pcm(b'\x00' * 5, 'S16LE', 1), 'odd_byte_count'),
    (lambda: decode_pcm(b'\x00' * 6, 'S16LE', 2), 'odd_byte_count'),
    (lambda: decode_pcm(b'\x00' * 4, 'S24LE', 1), 'unknown_sample_format'),
    (lambda: decode_pcm(b'', 'S16LE', 1), 'empty'),
    (lambda: decode_pcm(b'\x00' * 4, 'S16LE', 0), 'bad_channels'),
    (lambda: decode_pcm(np.array([0, np.nan], '<f4').tobytes(), 'F32LE', 1), 'non_finite'),
    (lambda: check_coding_format('mp3'), 'compressed_audio'),
    (lambda: to_mono(np.zeros((4, 2), np.float32), 2), 'bad_channel'),
    (lambda: to_mono(np.zeros(4, np.float32)), 'wrong_dimension'),
])
def test_bad_input_is_rejected_with_reason(call, reason):
    """Reject malformed audio with the reason nodes count."""
    with pytest.raises(InputError) as err:
        call()
    assert err.value.reason == reason


def test_compressed_audio_message_names_the_fix():
    """Tell the user how to get raw PCM, and accept raw PCM codings."""
    with pytest.raises(InputError, match='format:=wave'):
        check_coding_format('MP3')
    for ok in ('', 'wave', 'WAV', 'pcm', 'raw'):
        check_coding_format(ok)


def test_resampler_chunked_equals_whole_signal():
    """Carry resampler state so that chunking does not change the output."""
    x = RNG.standard_normal(20000).astype(np.float32)
    whole = StreamResampler(44100, 16000).process(x)
    chunked_resampler = StreamResampler(44100, 16000)
    cuts = np.sort(RNG.integers(0, x.size, 30))
    chunked = np.concatenate([chunked_resampler.process(c) for c in np.split(x, cuts)])
    n = min(whole.size, chunked.size)
    assert n > 0.99 * whole.size
    np.testing.assert_allclose(chunked[:n], whole[:n], atol=1e-5)


def test_resampler_keeps_frequency_and_resets():
    """Keep a 440 Hz tone at 440 Hz, and restart identically after reset."""
    t = np.arange(44100) / 44100
    resampler = StreamResampler(44100, 16000)
    out = resampler.process(np.sin(2 * np.pi * 440 * t).astype(np.float32))
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert abs(np.argmax(spectrum) * 16000 / out.size - 440) < 2
    resampler.reset()
    again = resampler.process(np.sin(2 * np.pi * 440 * t).astype(np.float32))
    np.testing.assert_array_equal(again, out)


def test_resampler_passes_equal_rates_through():
    """Pass samples through unchanged when the rates match."""
    x = RNG.standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(StreamResampler(16000, 16000).process(x), x)


@pytest.mark.parametrize('window, hop', [(400, 160), (512, 512), (16, 1)])
def test_framer_matches_sliding_window_view(window, hop):
    """Frame random chunks exactly as a sliding window over the whole signal."""
    rate, t0 = 16000, 100.25
    x = RNG.standard_normal(7000).astype(np.float32)
    framer = AudioFramer(window, hop)
    frames, pos = [], 0
    for chunk in np.split(x, np.sort(RNG.integers(0, x.size, 40))):
        frames += framer.push(chunk, t0 + pos / rate, rate)
        pos += chunk.size
    expected = np.lib.stride_tricks.sliding_window_view(x, window)[::hop]
    assert len(frames) == len(expected)
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.samples, expected[k])
        assert frame.seq == k
        assert frame.stamp == t0 + k * hop / rate


def test_framer_skips_windows_a_slow_consumer_cannot_take():
    """Keep only the newest windows of a burst and count the rest."""
    framer = AudioFramer(100, 50, max_pending_windows=2)
    x = np.arange(1000, dtype=np.float32)
    frames = framer.push(x, 0.0, 1000)
    # 19 windows fit; the 2 newest are kept and their sequence numbers show the gap.
    assert [f.seq for f in frames] == [17, 18]
    assert framer.skipped_windows == 17
    np.testing.assert_array_equal(frames[-1].samples, x[900:1000])
    assert frames[-1].stamp == 0.9
    more = framer.push(x[:50], 1.0, 1000)
    assert [f.seq for f in more] == [19] and framer.skipped_windows == 17


def test_framer_resyncs_on_gap_and_tolerates_jitter():
    """Ignore stamp jitter but follow the chunk stamp after a gap."""
    rate, window = 1000, 100
    framer = AudioFramer(window, window)
    assert framer.push(np.zeros(150, np.float32), 5.0, rate)[0].stamp == 5.0
    # Jitter below half a window keeps the running clock.
    assert framer.push(np.zeros(50, np.float32), 5.19, rate)[0].stamp == 5.1
    assert framer.resyncs == 0
    # A 10 s gap: stamps follow the new chunk, buffered samples are kept.
    framer.push(np.zeros(30, np.float32), 5.2, rate)
    frames = framer.push(np.zeros(170, np.float32), 20.0, rate)
    assert framer.resyncs == 1
    assert [f.stamp for f in frames] == [20.0 - 0.03, 20.0 + 0.07]


def test_framer_reset_forgets_everything():
    """Restart samples, clock and sequence numbers on reset."""
    framer = AudioFramer(10, 5)
    framer.push(np.ones(8, np.float32), 0.0, 100)
    framer.reset()
    frames = framer.push(np.zeros(10, np.float32), 3.0, 100)
    assert len(frames) == 1 and frames[0].seq == 0 and frames[0].stamp == 3.0
    assert not frames[0].samples.any()


def test_headerless_stamper_is_contiguous_and_monotonic():
    """Stamp continuous chunks back to back, resync on pauses, never go back."""
    rate, n = 16000, 1600
    stamper = HeaderlessStamper(max_skew=0.5)
    arrivals = 10.0 + 0.1 * np.arange(1, 21) + RNG.uniform(0, 0.05, 20)
    stamps = [stamper.stamp(a, n, rate) for a in arrivals]
    assert stamps[0] == pytest.approx(arrivals[0] - 0.1)
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-12)
    # A long pause resyncs to the arrival; a burst of early chunks never goes backwards.
    assert stamper.stamp(30.0, n, rate) == pytest.approx(29.9)
    assert stamper.stamp(30.01, n, rate) == pytest.approx(30.0)
    assert stamper.stamp(30.02, n, rate) == pytest.approx(30.1)
    # Arrivals a whole second earlier mean the clock itself went back: follow it.
    assert stamper.stamp(29.0, n, rate) == pytest.approx(28.9)
    stamper.reset()
    assert stamper.stamp(1.0, n, rate) == pytest.approx(0.9)


def test_stream_clock_stamps_resampled_chunks_on_the_input_clock():
    """48 kHz chunks resampled to 16 kHz: output stamps equal input time; gaps re-anchor."""
    rate_in, rate_out, chunk = 48000, 16000, 1536
    clock = StreamClock(rate_in, rate_out, max_skew=0.016)
    resampler = StreamResampler(rate_in, rate_out)
    x = np.sin(2 * np.pi * 300 * np.arange(rate_in) / rate_in).astype(np.float32)
    t0, produced, stamps = 100.0, 0, []
    for k in range(0, len(x), chunk):
        assert clock.input_chunk(t0 + k / rate_in, chunk) == (k == 0)
        out = resampler.process(x[k:k + chunk])
        stamps.append(clock.output_stamp(len(out)))
        assert stamps[-1] == pytest.approx(t0 + produced / rate_out)
        produced += len(out)
    # A chunk 1 s later than the clock expects is a new stream anchored at its own stamp.
    assert clock.input_chunk(t0 + 3.0, chunk)
    assert clock.output_stamp(100) == pytest.approx(t0 + 3.0)
    # Jitter within max_skew is not a gap.
    assert not clock.input_chunk(t0 + 3.0 + chunk / rate_in + 0.005, chunk)


def test_resampler_flush_returns_the_tail_so_no_sample_is_lost():
    """Chunked output plus flush() has as many samples as the whole signal resampled."""
    x = np.sin(2 * np.pi * 300 * np.arange(48000) / 48000).astype(np.float32)
    resampler = StreamResampler(48000, 16000)
    out = [resampler.process(x[k:k + 1536]) for k in range(0, len(x), 1536)]
    total = sum(len(o) for o in out) + len(resampler.flush())
    assert total == 16000
    # flush() left a fresh stream behind.
    np.testing.assert_array_equal(resampler.process(x[:1536]),
                                  StreamResampler(48000, 16000).process(x[:1536]))


def test_headerless_stamper_follows_a_clock_that_went_back():
    """After a sim-time or bag-loop reset, stamps restart from the new clock."""
    stamper = HeaderlessStamper(max_skew=0.5)
    for k in range(10):
        stamper.stamp(1000.0 + 0.032 * (k + 1), 512, 16000)
    back = stamper.stamp(5.032, 512, 16000)
    assert back == pytest.approx(5.0)
    assert stamper.stamp(5.064, 512, 16000) == pytest.approx(5.032)


def test_stream_clock_is_gap_does_not_move_the_clock():
    """is_gap() only asks; input_chunk() anchors."""
    clock = StreamClock(16000, 16000, max_skew=0.1)
    assert clock.is_gap(1.0)
    assert clock.input_chunk(1.0, 512)
    assert not clock.is_gap(1.032) and clock.is_gap(2.0)
    assert not clock.input_chunk(1.032, 512)


# ---------------------------------------------------------------- AudioStream

def pcm_chunks(rate, channels, chunk, seconds, fmt='<i2'):
    """Yield (bytes, first-sample index) of a 300 Hz tone (+ a quieter channel) in chunks."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    cols = [0.5 * np.sin(2 * np.pi * 300 * t)] + [0.25 * np.sin(2 * np.pi * 500 * t)] * (
        channels - 1)
    x = np.stack(cols, axis=1)
    data = (x * 32767).astype(fmt) if fmt != '<f4' else x.astype(fmt)
    for k in range(0, n - chunk + 1, chunk):
        yield data[k:k + chunk].tobytes(), k


@pytest.mark.parametrize('rate', [16000, 44100, 48000])
@pytest.mark.parametrize('channels', [1, 2])
@pytest.mark.parametrize('chunk_ms', [10, 21.3, 32, 64])
def test_stream_emits_each_window_with_the_chunk_holding_its_last_sample(rate, channels,
                                                                         chunk_ms):
    """No window waits for a later chunk: the resampler withholds (almost) nothing."""
    chunk = int(rate * chunk_ms / 1000)
    stream = AudioStream(512, 512, 16000, StreamFormat(rate, channels, 'S16LE'))
    t0, windows, late = 50.0, 0, []
    for data, first in pcm_chunks(rate, channels, chunk, 2.0):
        chunk_last = t0 + (first + chunk - 1) / rate  # capture time of its last sample
        for frame in stream.push(data, t0 + first / rate, arrival=0.0):
            last = frame.stamp + 511 / 16000
            assert last <= chunk_last + 1e-9, 'a window came out before its samples arrived'
            # How far before this chunk the window's last sample lies (> 0: it waited).
            late.append(chunk_last - chunk / rate - last)
            assert frame.stamp == pytest.approx(t0 + windows * 512 / 16000, abs=1e-9)
            windows += 1
    # Only a window ending within ~2 output samples of a chunk's end may wait one chunk.
    assert max(late) <= 2.0 / 16000
    assert windows == int(2.0 * 16000) // 512 - (1 if rate != 16000 else 0) or \
        windows == int(2.0 * 16000) // 512
    assert stream.counts['chunks'] == int(rate * 2.0) // chunk
    assert stream.counts['gaps'] == 0 and stream.counts['lost_samples'] == 0


def test_stream_counts_gaps_and_lost_samples_and_marks_the_restart():
    """A stamp that jumps ahead is a gap: counted, estimated in samples, model restarted."""
    stream = AudioStream(512, 512, 16000, StreamFormat(48000, 2, 'S16LE'))
    chunks = list(pcm_chunks(48000, 2, 1024, 1.0))
    frames = []
    for data, first in chunks[:20]:
        frames += stream.push(data, 10.0 + first / 48000, 0.0)
    assert frames[0].restart and not any(f.restart for f in frames[1:])
    # Three chunks (64 ms) never arrive.
    after = []
    for data, first in chunks[23:30]:
        after += stream.push(data, 10.0 + first / 48000, 0.0)
    assert stream.counts['gaps'] == 1
    assert stream.counts['lost_samples'] == 3 * 1024
    assert sum(f.restart for f in after) == 1
    # Time going back (a bag loop) is a clock jump, a driver restarting later a pause:
    # neither is a loss.
    stream.push(chunks[0][0], 10.0, 0.0)
    stream.push(chunks[0][0], 20.0, 0.0)
    assert stream.counts['clock_jumps'] == 1 and stream.counts['pauses'] == 1
    assert stream.counts['lost_samples'] == 3 * 1024 and stream.counts['gaps'] == 3


def test_stream_format_change_restarts_and_bad_formats_are_refused():
    """An AudioInfo with a new rate restarts the stream; an impossible one is refused."""
    stream = AudioStream(512, 512, 16000, StreamFormat(16000, 1, 's16le'))
    assert stream.stream_format == StreamFormat(16000, 1, 'S16LE')
    assert not stream.set_format(StreamFormat(16000, 1, 'S16LE'))
    generation = stream.generation
    assert stream.set_format(StreamFormat(44100, 2, 'F32LE'))
    assert stream.generation == generation + 1 and stream.counts['format_changes'] == 1
    for bad, reason in ((StreamFormat(100, 1), 'bad_audio_info'),
                        (StreamFormat(16000, 0), 'bad_audio_info'),
                        (StreamFormat(16000, 1, 'S24LE'), 'unknown_sample_format')):
        with pytest.raises(InputError) as err:
            stream.set_format(bad)
        assert err.value.reason == reason
    assert stream.stream_format == StreamFormat(44100, 2, 'F32LE')
    data, _ = next(pcm_chunks(44100, 2, 4410, 0.5, fmt='<f4'))
    frames = stream.push(data, 1.0, 0.0)
    assert len(frames) == 1600 // 512 and frames[0].restart


def test_stream_refuses_oversized_and_malformed_chunks_without_changing_state():
    """A 60 s chunk is refused before decoding; malformed chunks leave the stream intact."""
    stream = AudioStream(512, 512, 16000, StreamFormat(48000, 2, 'S16LE'),
                         max_chunk_seconds=10.0)
    with pytest.raises(InputError) as err:
        stream.push(b'\x00' * (60 * 48000 * 4), 0.0, 0.0)
    assert err.value.reason == 'too_large'
    with pytest.raises(InputError) as err:
        stream.push(b'\x00' * 7, 0.0, 0.0)
    assert err.value.reason == 'odd_byte_count'
    with pytest.raises(InputError) as err:
        stream.push(b'\x00' * 8, float('nan'), 0.0)
    assert err.value.reason == 'non_finite'
    assert stream.counts['chunks'] == 0
    frames = stream.push(b'\x00' * (4 * 1536), 3.0, 0.0)
    assert len(frames) == 1 and frames[0].stamp == 3.0


def test_stream_stamps_headerless_chunks_from_arrival():
    """Headerless chunks are stamped arrival minus duration, then back to back."""
    stream = AudioStream(512, 512, 16000, StreamFormat(16000, 1, 'S16LE'))
    chunk = b'\x00' * 1024  # 512 frames, 32 ms
    first = stream.push(chunk, None, arrival=5.032)
    assert first[0].stamp == pytest.approx(5.0)
    second = stream.push(chunk, None, arrival=5.070)  # 6 ms of arrival jitter
    assert second[0].stamp == pytest.approx(5.032)


def test_stream_takes_arrival_stamp_jitter_for_jitter_not_loss():
    """Stamps taken on arrival jitter by milliseconds: no loss, no restart, stamps smooth."""
    rng = np.random.default_rng(3)
    stream = AudioStream(512, 512, 16000, StreamFormat(48000, 1, 'S16LE'))
    frames = []
    for data, first in pcm_chunks(48000, 1, 480, 3.0):  # 10 ms chunks
        frames += stream.push(data, 7.0 + first / 48000 + rng.normal(0, 0.002), 0.0)
    assert stream.counts['gaps'] == 0 and stream.counts['lost_samples'] == 0
    assert sum(f.restart for f in frames) == 1
    np.testing.assert_allclose(np.diff([f.stamp for f in frames]), 0.032, atol=1e-9)
