# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The bag files themselves, and the tools' answers to bad bags; no ROS graph involved.

Bags are written with bag_io (rosbags) from messages serialized by rclpy, read back with
rosbags, and the MCAP file is walked record by record to check the layout
rosbag2_storage_mcap writes and `ros2 bag`/Foxglove expect: profile `ros2`, one schema per
type (encoding `ros2msg`, the definition with its dependencies), channels with encoding
`cdr` and the `offered_qos_profiles` metadata, the `rosbag2` metadata record, and a
metadata.yaml of version 9.
"""

import os
import struct
import subprocess

from audio_common_msgs.msg import AudioInfo
from late_fusion_msgs.msg import Embedding, FusionOutput, ModalityState
from late_fusion_ros.bringup.launcher import executable_path
from late_fusion_ros.tools.bag_io import (BagError, BagReader, BagWriter, message_class,
                                          typestore_for)
from late_fusion_ros.tools.bag_play import parse_remaps, playback_qos
from late_fusion_ros.tools.bag_record import split_ros_args, TopicSelection
from late_fusion_ros.tools.timeline import header_stamp, load_bag, render_html, render_png
import pytest
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
import yaml

RELIABLE = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
BEST_EFFORT = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.BEST_EFFORT)


def _image(t: float, value: int = 0) -> Image:
    msg = Image(height=2, width=2, encoding='rgb8', step=6, data=bytes([value] * 12))
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))
    msg.header.frame_id = 'camera_optical_frame'
    return msg


def _write_bag(path, storage='mcap'):
    with BagWriter(path, storage) as writer:
        writer.add_topic('/image', 'sensor_msgs/msg/Image', [RELIABLE])
        writer.add_topic('/audio_info', 'audio_common_msgs/msg/AudioInfo', [LATCHED])
        writer.write('/audio_info', 1_000_000_000,
                     serialize_message(AudioInfo(channels=2, sample_rate=48000)))
        for k in range(10):
            writer.write('/image', 1_000_000_000 + k * 100_000_000,
                         serialize_message(_image(1.0 + k * 0.1, k)))
    return path


def _mcap_records(path):
    """Yield (opcode, body) of every top-level MCAP record (the layout check)."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'\x89MCAP0\r\n' and data[-8:] == b'\x89MCAP0\r\n'
    pos = 8
    while pos < len(data) - 8:
        op, length = data[pos], struct.unpack_from('<Q', data, pos + 1)[0]
        yield op, data[pos + 9:pos + 9 + length]
        pos += 9 + length


