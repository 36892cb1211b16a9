# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
fusion_offline on a bag of real speech and photos, as a driver would have recorded them.

The bag holds 48 kHz stereo espeak-ng speech and silence in 1024-frame AudioDataStamped
chunks after a latched AudioInfo, and 640x480 rgb8 photos at 5 fps, each received a
little after its capture. fusion_offline runs the launch file's default graph with the
real models (speech to text included): every window and frame is encoded and fused, what
is said comes out as Transcripts and as the speech modality of the fused outputs, timing
fields follow the bag's receipt times, the output is byte-identical from run to run
whatever -j and --batch (and whether speech to text reuses the audio encoder's VAD or runs
its own), re-fusing its own embeddings reproduces its outputs, a Humble sqlite3 bag gives
the same outputs, and nothing of it appears on the ROS graph. Frames are read from the
bag's bytes without rclpy: the parser is checked against rclpy's deserialization.
"""

import os
import subprocess

from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from late_fusion_msgs.msg import Embedding, FusionOutput, Transcript
from late_fusion_ros.bringup import default_params_file, NodeSpec
from late_fusion_ros.bringup.launcher import executable_path
from late_fusion_ros.core.media import camera_frame, scenario, SENTENCES, stereo
from late_fusion_ros.core.transcription import wer
from late_fusion_ros.tools.bag_io import BagReader, BagWriter
from late_fusion_ros.tools.fusion_offline import image_from_cdr
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from test_bag_tools import _humble_bag

pytestmark = pytest.mark.integration

RATE, CHUNK, FPS = 48000, 1024, 5.0
T0 = 1_700_000_000.0
OUTPUTS = {'/fusion_output', '/audio/embedding', '/vision/embedding', '/speech/embedding',
           '/speech/transcript'}


def _stamp(msg, t):
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))


def _messages(pattern='speech silence speech', seconds=None, size=(640, 480), fps=FPS):
    """Return (topic, type, receipt ns, CDR) of the recording, and the speech segments."""
    mono, segments = scenario(pattern, rate=RATE)
    audio = stereo(mono)
    if seconds is not None:
        audio = audio[:int(seconds * RATE)]
    out = [('/audio_info', 'audio_common_msgs/msg/AudioInfo', int((T0 - 0.01) * 1e9),
            serialize_message(AudioInfo(channels=2, sample_rate=RATE, sample_format='S16LE',
                                        bitrate=RATE * 32, coding_format='wave')))]
    for k in range(len(audio) // CHUNK):
        t = T0 + k * CHUNK / RATE
        msg = AudioDataStamped()
        _stamp(msg, t)
        msg.header.frame_id = 'microphone'
        msg.audio.data = audio[k * CHUNK:(k + 1) * CHUNK].astype('<i2').tobytes()
        receipt = t + CHUNK / RATE + 0.001  # sent once its last sample is captured
        out.append(('/audio_stamped', 'audio_common_msgs/msg/AudioDataStamped',
                    int(round(receipt * 1e9)), serialize_message(msg)))
    width, height = size
    photos = [camera_frame(n, width, height) for n in ('astronaut', 'chelsea')]
    duration = len(audio) / RATE
    for k in range(int(duration * fps)):
        t = T0 + k / fps
        rgb = photos[int(k / fps / 2) % 2]
        msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                    data=rgb.tobytes())
        _stamp(msg, t)
        msg.header.frame_id = 'camera_optical_frame'
        out.append(('/image', 'sensor_msgs/msg/Image', int(round((t + 0.005) * 1e9)),
                    serialize_message(msg)))
    out.sort(key=lambda m: m[2])
    return out, segments, len(audio)


def _write(path, messages):
    with BagWriter(path) as writer:
        for topic, msgtype in sorted({(m[0], m[1]) for m in messages}):
            writer.add_topic(topic, msgtype)
        for topic, _, stamp, data in messages:
            writer.write(topic, stamp, data)
    return path


def _offline(*args, timeout=600):
    run = subprocess.run([executable_path('fusion_offline'), *map(str, args)],
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0 and 'Traceback' not in run.stderr, run.stdout + run.stderr
    return run.stdout


def _read(bag):
    with BagReader(str(bag)) as reader:
        return [(t, stamp, bytes(data)) for t, _, stamp, data in reader.messages()]


def _sec(stamp):
    return stamp.sec + stamp.nanosec * 1e-9


@pytest.fixture(scope='module')
def run(ros, start_nodes, tmp_path_factory):
    """Run fusion_offline on the bag while a node of the live graph watches the graph."""
    root = tmp_path_factory.mktemp('offline')
    messages, segments, samples = _messages()
    bag = _write(str(root / 'in_bag'), messages)
    # A live node named like one of the offline graph's: the positive control of discovery.
    start_nodes(NodeSpec('fusion_node', 'fusion_visible', [], [default_params_file()]))
    (root / 'a').mkdir()
    proc = subprocess.Popen([executable_path('fusion_offline'), bag, str(root / 'a' / 'out'),
                             '-j', '2'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = set()

    def watched_to_the_end():
        seen.update(ros.node.get_node_names())  # the graph, sampled every 0.2 s
        return proc.poll() is not None
    ended = ros.wait_for(watched_to_the_end, 600.0, 0.2)
    if not ended:
        proc.kill()
    out, err = proc.communicate()
    assert ended, f'fusion_offline ran past 600 s:\n{out}{err}'
    assert proc.returncode == 0, out + err
    receipts = {(m[0], _header(m)): m[2] for m in messages if m[0] != '/audio_info'}
    return {'root': root, 'bag': bag, 'out': root / 'a' / 'out', 'segments': segments,
            'samples': samples, 'frames': sum(m[0] == '/image' for m in messages),
            'seen': seen, 'log': out + err, 'receipts': receipts}


def _header(message):
    from late_fusion_ros.tools.timeline import header_stamp
    return round(header_stamp(message[3]), 6)


def _messages_of(bag, topic, cls):
    return [deserialize_message(d, cls) for t, _, d in _read(bag) if t == topic]


def test_every_window_and_frame_is_encoded_and_fused(run):
    """One audio output per 32 ms window of the whole recording, one vision per frame."""
    out = _read(run['out'])
    topics = {t for t, _, _ in out}
    assert topics == OUTPUTS, topics
    emb = {t: [deserialize_message(d, Embedding) for tt, _, d in out if tt == t]
           for t in ('/audio/embedding', '/vision/embedding', '/speech/embedding')}
    outputs = [deserialize_message(d, FusionOutput) for t, _, d in out
               if t == '/fusion_output']
    windows = run['samples'] * 16000 // RATE // 512
    assert abs(len(emb['/audio/embedding']) - windows) <= 1, (len(emb['/audio/embedding']),
                                                              windows)
    assert len(emb['/vision/embedding']) == run['frames']
    by_trigger = {m: sum(o.trigger_modality == m for o in outputs)
                  for m in ('audio', 'vision', 'speech')}
    assert by_trigger == {m: len(emb[f'/{m}/embedding']) for m in by_trigger}
    assert 'silero_vad' in emb['/audio/embedding'][0].encoder_id
    assert len(emb['/vision/embedding'][0].data) == 1280


def test_what_is_said_is_transcribed_and_fused(run):
    """Transcripts of both sentences, and the speech modality in the fused outputs."""
    said = _messages_of(run['out'], '/speech/transcript', Transcript)
    finals = [m for m in said if m.final]
    # 'speech silence speech': the first sentence ends in a pause, so it has its final; the
    # bag ends while the second goes on, so it has stable partials only (as live: a stream
    # that stops ends no utterance).
    assert len(finals) == 1, [(m.final, m.text) for m in said]
    assert wer(SENTENCES[0], finals[0].text) <= 0.25, finals[0].text
    assert finals[0].model_id.startswith('faster-whisper/') and finals[0].words
    assert all(m.processing_time.sec == m.processing_time.nanosec == 0 for m in said)
    partials = [m for m in said if not m.final and m.utterance_id == finals[0].utterance_id + 1]
    assert partials, [(m.final, m.text) for m in said]
    assert set(partials[-1].text.lower().split()) <= set(SENTENCES[1].lower().split())
    # The speech Embedding of every final and partial: phrase scores; 'robot' is named in
    # the first sentence only.
    speech = _messages_of(run['out'], '/speech/embedding', Embedding)
    assert len(speech) == len(said)
    assert speech[0].labels == ['addressed_to_robot', 'stop', 'come_here']
    assert [s.seq for s in speech] == list(range(len(speech)))
    assert all(s.processing_seconds == 0.0 for s in speech)
    first = [s for s in speech if s.header.stamp == finals[0].header.stamp][-1]
    assert first.scores[0] > 0.3 and max(speech[-1].scores) == 0.0
    # Every output fuses the speech modality; after the first final they carry it.
    outputs = _messages_of(run['out'], '/fusion_output', FusionOutput)
    assert all([m.modality for m in o.modalities] == ['audio', 'vision', 'speech']
               for o in outputs)
    triggered = [o for o in outputs if o.trigger_modality == 'speech']
    assert len(triggered) == len(speech)
    assert outputs[-1].transcript.text == finals[-1].text
    assert any(o.transcript.text == finals[0].text for o in outputs)


def test_timing_fields_follow_the_bag(run):
    """No wall time offline: processing 0, latencies = receipt time - capture stamp."""
    receipts = run['receipts']
    for topic, stamp, data in _read(run['out']):
        if topic == '/vision/embedding':
            m = deserialize_message(data, Embedding)
            assert m.processing_seconds == 0.0 and m.processing_time.nanosec == 0
            receipt = receipts[('/image', round(_sec(m.header.stamp), 6))]
            assert stamp == receipt
            assert m.capture_to_publish_latency == pytest.approx(
                receipt * 1e-9 - _sec(m.header.stamp), abs=1e-6)
        elif topic == '/speech/embedding':
            m = deserialize_message(data, Embedding)
            assert m.processing_seconds == 0.0
            assert m.capture_to_publish_latency == pytest.approx(
                stamp * 1e-9 - _sec(m.header.stamp), abs=1e-6)
        elif topic == '/fusion_output':
            m = deserialize_message(data, FusionOutput)
            assert m.arrival_to_publish_latency == 0.0
            assert m.capture_to_output_latency == pytest.approx(
                stamp * 1e-9 - _sec(m.header.stamp), abs=1e-6)
            assert m.header.frame_id == 'base_link'


def test_speech_decided_speaking_and_silence_not(run):
    """The real models hear the real speech: decisions follow the scenario's segments."""
    decided = {'speech': [], 'silence': []}
    for topic, _, data in _read(run['out']):
        if topic != '/fusion_output':
            continue
        m = deserialize_message(data, FusionOutput)
        if m.trigger_modality != 'audio':
            continue
        t = _sec(m.header.stamp) - T0
        for seg in run['segments']:
            if seg.start + 0.3 <= t <= seg.end - 0.3 and seg.kind in decided:
                decided[seg.kind].append(m.decision)
    speech = np.mean([d == 'speaking' for d in decided['speech']])
    silence = np.mean([d == 'not_speaking' for d in decided['silence']])
    assert len(decided['speech']) > 50 and len(decided['silence']) > 30
    assert speech > 0.7 and silence > 0.9, (speech, silence)


