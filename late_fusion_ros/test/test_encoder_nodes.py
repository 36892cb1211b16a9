# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The encoder nodes as separate processes over real DDS, fed as real drivers feed them.

Audio: audio_common_msgs in a non-default format (S32LE stereo at 48 kHz, latched
AudioInfo), headerless AudioData, a compressed coding_format, malformed chunks.
Vision: every supported encoding, CompressedImage (jpeg/png), malformed images, and
latest-frame-wins under a burst. Real models on real media throughout.
"""

import time

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from conftest import diagnostic_status, diagnostics, node_log
from diagnostic_msgs.msg import DiagnosticArray
from late_fusion_msgs.msg import Embedding
from late_fusion_ros.bringup import default_params_file, NodeSpec
from late_fusion_ros.core.image_reference import rgb_to_encoding
from late_fusion_ros.core.media import photo, speech
import numpy as np
from PIL import Image as PILImage
import pytest
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.integration

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
CAT_WORDS = ('cat', 'Mau', 'lynx', 'tabby')


def _vision_spec(name, topic, **params):
    return NodeSpec('vision_encoder_node', name,
                    [('image', topic), ('embedding', f'{name}/embedding')],
                    [default_params_file()], params)


@pytest.fixture(scope='module')
def nodes(ros, start_nodes):
    """Two audio encoders (stamped, headerless) and two vision encoders (raw, compressed)."""
    # Incompatible QoS seen from the drivers' side: what makes rclpy warn in their log.
    ros.incompatible = []
    events = PublisherEventCallbacks(incompatible_qos=ros.incompatible.append)
    ros.pubs = {
        'info': ros.node.create_publisher(AudioInfo, 'a1/audio_info', LATCHED,
                                          event_callbacks=events),
        'audio': ros.node.create_publisher(AudioDataStamped, 'a1/audio_stamped', 50),
        'info2': ros.node.create_publisher(AudioInfo, 'a2/audio_info', 10,
                                           event_callbacks=events),
        'raw_audio': ros.node.create_publisher(AudioData, 'a2/audio', 50),
        'image': ros.node.create_publisher(Image, 'cam/image_raw', RELIABLE),
        'compressed': ros.node.create_publisher(CompressedImage, 'cam2/image/compressed',
                                                RELIABLE),
    }
    # Latched before the node exists, as audio_capture-like drivers do.
    ros.pubs['info'].publish(AudioInfo(channels=2, sample_rate=48000, sample_format='S32LE',
                                       bitrate=48000 * 64, coding_format='wave'))
    files = [default_params_file()]
    group = start_nodes(
        NodeSpec('audio_encoder_node', 'a1', [('audio_stamped', 'a1/audio_stamped'),
                                              ('audio_info', 'a1/audio_info'),
                                              ('embedding', 'a1/embedding')], files),
        NodeSpec('audio_encoder_node', 'a3', [('audio_stamped', 'a1/audio_stamped'),
                                              ('audio_info', 'a1/audio_info'),
                                              ('embedding', 'a3/embedding')], files,
                 {'encoder': 'resemblyzer'}),
        NodeSpec('audio_encoder_node', 'a2', [('audio', 'a2/audio'),
                                              ('audio_info', 'a2/audio_info'),
                                              ('embedding', 'a2/embedding')], files,
                 {'stamped': False}),
        _vision_spec('v1', 'cam/image_raw'),
        _vision_spec('v2', 'cam2/image', image_transport='compressed', **{
            'qos_overrides./cam2/image/compressed.subscription.reliability': 'best_effort'}),
        _vision_spec('f1', 'cam/image_raw', encoder='face', modality='face'))
    out = {n: ros.collect(Embedding, f'{n}/embedding')
           for n in ('a1', 'a2', 'a3', 'v1', 'v2', 'f1')}
    ros.diag = ros.collect(DiagnosticArray, '/diagnostics')
    # Encoders subscribe once their model is warm; a1/a3 share a topic, so do v1/f1. Their
    # side: each one's diagnostics count the publisher on its input topic.
    expected = {k: 2 if k in ('audio', 'image') else 1 for k in ros.pubs}
    ros.handshake(ros.pubs, expected, timeout=90.0, their_side=lambda: all(
        int(_diag(ros, n).get('publishers', 0)) >= 1 for n in out))
    return {'group': group, 'out': out}


def _diag(ros, node: str) -> dict:
    return diagnostics(ros.diag, node)


def _wait_diag(ros, node, key, predicate, timeout=5.0):
    ok = ros.wait_for(lambda: predicate(int(_diag(ros, node).get(key, 0))), timeout)
    assert ok, f'{node} diagnostics {key}: {_diag(ros, node)}'


def _wait_format(ros, node, sample_rate, channels, sample_format, timeout=5.0):
    """Wait until `node` reads its audio in the format an AudioInfo announced."""
    want = {'sample_rate': str(sample_rate), 'channels': str(channels),
            'format': sample_format}

    def applied():
        d = _diag(ros, node)
        status = diagnostic_status(ros.diag, node, 'input')
        return ({k: d.get(k) for k in want} == want and status is not None and
                status.message != 'compressed audio: set format:=wave')
    assert ros.wait_for(applied, timeout), f'{node} did not apply {want}: {_diag(ros, node)}'


def _sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def test_audio_s32le_stereo_48k_with_latched_info(ros, nodes):
    """Speech as S32LE stereo at 48 kHz: resampled, downmixed, no sample lost."""
    voice = speech('Hello robot, please come to the kitchen.', rate=48000)
    pcm = np.zeros(int(48000 * 0.5), np.int16)  # lead-in silence
    pcm = np.concatenate([pcm, voice, np.zeros(48000, np.int16)]).astype(np.int32) << 16
    stereo = np.stack([pcm, pcm], axis=1)
    chunk, t0, box = 1536, time.time(), nodes['out']['a1']
    for k in range(len(stereo) // chunk):
        msg = AudioDataStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
            int((t0 + k * chunk / 48000) * 1e9), 10**9)
        msg.audio.data = stereo[k * chunk:(k + 1) * chunk].astype('<i4').tobytes()
        ros.pubs['audio'].publish(msg)
        time.sleep(0.01)  # paces the driver (faster than real time), not a wait for the node
    expected = (len(stereo) // chunk) * chunk // 3 // 512
    assert ros.wait_for(lambda: len(box) >= expected - 1, 10.0), (len(box), expected)
    embs = [m for _, m in box]
    stamps = np.array([_sec(m.header.stamp) for m in embs])
    assert stamps[0] == pytest.approx(t0, abs=1e-3)
    assert np.allclose(np.diff(stamps), 0.032, atol=1e-4), 'windows not contiguous'
    speech_prob = np.array([m.scores[0] for m in embs])
    t = stamps - t0
    in_speech = (t > 0.7) & (t < 0.5 + len(voice) / 48000 - 0.2)
    assert speech_prob[in_speech].mean() > 0.5
    assert speech_prob[t < 0.4].mean() < 0.1
    assert 'audio_info: 48000 Hz, 2 ch, S32LE' in node_log(nodes['group'], 'a1')
    # The voice encoder on the same stream: 1.6 s windows every 0.5 s, 256-d unit vectors.
    voice_box = nodes['out']['a3']
    n_voice = int((len(stereo) / 48000 - 1.6) / 0.5) + 1
    assert ros.wait_for(lambda: len(voice_box) >= n_voice, 10.0), (len(voice_box), n_voice)
    voices = [m for _, m in voice_box]
    assert all(len(m.data) == 256 for m in voices)
    assert np.linalg.norm(voices[0].data) == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(np.diff([_sec(m.header.stamp) for m in voices]), 0.5, atol=1e-4)
    assert _sec(voices[0].header.stamp) == pytest.approx(t0, abs=1e-3)


def test_audio_compressed_coding_rejected_with_hint(ros, nodes):
    """An mp3 stream is refused with one clear error; wave brings embeddings back."""
    pub, box = ros.pubs['info'], nodes['out']['a1']
    pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format='S16LE',
                          coding_format='mp3'))
    msg = AudioDataStamped()
    try:
        def refusing():
            status = diagnostic_status(ros.diag, 'a1', 'input')
            return status is not None and status.message == 'compressed audio: set format:=wave'
        assert ros.wait_for(refusing, 5.0), diagnostic_status(ros.diag, 'a1', 'input')
        before = len(box)
        msg.audio.data = bytes(1024)
        for _ in range(5):
            ros.pubs['audio'].publish(msg)
        _wait_diag(ros, 'a1', 'rejected_compressed_audio', lambda n: n >= 5)
        assert len(box) == before
        assert 'format:=wave' in node_log(nodes['group'], 'a1')
    finally:
        # Latched: a failure above must not leave a1 and a3 refusing the tests after this.
        pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format='S16LE',
                              coding_format='wave'))
    _wait_format(ros, 'a1', 16000, 1, 'S16LE')
    t0 = time.time()
    for k in range(3):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int((t0 + k * 0.032) * 1e9),
                                                                10**9)
        ros.pubs['audio'].publish(msg)
    assert ros.wait_for(lambda: len(box) >= before + 3, 5.0)


def test_audio_odd_byte_count_rejected(ros, nodes):
    """A chunk that is not a whole number of S16LE samples is counted, never decoded."""
    msg = AudioDataStamped()
    msg.audio.data = bytes(1023)
    ros.pubs['audio'].publish(msg)
    _wait_diag(ros, 'a1', 'rejected_odd_byte_count', lambda n: n >= 1)


def test_impossible_audio_info_is_ignored(ros, nodes):
    """Count and ignore AudioInfo with 0 Hz or 0 channels; the node keeps running."""
    ros.pubs['info2'].publish(AudioInfo(channels=0, sample_rate=0, sample_format='S16LE',
                                        coding_format='wave'))
    _wait_diag(ros, 'a2', 'rejected_bad_audio_info', lambda n: n >= 1)
    assert all(code is None for code in nodes['group'].alive().values())


def test_headerless_audio_gets_monotonic_arrival_stamps(ros, nodes):
    """Headerless AudioData: stamps derive from arrival, contiguous and never decreasing."""
    ros.pubs['info2'].publish(AudioInfo(channels=1, sample_rate=16000,
                                        sample_format='S16LE', coding_format='wave'))
    # Its defaults already: the node reads the chunks so, and the info changes nothing later.
    _wait_format(ros, 'a2', 16000, 1, 'S16LE')
    voice = speech('Testing the headerless stream.')
    box, t0 = nodes['out']['a2'], time.time()
    for k in range(len(voice) // 512):
        ros.pubs['raw_audio'].publish(AudioData(data=voice[k * 512:(k + 1) * 512].tobytes()))
        time.sleep(0.032)  # paces the driver at audio rate: stamps derive from arrival
    n = len(voice) // 512
    assert ros.wait_for(lambda: len(box) >= n - 1, 10.0), (len(box), n)
    stamps = np.array([_sec(m.header.stamp) for _, m in box])
    assert np.all(np.diff(stamps) > 0)
    assert abs(stamps[0] - t0) < 0.5
    assert np.median(np.diff(stamps)) == pytest.approx(0.032, abs=1e-3)


def _image(rgb, encoding, stamp):
    data, step = rgb_to_encoding(rgb, encoding)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=step,
                data=data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp * 1e9), 10**9)
    msg.header.frame_id = 'camera'
    return msg


def _send_one(ros, topic_pub, box, msg, timeout=20.0):
    before = len(box)
    topic_pub.publish(msg)
    assert ros.wait_for(lambda: len(box) > before, timeout), 'no embedding'
    return box[-1][1]


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
                                      'yuv422_yuy2', 'uyvy', 'nv12', 'nv21', 'bayer_rggb8',
                                      'bayer_grbg16', 'rgb16', 'bgra16'])
def test_every_image_encoding_is_encoded(ros, nodes, encoding):
    """Each encoding of the cat photo yields an embedding with the frame's capture stamp."""
    stamp = time.time() - 0.05
    rgb = photo('chelsea')[:, :450]  # YUV and Bayer need even sizes: cameras have them
    emb = _send_one(ros, ros.pubs['image'], nodes['out']['v1'], _image(rgb, encoding, stamp))
    assert _sec(emb.header.stamp) == pytest.approx(stamp, abs=1e-6)
    assert emb.header.frame_id == 'camera'
    assert len(emb.data) == 1280 and len(emb.labels) == 5
    if not encoding.startswith('mono'):
        assert any(w in emb.labels[0] for w in CAT_WORDS), emb.labels


