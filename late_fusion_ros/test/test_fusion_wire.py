# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The fusion node's raw path against rclpy's message API (nodes/fusion_wire.py).

Every Embedding read from its bytes must give the engine what the message API gives, and
every FusionOutput written as bytes must be what `serialize_message` writes for the
message `fusion_output_msg` builds: byte for byte, but for CDR's alignment padding, whose
content rclpy leaves as its buffer held it (it differs from call to call); ours is zeros.
"""

import random
import struct

from builtin_interfaces.msg import Time as TimeMsg
from late_fusion_msgs.msg import Embedding, FusionOutput, Transcript, TranscriptWord
from late_fusion_ros.core.fusion import (EmbeddingInput, FusionConfig, FusionEngine,
                                         FusionResult, ModalityConfig, ModalityReport)
from late_fusion_ros.nodes.fusion_node import embedding_to_input, fusion_output_msg
from late_fusion_ros.nodes.fusion_wire import FusionOutputWriter, parse_embedding
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

# Strings of every length modulo 8 (alignment), empty, and beyond ASCII.
WORDS = ['', 'a', 'ab', 'abc', 'abcd', 'audio', 'vision', 'speech', 'camera_optical_frame',
         'ñandú', 'größe', '話者', 'mouth_moving', 'x' * 37]


def _time(t: float) -> TimeMsg:
    ns = int(round(t * 1e9))
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _random_embedding(rng: random.Random) -> Embedding:
    msg = Embedding(modality=rng.choice(WORDS), encoder_id=rng.choice(WORDS),
                    seq=rng.choice([0, 1, rng.randrange(1 << 32), (1 << 64) - 1]))
    msg.header.stamp = _time(rng.uniform(0, 2e9))
    msg.header.frame_id = rng.choice(WORDS)
    msg.data = [rng.uniform(-10, 10) for _ in range(rng.choice([0, 1, 2, 3, 10, 1280]))]
    labels = [rng.choice(WORDS) for _ in range(rng.choice([0, 1, 2, 5]))]
    msg.labels = labels
    msg.scores = [rng.random() for _ in range(rng.choice([len(labels), len(labels), 3]))]
    msg.source_duration.sec, msg.source_duration.nanosec = rng.randrange(3), rng.randrange(10**9)
    msg.processing_time.nanosec = rng.randrange(10**9)
    msg.processing_seconds = rng.random()
    msg.capture_to_publish_latency = rng.choice([0.0, rng.random(), -rng.random(), 1e300])
    return msg


def test_embedding_read_from_bytes_as_the_message_api_reads_it():
    """Strings of every length and script, 0-1280 values, 0-5 labels, extreme seqs."""
    rng = random.Random(15)
    for _ in range(300):
        msg = _random_embedding(rng)
        data = serialize_message(msg)
        inp, latency = parse_embedding(data)
        ref = embedding_to_input(deserialize_message(data, Embedding))
        assert (inp.modality, inp.seq, inp.stamp, inp.labels, inp.encoder_id, inp.frame_id) == \
            (ref.modality, ref.seq, ref.stamp, ref.labels, ref.encoder_id, ref.frame_id)
        for mine, theirs in ((inp.data, ref.data), (inp.scores, ref.scores)):
            assert mine.dtype == np.float32 and mine.ndim == 1
            assert mine.tobytes() == theirs.tobytes()
        assert latency == msg.capture_to_publish_latency


def test_embedding_in_another_encoding_or_cut_short():
    """Not little-endian CDR: None (the node uses the message API); cut short: an error."""
    data = serialize_message(_random_embedding(random.Random(1)))
    assert parse_embedding(b'\x00\x00\x00\x00' + data[4:]) is None  # big-endian CDR
    assert parse_embedding(b'\x00\x07\x00\x00' + data[4:]) is None  # XCDR2
    for end in range(4, len(data)):
        with pytest.raises((ValueError, struct.error)):
            parse_embedding(data[:end])


def _writer():
    return FusionOutputWriter(lambda fused, frame_id, transcript: fusion_output_msg(
        fused, frame_id, 0.0, transcript))


def _check(writer, fused, frame_id='base_link', transcript=None, latency=0.0125,
           spent=0.000125):
    """Assert that the writer's bytes are the message API's, padding aside."""
    mine = writer.write(fused, frame_id, transcript, latency, spent)
    msg = fusion_output_msg(fused, frame_id, 123.0, transcript)
    msg.capture_to_output_latency, msg.arrival_to_publish_latency = latency, spent
    theirs = serialize_message(msg)
    assert len(mine) == len(theirs)
    pads = writer.padding(fused, frame_id, transcript)
    assert all(0 < n < 8 for _, n in pads), pads
    masked = bytearray(theirs)
    for offset, n in pads:
        assert mine[offset:offset + n] == bytes(n)
        masked[offset:offset + n] = bytes(n)
    assert mine == bytes(masked)
    # And what a subscriber reads: the same message.
    assert deserialize_message(mine, FusionOutput) == deserialize_message(theirs, FusionOutput)
    return mine


def _transcripts():
    words = [TranscriptWord(word=w, start=_time(10.0 + k), end=_time(10.5 + k),
                            probability=0.25 * k) for k, w in enumerate(['hey', 'róbot', ''])]
    final = Transcript(utterance_id=7, final=True, text='hey róbot', words=words,
                       end=_time(12.25), language='en', language_probability=0.9,
                       model_id='tiny.en')
    final.header.stamp, final.header.frame_id = _time(10.0), 'microphone'
    final.processing_time.nanosec = 160_000_000
    return [None, Transcript(), Transcript(text='partial only', final=False), final,
            Transcript(final=True, end=_time(1.0))]


@pytest.mark.parametrize('strategy', ['speaking_to_robot', 'weighted_average', 'log_linear'])
def test_outputs_of_the_engine_written_as_the_message_api_writes_them(strategy):
    """Several modalities present, absent and stale, every transcript kind, any frame_id."""
    rng = np.random.default_rng(3)
    names = ['audio', 'vision', 'face', 'speech', 'x']
    engine = FusionEngine(FusionConfig(
        [ModalityConfig(n, max_age=0.3 + 0.2 * k, decay=['exponential', 'linear', 'none'][k % 3])
         for k, n in enumerate(names)], strategy=strategy))
    labels = {'audio': ['speech'], 'vision': ['face', 'mouth_moving', 'dog'],
              'face': ['face', 'mouth_moving'], 'speech': ['addressed_to_robot', 'stop'],
              'x': ['speech', 'face']}
    writer = _writer()
    transcripts = _transcripts()
    # Before anything arrived: no output is valid, nothing is present.
    _check(writer, engine.evaluate(5.0), 'base_link', transcripts[3])
    t, checked = 5.0, 0
    for k in range(200):
        name = names[rng.integers(len(names)) if k % 3 else 0]
        t += float(rng.uniform(0.0, 0.2))
        scores = rng.random(len(labels[name])).astype(np.float32)
        result = engine.update(EmbeddingInput(name, k, t - float(rng.uniform(0, 0.05)),
                                              rng.random(4).astype(np.float32),
                                              labels[name], scores), t)
        if result.output is None:
            continue
        _check(writer, result.output, ['base_link', '', 'ñ'][k % 3], transcripts[k % 5],
               latency=float(rng.uniform(-1, 1)), spent=float(rng.uniform(0, 1e-3)))
        checked += 1
    assert checked > 150


def test_hand_made_results_reports_attention_and_extremes():
    """A plain list of reports, attention weights, empty labels, uint64 extremes."""
    writer = _writer()
    big = (1 << 64) - 1
    reports = [ModalityReport('audio', True, False, 1.5, -0.25, 0.75, big, big, 0, 3),
               ModalityReport('vision', True, True, 0.0, 9.0, 0.0, 0, 1, 2, big),
               ModalityReport('話者', False, False, 0.0, 0.0, 0.0, 0, 0, 0, 0)]
    for labels, scores, valid in ((['a', 'bb', 'ccc', 'dddd'], [0.1, 0.2, 0.3, 0.4], True),
                                  ([], [], False)):
        fused = FusionResult('vision', 12, 1.5, 'attention', labels,
                             np.asarray(scores, np.float32), 'bb' if valid else '',
                             0.4 if valid else 0.0, valid, reports,
                             {'audio': 0.25, 'vision': 0.75})
        _check(writer, fused)
        _check(writer, fused, transcript=_transcripts()[3])
    # float64 scores are written as the message API rounds them to float32.
    fused = FusionResult('audio', 0, 0.0, 'weighted_average', ['p'], np.array([1 / 3]), 'p',
                         1 / 3, True, reports[:1])
    _check(writer, fused)


def test_many_shapes_stay_right():
    """More shapes than the writer keeps: the cache starts over, outputs stay the same."""
    writer = _writer()
    report = [ModalityReport('audio', True, False, 2.0, 0.5, 0.5, 1, 1, 0, 0)]
    for k in range(3 * FusionOutputWriter.MAX_SHAPES):
        decision = f'label_{k}'
        fused = FusionResult('audio', k, 2.5, 'weighted_average', [decision], np.array(
            [0.5], np.float32), decision, 0.5, True, report)
        _check(writer, fused)
        transcript = Transcript(final=True, text=f'said {k}', end=_time(1.0 + k))
        _check(writer, fused, transcript=transcript)
    assert len(writer._shapes) <= FusionOutputWriter.MAX_SHAPES


def test_stamps_round_as_the_message_api_rounds_them():
    """Half nanoseconds, negative stamps (clamped to 0) and large stamps."""
    writer = _writer()
    for stamp in (0.0, 1e-9 * 2.5, 1.0000000005, 1_700_000_000.123456789, -3.0, 2.0**31 - 1):
        report = [ModalityReport('audio', True, False, stamp, 0.0, 1.0, 1, 1, 0, 0)]
        fused = FusionResult('audio', 1, stamp, 's', [], np.zeros(0, np.float32), '', 0.0,
                             False, report)
        _check(writer, fused)