def _string(body, pos):
    n = struct.unpack_from('<I', body, pos)[0]
    return body[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def test_mcap_layout_is_what_rosbag2_storage_mcap_writes(tmp_path):
    """Profile ros2, ros2msg schemas with dependencies, cdr channels with offered QoS."""
    bag = _write_bag(str(tmp_path / 'bag'))
    records = list(_mcap_records(os.path.join(bag, 'bag.mcap')))
    header = records[0]
    assert header[0] == 0x01 and _string(header[1], 0)[0] == 'ros2'
    schemas, channels, metadata = {}, {}, []
    for op, body in records:
        if op == 0x03:  # Schema: id, name, encoding, data
            name, pos = _string(body, 2)
            encoding, pos = _string(body, pos)
            schemas[name] = (encoding, body[pos + 4:].decode())
        elif op == 0x04:  # Channel: id, schema id, topic, message encoding, metadata map
            topic, pos = _string(body, 4)
            encoding, pos = _string(body, pos)
            end = pos + 4 + struct.unpack_from('<I', body, pos)[0]
            pos, meta = pos + 4, {}
            while pos < end:
                key, pos = _string(body, pos)
                meta[key], pos = _string(body, pos)
            channels[topic] = (encoding, meta)
        elif op == 0x0C:  # Metadata record
            metadata.append(_string(body, 0)[0])
    assert schemas['sensor_msgs/msg/Image'][0] == 'ros2msg'
    image_def = schemas['sensor_msgs/msg/Image'][1]
    assert 'uint8[] data' in image_def and 'MSG: std_msgs/Header' in image_def
    assert 'MSG: builtin_interfaces/Time' in image_def
    encoding, meta = channels['/audio_info']
    assert encoding == 'cdr'
    qos = yaml.safe_load(meta['offered_qos_profiles'])
    assert qos[0]['durability'] == 'transient_local' and qos[0]['reliability'] == 'reliable'
    assert 'rosbag2' in metadata
    info = yaml.safe_load(open(os.path.join(bag, 'metadata.yaml')))
    info = info['rosbag2_bagfile_information']
    assert info['version'] == 9 and info['storage_identifier'] == 'mcap'
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    assert topics['/image']['message_count'] == 10
    assert topics['/image']['topic_metadata']['offered_qos_profiles'][0]['reliability'] == \
        'reliable'
    assert topics['/image']['topic_metadata']['type_description_hash'].startswith('RIHS01_')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_written_messages_read_back(tmp_path, storage):
    """What rclpy serialized comes back byte for byte, in receipt order, with the QoS."""
    bag = _write_bag(str(tmp_path / 'bag'), storage)
    with BagReader(bag) as reader:
        assert reader.topics == {'/image': 'sensor_msgs/msg/Image',
                                 '/audio_info': 'audio_common_msgs/msg/AudioInfo'}
        assert reader.offered_qos('/audio_info')[0].durability.name == 'TRANSIENT_LOCAL'
        got = list(reader.messages())
    assert [t for t, *_ in got] == ['/audio_info'] + ['/image'] * 10
    assert [ns for *_, ns, _ in got] == sorted(ns for *_, ns, _ in got)
    images = [deserialize_message(d, Image) for t, _, _, d in got if t == '/image']
    assert [bytes(m.data)[0] for m in images] == list(range(10))
    assert header_stamp(bytes(got[3][3])) == pytest.approx(1.2)


def test_definitions_come_from_the_installed_packages():
    """late_fusion_msgs and audio_common_msgs (not in rosbags' store) resolve from share/."""
    store = typestore_for(['late_fusion_msgs/msg/FusionOutput',
                           'audio_common_msgs/msg/AudioDataStamped'])
    assert {'late_fusion_msgs/msg/ModalityState', 'std_msgs/msg/Header',
            'audio_common_msgs/msg/AudioData'} <= set(store.fielddefs)
    fields = [name for name, _ in store.fielddefs['late_fusion_msgs/msg/Embedding'][1]] \
        if 'late_fusion_msgs/msg/Embedding' in store.fielddefs else None
    assert fields is None  # only what was asked for, and its dependencies
    emb = typestore_for(['late_fusion_msgs/msg/Embedding'])
    names = [name for name, _ in emb.fielddefs['late_fusion_msgs/msg/Embedding'][1]]
    assert names == list(Embedding.get_fields_and_field_types())  # the installed definition
    with pytest.raises(BagError, match='not installed'):
        typestore_for(['no_such_pkg/msg/Thing'])
    with pytest.raises(BagError, match='not installed'):
        message_class('no_such_pkg/msg/Thing')
    assert message_class('late_fusion_msgs/msg/FusionOutput') is FusionOutput


def test_canonical_topics_are_byte_identical(tmp_path):
    """Canonical topics are written with zeroed CDR padding (rclpy leaves it unset)."""
    out = FusionOutput(trigger_modality='audio', strategy='s', labels=['a'], scores=[0.5],
                       decision='a', modalities=[ModalityState(modality='audio')])
    datas = []
    for name in ('a', 'b'):
        with BagWriter(str(tmp_path / name)) as writer:
            writer.add_topic('/out', 'late_fusion_msgs/msg/FusionOutput', canonical=True)
            for _ in range(20):
                writer.write('/out', 5, serialize_message(out))
        with BagReader(str(tmp_path / name)) as reader:
            datas.append([bytes(d) for *_, d in reader.messages()])
    assert len(set(datas[0] + datas[1])) == 1
    assert deserialize_message(datas[0][0], FusionOutput) == out


def test_pure_helpers():
    """Topic selection, remapping, playback QoS and the split of ROS arguments."""
    select = TopicSelection(regex='^/robot1/', exclude='image')
    assert select('/robot1/audio') and not select('/robot1/image') and not select('/x')
    assert not TopicSelection()('/a/_hidden') and TopicSelection(['/a/_hidden'])('/a/_hidden')
    assert TopicSelection()('/anything')
    with pytest.raises(ValueError):
        TopicSelection(regex='(')
    assert parse_remaps(['image:=/camera/image_raw']) == {'/image': '/camera/image_raw'}
    with pytest.raises(ValueError):
        parse_remaps(['image'])
    from rosbags.interfaces import QosDurability, QosReliability
    from late_fusion_ros.tools.bag_io import bag_qos
    latched, best = bag_qos(LATCHED), bag_qos(BEST_EFFORT)
    assert latched.durability == QosDurability.TRANSIENT_LOCAL
    assert best.reliability == QosReliability.BEST_EFFORT
    assert playback_qos([latched]).durability == QoSDurabilityPolicy.TRANSIENT_LOCAL
    assert playback_qos([best, best]).reliability == QoSReliabilityPolicy.BEST_EFFORT
    mixed = playback_qos([latched, best])  # publishers disagreed: rmw's default offer
    assert mixed.reliability == QoSReliabilityPolicy.RELIABLE
    assert mixed.durability == QoSDurabilityPolicy.VOLATILE
    assert playback_qos([]).reliability == QoSReliabilityPolicy.RELIABLE
    ours, ros = split_ros_args(['x', 'bag', '--remap', 'a:=b', '--ros-args', '-p', 'y:=1',
                                '--', '-r', '2'])
    assert ours == ['bag', '--remap', 'a:=b', '-r', '2']
    assert ros == ['x', '--ros-args', '-p', 'y:=1']


def _timeline_bag(path):
    """
    Write a small run.

    40 audio embeddings (a 1 s gap), 10 camera frames of which 3 were never encoded, and
    outputs that report vision stale for a while.
    """
    store_types = ['late_fusion_msgs/msg/Embedding', 'late_fusion_msgs/msg/FusionOutput']
    store = typestore_for(store_types + ['sensor_msgs/msg/Image'])
    with BagWriter(path) as w:
        w.add_topic('/audio/embedding', store_types[0], typestore=store)
        w.add_topic('/vision/embedding', store_types[0], typestore=store)
        w.add_topic('/fusion_output', store_types[1], typestore=store)
        w.add_topic('/image', 'sensor_msgs/msg/Image', typestore=store)
        events = []
        for k in range(40):
            t = 100.0 + k * 0.05 + (1.0 if k >= 20 else 0.0)  # a gap after the 20th
            emb = Embedding(modality='audio', seq=k, labels=['speech'], scores=[0.9],
                            data=[0.9], encoder_id='silero_vad/x')
            emb.header.stamp.sec, emb.header.stamp.nanosec = int(t), int(t % 1 * 1e9)
            emb.processing_time.nanosec = 2_000_000
            events.append((t + 0.04, '/audio/embedding', emb))
        for k in range(10):
            t = 100.0 + k * 0.3
            events.append((t + 0.01, '/image', _image(t)))
            if k in (3, 4, 7):
                continue  # frames the encoder never took
            emb = Embedding(modality='vision', seq=k, labels=['cat'], scores=[0.8],
                            data=[1.0, 2.0], encoder_id='efficientnet_lite0/imagenet')
            emb.header.stamp = _image(t).header.stamp
            emb.processing_time.nanosec = 40_000_000
            events.append((t + 0.06, '/vision/embedding', emb))
        for t, topic, msg in sorted(events, key=lambda e: e[0]):
            w.write(topic, int(t * 1e9), serialize_message(msg))
            if topic == '/audio/embedding':
                stale = 100.6 < t < 101.4
                out = FusionOutput(trigger_modality='audio', trigger_seq=msg.seq,
                                   strategy='speaking_to_robot', labels=['speaking'],
                                   scores=[0.9], decision='speaking', confidence=0.9,
                                   valid=True, capture_to_output_latency=0.04)
                out.header.stamp = msg.header.stamp
                out.modalities = [ModalityState(modality='audio', present=True),
                                  ModalityState(modality='vision', present=True, stale=stale)]
                w.write('/fusion_output', int(t * 1e9), serialize_message(out))
    return path


def test_timeline_figures_from_a_bag(tmp_path):
    """Lanes, drops, gaps and staleness come out of the bag as they went in."""
    from late_fusion_ros.tools.timeline import lane_stats
    data = load_bag(_timeline_bag(str(tmp_path / 'run')))
    assert set(data.lanes) == {'audio', 'vision'}
    audio, vision = (lane_stats(data.lanes[m], data.outputs) for m in ('audio', 'vision'))
    assert audio['embeddings'] == 40 and len(audio['gaps']) == 1
    assert audio['gaps'][0][1] - audio['gaps'][0][0] == pytest.approx(1.05, abs=0.01)
    assert audio['encode_p50_ms'] == pytest.approx(2.0)
    assert data.lanes['vision'].input_topic == '/image'  # matched by the frames' stamps
    assert len(vision['not_encoded']) == 3
    # Stale from the first output that said so to the next that did not, across the gap.
    assert vision['stale_s'] == pytest.approx(102.04 - 100.64) and audio['stale_s'] == 0
    png = render_png(data, str(tmp_path / 't.png'))
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and os.path.getsize(tmp_path / 't.png') > 20000
    render_html(data, png, str(tmp_path / 't.html'))
    page = open(tmp_path / 't.html', encoding='utf-8').read()
    assert 'src="data:image/png;base64,' in page
    assert 'http' not in page and 'src="' not in page.replace('src="data:', '')


def _cli(name, *args, timeout=120):
    run = subprocess.run([executable_path(name), *map(str, args)], capture_output=True,
                         text=True, timeout=timeout)
    return run.returncode, run.stdout + run.stderr


def test_bad_bags_get_one_clear_line(tmp_path):
    """A missing, broken or truncated bag: exit code 1, one line, never a traceback."""
    good = _write_bag(str(tmp_path / 'good'))
    cut = tmp_path / 'cut'
    cut.mkdir()
    for f in os.listdir(good):
        data = open(os.path.join(good, f), 'rb').read()
        open(cut / f, 'wb').write(data[:len(data) // 2] if f.endswith('.mcap') else data)
    other = str(tmp_path / 'other')
    with BagWriter(other) as writer:
        writer.add_topic('/chatter', 'std_msgs/msg/String')
        writer.write('/chatter', 1, b'\x00\x01\x00\x00\x03\x00\x00\x00hi\x00')
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    cases = [('bag_play', tmp_path / 'missing'), ('bag_play', broken), ('bag_play', cut),
             ('fusion_timeline', cut), ('fusion_timeline', good),  # no fusion topics
             ('fusion_offline', cut, tmp_path / 'o1'),
             ('fusion_offline', other, tmp_path / 'o2'),  # no sensor or embedding topic
             ('bag_record', '-o', good)]  # exists: never overwritten
    for name, *args in cases:
        code, text = _cli(name, *args)
        assert code == 1, (name, args, text)
        assert 'Traceback' not in text, text
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f'{name}: '), (name, args, text)
    assert not os.path.exists(tmp_path / 'o2'), 'no output bag for an input with no use'
    assert 'mcap recover' in _cli('bag_play', cut)[1]