def test_malformed_images_rejected_and_counted(ros, nodes):
    """Step too small, truncated, unknown encoding, empty: counted; next frame still works."""
    rgb = photo('coffee')
    good = _image(rgb, 'rgb8', time.time())
    bad = {
        'step_too_small': Image(height=4, width=4, encoding='rgb8', step=8, data=bytes(32)),
        'truncated': Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(20)),
        'unknown_encoding': Image(height=4, width=4, encoding='bayer_xyz', step=4,
                                  data=bytes(16)),
        'empty': Image(height=0, width=0, encoding='rgb8', step=0, data=b''),
    }
    for msg in bad.values():  # checked in the callback: one after another, all counted
        ros.pubs['image'].publish(msg)
    for reason in bad:
        _wait_diag(ros, 'v1', f'rejected_{reason}', lambda n: n >= 1)
    emb = _send_one(ros, ros.pubs['image'], nodes['out']['v1'], good)
    assert any(w in ' '.join(emb.labels) for w in ('espresso', 'cup', 'coffee'))


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_images(ros, nodes, fmt):
    """Decode a CompressedImage on <image>/compressed (image_transport naming)."""
    import io
    buf = io.BytesIO()
    PILImage.fromarray(photo('chelsea')).save(buf, format=fmt.upper())
    msg = CompressedImage(format=fmt, data=buf.getvalue())
    msg.header.stamp.sec = int(time.time())
    emb = _send_one(ros, ros.pubs['compressed'], nodes['out']['v2'], msg)
    assert any(w in emb.labels[0] for w in CAT_WORDS), emb.labels