def _same_files(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for name in names:
        with open(a / name, 'rb') as fa, open(b / name, 'rb') as fb:
            assert fa.read() == fb.read(), name


@pytest.mark.parametrize('name, args', [
    ('one_thread', ['-j', '1']),  # every frame encoded in the reading thread
    ('single_frames', ['-j', '2', '--batch', '1']),  # one frame per model run (default 4)
    ('batches', ['-j', '2', '--batch', '3']),  # three frames per model run
    # A transcription stream parameter that changes nothing here but keeps speech to text
    # from reusing the audio encoder's VAD: it runs its own, on its own stream.
    ('own_vad', ['-p', 'transcription:max_chunk_seconds:=9.0'])])
def test_byte_identical_from_run_to_run(run, name, args):
    """Another run with other threads, batches or VAD: the same bytes, file for file."""
    (run['root'] / name).mkdir()
    _offline(run['bag'], run['root'] / name / 'out', *args)
    _same_files(run['out'], run['root'] / name / 'out')


def test_refusing_its_own_embeddings_reproduces_its_outputs(run):
    """--source embeddings on the output bag gives the same FusionOutput bytes."""
    again = run['root'] / 'again'
    log = _offline(run['out'], again, '--source', 'embeddings')
    assert '(embeddings)' in log
    first = [(s, d) for t, s, d in _read(run['out']) if t == '/fusion_output']
    second = [(s, d) for t, s, d in _read(again) if t == '/fusion_output']
    assert first == second
    # A parameter of one node, as -p NODE:NAME:=VALUE.
    other = run['root'] / 'other'
    _offline(run['out'], other, '--source', 'embeddings', '-p', 'fusion:strategy:=log_linear')
    strategies = {deserialize_message(d, FusionOutput).strategy
                  for t, _, d in _read(other) if t == '/fusion_output'}
    assert strategies == {'log_linear'}


def test_a_humble_sqlite3_bag_gives_the_same_outputs(run, tmp_path):
    """The same recording as Humble's ros2 bag record writes it (no definitions)."""
    messages = _messages('speech', seconds=2.0)[0]
    mcap = _write(str(tmp_path / 'mcap_in'), messages)
    humble = _humble_bag(str(tmp_path / 'humble_in'), messages)
    _offline(mcap, tmp_path / 'm', '--no-embeddings', '--max-frame-rate', '2.5')
    log = _offline(humble, tmp_path / 'h', '--no-embeddings', '--max-frame-rate', '2.5')
    assert _read(tmp_path / 'm') == _read(tmp_path / 'h')
    assert {t for t, _, _ in _read(tmp_path / 'h')} == {'/fusion_output'}
    # Frames at 5 fps thinned to 2.5 Hz by stamp: every other one.
    frames = sum(m[0] == '/image' for m in messages)
    vision = [d for _, _, d in _read(tmp_path / 'h')
              if deserialize_message(d, FusionOutput).trigger_modality == 'vision']
    assert frames >= 6 and len(vision) == (frames + 1) // 2, log
    assert f'{frames // 2} frames skipped vision' in log, log


def test_nothing_of_it_appears_on_the_graph(run):
    """Its nodes live in a context with discovery off: the live graph never sees them."""
    assert 'fusion_visible' in run['seen']  # discovery works here
    assert not {'fusion', 'audio_encoder', 'vision_encoder', 'transcription'} & run['seen'], \
        run['seen']


def _image_cdr(frame_id, encoding, width, height, step, big_endian=0, stamp=(12, 345)):
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=big_endian, data=bytes(range(256)) * (step * height // 256 + 1))
    msg.data = msg.data[:step * height]
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg, serialize_message(msg)


@pytest.mark.parametrize('frame_id, encoding, width, height, step', [
    ('camera_optical_frame', 'rgb8', 64, 48, 192), ('', 'mono8', 7, 5, 8),
    ('c', 'bgr8', 3, 2, 12), ('cam', 'yuv422_yuy2', 6, 4, 12), ('ab', 'rgb16', 5, 3, 32),
    ('abcd', 'bayer_rggb8', 4, 4, 4)])
def test_frames_are_read_from_the_bag_as_rclpy_reads_them(frame_id, encoding, width,
                                                          height, step):
    """The copy-free reader gives every field rclpy's deserialization gives."""
    msg, data = _image_cdr(frame_id, encoding, width, height, step, big_endian=1)
    got = image_from_cdr(data)
    want = deserialize_message(data, Image)
    assert got.header == want.header == msg.header
    for field in ('height', 'width', 'encoding', 'is_bigendian', 'step'):
        assert getattr(got, field) == getattr(want, field), field
    assert bytes(got.data) == bytes(want.data)


def test_frames_the_reader_cannot_read_go_to_rclpy():
    """Big-endian CDR and bytes that do not add up: None, and rclpy deserializes."""
    _, data = _image_cdr('cam', 'rgb8', 4, 2, 12)
    assert image_from_cdr(data[:-1]) is None  # cut short
    assert image_from_cdr(b'\x00\x00' + data[2:]) is None  # big-endian encapsulation
    assert image_from_cdr(b'') is None