def test_corrupt_compressed_image_rejected(ros, nodes):
    """Bytes that are not an image are counted as bad_compressed."""
    ros.pubs['compressed'].publish(CompressedImage(format='jpeg', data=b'not a jpeg' * 10))
    _wait_diag(ros, 'v2', 'rejected_bad_compressed', lambda n: n >= 1)


def test_latest_frame_wins_under_a_burst(ros, nodes):
    """Frames faster than the model are dropped and counted; the newest is encoded."""
    box = nodes['out']['v1']
    rgb = photo('rocket')
    before = int(_diag(ros, 'v1').get('dropped', 0))
    t0 = time.time()
    for k in range(30):
        ros.pubs['image'].publish(_image(rgb, 'rgb8', t0 + k * 0.001))
    last = t0 + 29 * 0.001
    assert ros.wait_for(lambda: box and abs(_sec(box[-1][1].header.stamp) - last) < 1e-6,
                        20.0), 'the newest frame was not encoded'
    _wait_diag(ros, 'v1', 'dropped', lambda n: n > before)

    def balanced():
        d = {k: int(v) for k, v in _diag(ros, 'v1').items() if v.isdigit()}
        return d['encoded'] + d['dropped'] + d.get('rejected', 0) == d['received']
    assert ros.wait_for(balanced, 5.0), f'every frame is encoded, dropped or rejected: ' \
        f"{_diag(ros, 'v1')}"


def test_face_encoder_node_sees_the_astronaut_not_the_cat(ros, nodes):
    """The face encoder (encoder:=face) reports a face for the portrait only."""
    box = nodes['out']['f1']
    scores = {}
    for name in ('astronaut', 'chelsea'):
        emb = _send_one(ros, ros.pubs['image'], box, _image(photo(name), 'rgb8', time.time()))
        assert emb.modality == 'face'
        scores[name] = dict(zip(emb.labels, emb.scores))
    assert scores['astronaut']['face'] > 0.5
    assert scores['chelsea']['face'] < 0.5
    assert {'face', 'mouth_open', 'mouth_moving'} <= set(scores['astronaut'])


def test_camera_subscription_follows_the_drivers_qos(ros, nodes):
    """Reliable while every camera publisher is; best effort as soon as one is not."""
    assert _diag(ros, 'v1')['qos'].startswith('reliable'), _diag(ros, 'v1')
    best_effort = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.BEST_EFFORT)
    pub = ros.node.create_publisher(Image, 'cam/image_raw', best_effort)
    try:
        assert ros.wait_for(lambda: _diag(ros, 'v1')['qos'].startswith('best_effort'), 10.0)
        # A small frame from the best-effort driver now reaches the model.
        rgb = photo('chelsea')[::4, ::4]
        _send_one(ros, pub, nodes['out']['v1'], _image(rgb, 'rgb8', time.time()))
    finally:
        ros.node.destroy_publisher(pub)
    assert ros.wait_for(lambda: _diag(ros, 'v1')['qos'].startswith('reliable'), 10.0)
    assert 'incompatible' not in node_log(nodes['group'], 'v1')


def test_pinned_qos_override_wins(ros, nodes):
    """qos_overrides.<topic>.subscription.reliability pins the policy against the driver."""
    d = _diag(ros, 'v2')
    assert d['qos'].startswith('best_effort') and 'pinned: reliability' in d['qos'], d
    # v1 on the same kind of reliable driver adapted to reliable instead.
    assert _diag(ros, 'v1')['qos'].startswith('reliable')


def test_latched_and_volatile_audio_info_match_without_warnings(ros, nodes):
    """One AudioInfo subscription takes a latched and a volatile driver, no warning anywhere."""
    assert 'audio_info: 48000 Hz, 2 ch, S32LE' in node_log(nodes['group'], 'a1')
    a1, a2 = _diag(ros, 'a1'), _diag(ros, 'a2')
    assert a1['info_qos'].startswith('reliable transient_local'), a1
    assert a2['info_qos'].startswith('reliable volatile'), a2
    assert a1['info_incompatible_qos'] == a2['info_incompatible_qos'] == '0'
    assert ros.incompatible == [], 'a driver-side publisher saw an incompatible subscription'
    for name in ('a1', 'a2', 'a3'):
        assert 'incompatible' not in node_log(nodes['group'], name).lower()
