# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
bag_record and bag_play as processes over real DDS, against the test's own publishers.

Recording: what the publishers sent (reliable, best effort, latched before the recorder
started, a hidden topic, a late_fusion_msgs type) lands in the bag with the QoS they
offered and the type hash they announced on the wire. Playing: original timing, /clock,
the recorded QoS, rate, start offset, topic selection, remapping, loop, and a bag as
Humble's `ros2 bag record` writes it (sqlite3, metadata version 5, no definitions).
"""

import os
import signal
import sqlite3
import subprocess
import time

from audio_common_msgs.msg import AudioInfo
from late_fusion_msgs.msg import Embedding
from late_fusion_ros.bringup.launcher import executable_path
from late_fusion_ros.tools.bag_io import BagReader, BagWriter
import numpy as np
import pytest
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String
import yaml

pytestmark = pytest.mark.integration

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


def _image(t, k=0):
    msg = Image(height=4, width=4, encoding='mono8', step=4, data=bytes([k % 256] * 16))
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(t % 1 * 1e9)
    return msg


def _stop(proc, timeout=30):
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _wait_recorded(ros, pubs, turns, timeout=10.0):
    """
    Wait until bag_record has taken everything `pubs` sent, before it is stopped.

    The reliable subscriptions have acknowledged it all; then `turns` service calls go
    through bag_record's executor, which serves each one after taking one more message of
    every subscription with one waiting (rclpy runs subscriptions before services).
    """
    from rcl_interfaces.srv import GetParameters
    from rclpy.duration import Duration
    for pub in pubs:
        assert pub.wait_for_all_acked(Duration(seconds=timeout)), \
            f'{pub.topic_name}: not acknowledged within {timeout} s'
    client = ros.node.create_client(GetParameters, '/bag_record/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=timeout), 'bag_record has no services'
        for _ in range(turns):
            done = client.call_async(GetParameters.Request(names=['use_sim_time'])).done
            assert ros.wait_for(done, timeout, 0.001), 'bag_record did not answer'
    finally:
        ros.node.destroy_client(client)


def _start(name, *args):
    return subprocess.Popen([executable_path(name), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope='module')
def recorded(ros, tmp_path_factory):
    """Publish on five topics while bag_record -e '^/rec/' records; return what was sent."""
    node = ros.node
    pubs = {'/rec/image': node.create_publisher(Image, '/rec/image', RELIABLE),
            '/rec/chatter': node.create_publisher(String, '/rec/chatter', BEST_EFFORT),
            '/rec/info': node.create_publisher(AudioInfo, '/rec/info', LATCHED),
            '/rec/embedding': node.create_publisher(Embedding, '/rec/embedding', RELIABLE),
            '/rec/_hidden': node.create_publisher(String, '/rec/_hidden', RELIABLE),
            '/rec/skipped': node.create_publisher(String, '/rec/skipped', RELIABLE)}
    pubs['/rec/info'].publish(AudioInfo(channels=2, sample_rate=48000, sample_format='S16LE',
                                        coding_format='wave'))  # before the recorder runs
    bag = str(tmp_path_factory.mktemp('record') / 'rec_bag')
    proc = _start('bag_record', '-e', '^/rec/', '-x', 'skipped', '-o', bag)
    # bag_record subscribes a topic once it sees its publisher: then both sides have matched.
    ros.handshake([p for t, p in pubs.items() if t not in ('/rec/_hidden', '/rec/skipped')])
    sent = {'/rec/image': [], '/rec/embedding': []}
    for k in range(40):
        t = time.time()
        pubs['/rec/image'].publish(_image(t, k))
        sent['/rec/image'].append(t)
        pubs['/rec/chatter'].publish(String(data=f'hello {k}'))
        pubs['/rec/_hidden'].publish(String(data='hidden'))
        pubs['/rec/skipped'].publish(String(data='skipped'))
        if k % 4 == 0:
            pubs['/rec/embedding'].publish(Embedding(modality='audio', seq=k, data=[0.5],
                                                     labels=['speech'], scores=[0.5]))
            sent['/rec/embedding'].append(t)
        time.sleep(0.05)  # paces the publishers like a 20 Hz sensor
    _wait_recorded(ros, pubs.values(), 40)
    code, out = _stop(proc)
    announced = {t: str(node.get_publishers_info_by_topic(t)[0].topic_type_hash)
                 for t in pubs}
    return {'bag': bag, 'code': code, 'out': out, 'sent': sent, 'hashes': announced}


def test_record_exits_cleanly_with_a_summary(recorded):
    """Ctrl-C closes the bag and prints what was recorded; no traceback."""
    assert recorded['code'] == 0, recorded['out']
    assert 'Traceback' not in recorded['out'], recorded['out']
    assert 'recorded ' in recorded['out'] and '/rec/image: 40' in recorded['out']


def test_record_selects_topics_and_keeps_every_message(recorded):
    """Regex and exclusion select; hidden topics stay out; reliable topics lose nothing."""
    with BagReader(recorded['bag']) as reader:
        assert set(reader.topics) == {'/rec/image', '/rec/chatter', '/rec/info',
                                      '/rec/embedding'}
        got = {}
        for topic, _, stamp, data in reader.messages():
            got.setdefault(topic, []).append((stamp, data))
    images = [deserialize_message(d, Image) for _, d in got['/rec/image']]
    assert [m.data[0] for m in images] == list(range(40))
    assert len(got['/rec/embedding']) == 10
    assert len(got['/rec/chatter']) >= 36  # best effort, on one machine
    info = deserialize_message(got['/rec/info'][0][1], AudioInfo)
    assert len(got['/rec/info']) == 1 and info.sample_rate == 48000  # latched before start
    # Receipt stamps: the node clock when the recorder took the message.
    receipt = np.asarray([s for s, _ in got['/rec/image']]) * 1e-9
    delay = receipt - np.asarray(recorded['sent']['/rec/image'])
    assert np.all(delay > 0) and np.median(delay) < 0.05, delay


def test_record_keeps_offered_qos_and_announced_types(recorded):
    """The metadata has each publisher's QoS and the type hash the publishers announced."""
    meta = yaml.safe_load(open(os.path.join(recorded['bag'], 'metadata.yaml')))
    topics = {t['topic_metadata']['name']: t['topic_metadata']
              for t in meta['rosbag2_bagfile_information']['topics_with_message_count']}
    qos = {t: m['offered_qos_profiles'][0] for t, m in topics.items()}
    assert qos['/rec/image']['reliability'] == 'reliable'
    assert qos['/rec/chatter']['reliability'] == 'best_effort'
    assert qos['/rec/info']['durability'] == 'transient_local'
    for topic, m in topics.items():
        assert m['type_description_hash'] == recorded['hashes'][topic], topic
    assert meta['rosbag2_bagfile_information']['storage_identifier'] == 'mcap'


def test_record_sqlite3_explicit_topic(ros, tmp_path):
    """-s sqlite3 with one named topic: a rosbag2 sqlite3 bag (schema 4, with definitions)."""
    pub = ros.node.create_publisher(String, '/rec2/named', RELIABLE)
    bag = str(tmp_path / 'sq')
    proc = _start('bag_record', '/rec2/named', '-s', 'sqlite3', '-o', bag)
    ros.handshake([pub])  # bag_record subscribes once it sees the publisher: both sides
    for k in range(10):
        pub.publish(String(data=str(k)))
        time.sleep(0.02)  # paces the publisher like a 50 Hz sensor
    _wait_recorded(ros, [pub], 10)
    code, out = _stop(proc)
    assert code == 0 and 'Traceback' not in out, out
    db = sqlite3.connect(os.path.join(bag, 'sq.db3'))
    assert db.execute('SELECT schema_version FROM schema').fetchone()[0] == 4
    assert db.execute('SELECT topic_type FROM message_definitions').fetchall() == [
        ('std_msgs/msg/String',)]
    assert db.execute('SELECT COUNT(*) FROM messages').fetchone()[0] == 10


# ---------------------------------------------------------------------- playing

def _play_bag(path):
    """3 s of a reliable String at 10 Hz, best-effort images at 5 Hz, one latched info."""
    with BagWriter(path) as w:
        w.add_topic('/p/a', 'std_msgs/msg/String', [RELIABLE])
        w.add_topic('/p/image', 'sensor_msgs/msg/Image', [BEST_EFFORT])
        w.add_topic('/p/info', 'audio_common_msgs/msg/AudioInfo', [LATCHED])
        start = 1_000_000_000_000
        w.write('/p/info', start, serialize_message(AudioInfo(sample_rate=16000)))
        for k in range(30):
            w.write('/p/a', start + k * 100_000_000, serialize_message(String(data=str(k))))
            if k % 2 == 0:
                w.write('/p/image', start + k * 100_000_000 + 1,
                        serialize_message(_image(1000 + k * 0.1, k)))
    return path, start * 1e-9


class _Sink:
    """Subscriptions on the test node recording (arrival time, message)."""

    def __init__(self, ros, topics):
        self.got = {t: ros.collect(cls, t, qos) for t, (cls, qos) in topics.items()}


def _sink(ros, prefix):
    return _Sink(ros, {f'{prefix}/a': (String, RELIABLE),
                       f'{prefix}/image': (Image, BEST_EFFORT),
                       f'{prefix}/info': (AudioInfo, LATCHED),
                       '/clock': (Clock, 100)})


def _wait_done(ros, proc, timeout=60):
    assert ros.wait_for(lambda: proc.poll() is not None, timeout), 'bag_play did not end'
    out = proc.communicate()[0]
    assert proc.returncode == 0 and 'Traceback' not in out, out
    return out


@pytest.fixture(scope='module')
def play_bag(tmp_path_factory):
    """Write the bag that bag_play plays."""
    return _play_bag(str(tmp_path_factory.mktemp('play') / 'play_bag'))


def test_play_timing_clock_and_qos(ros, play_bag):
    """Recorded timing (to a few ms), /clock with the bag's time, the recorded QoS."""
    bag, start = play_bag
    ros.received.clear()
    sink = _sink(ros, '/p')
    proc = _start('bag_play', bag, '--clock', '50', '--wait-for-subscribers', '20')
    qos = {}
    assert ros.wait_for(lambda: len(sink.got['/p/a']) > 3, 30.0)
    for topic in ('/p/image', '/p/info', '/p/a'):
        qos[topic] = ros.node.get_publishers_info_by_topic(topic)[0].qos_profile
    out = _wait_done(ros, proc)
    assert 'published 46 messages' in out, out
    a = sink.got['/p/a']
    assert [m.data for _, m in a] == [str(k) for k in range(30)]
    arrival = np.asarray([t for t, _ in a])
    error = (arrival - arrival[0]) - np.arange(30) * 0.1
    assert np.median(np.abs(error)) < 0.01 and np.abs(error).max() < 0.1, error
    assert len(sink.got['/p/image']) >= 13  # best effort
    assert [m.sample_rate for _, m in sink.got['/p/info']] == [16000]
    clock = np.asarray([m.clock.sec + m.clock.nanosec * 1e-9 for _, m in sink.got['/clock']])
    assert np.all(np.diff(clock) >= 0), 'the clock went backwards'
    assert clock[0] == pytest.approx(start, abs=1e-6)
    assert clock[-1] == pytest.approx(start + 2.9, abs=0.01)  # a tick may pass the last stamp
    assert len(clock) >= 2.9 * 50 * 0.8
    assert qos['/p/image'].reliability == QoSReliabilityPolicy.BEST_EFFORT
    assert qos['/p/info'].durability == QoSDurabilityPolicy.TRANSIENT_LOCAL
    assert qos['/p/a'].reliability == QoSReliabilityPolicy.RELIABLE


def test_play_rate_offset_selection_and_remap(ros, play_bag):
    """--rate 2 halves the time, --start-offset skips, --topics and --remap select/rename."""
    bag, start = play_bag
    ros.received.clear()
    sink = _sink(ros, '/q')
    proc = _start('bag_play', bag, '--topics', '/p/a', '--remap', '/p/a:=/q/a', '--rate', '2',
                  '--start-offset', '1.0', '--wait-for-subscribers', '20')
    _wait_done(ros, proc)
    a = sink.got['/q/a']
    assert [m.data for _, m in a] == [str(k) for k in range(10, 30)]
    span = a[-1][0] - a[0][0]
    assert span == pytest.approx(1.9 / 2, abs=0.1), span
    assert not sink.got['/q/image'] and not sink.got['/clock']


def test_play_loop_until_interrupted(ros, play_bag):
    """--loop starts over (the clock jumps back); Ctrl-C ends it with exit code 0."""
    bag, start = play_bag
    ros.received.clear()
    sink = _sink(ros, '/p')
    proc = _start('bag_play', bag, '--topics', '/p/a', '--loop', '--rate', '4', '--clock',
                  '20', '--wait-for-subscribers', '20')
    assert ros.wait_for(lambda: len(sink.got['/p/a']) >= 70, 30.0), len(sink.got['/p/a'])
    code, out = _stop(proc)
    assert code == 0 and 'Traceback' not in out, out
    clock = [m.clock.sec + m.clock.nanosec * 1e-9 for _, m in sink.got['/clock']]
    assert any(b < a for a, b in zip(clock, clock[1:])), 'the clock never jumped back'


HUMBLE_QOS = """- history: 3
  depth: 0
  reliability: 1
  durability: 2
  deadline:
    sec: 9223372036
    nsec: 854775807
  lifespan:
    sec: 9223372036
    nsec: 854775807
  liveliness: 1
  liveliness_lease_duration:
    sec: 9223372036
    nsec: 854775807
  avoid_ros_namespace_conventions: false"""


def _humble_bag(path, messages):
    """
    Write a bag as Humble's `ros2 bag record` does (rosbag2 0.15, sqlite storage).

    Database schema 3 (schema, metadata, topics, messages; no type hash, no definitions)
    and metadata.yaml version 5 with the QoS profiles as a YAML string of numeric enums.
    """
    os.makedirs(path)
    db = sqlite3.connect(os.path.join(path, 'humble_0.db3'))
    db.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                              metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL,
                            offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                              timestamp INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
        INSERT INTO schema VALUES (3, 'humble');""")
    topics = sorted({(t, ty) for t, ty, _, _ in messages})
    for k, (topic, msgtype) in enumerate(topics, 1):
        db.execute('INSERT INTO topics VALUES (?, ?, ?, ?, ?)',
                   (k, topic, msgtype, 'cdr', HUMBLE_QOS))
    ids = {t: k for k, (t, _) in enumerate(topics, 1)}
    for topic, _, stamp, data in messages:
        db.execute('INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)',
                   (ids[topic], stamp, data))
    db.commit()
    db.close()
    stamps = [m[2] for m in messages]
    info = {'version': 5, 'storage_identifier': 'sqlite3',
            'duration': {'nanoseconds': max(stamps) - min(stamps)},
            'starting_time': {'nanoseconds_since_epoch': min(stamps)},
            'message_count': len(messages), 'relative_file_paths': ['humble_0.db3'],
            'files': [{'path': 'humble_0.db3',
                       'starting_time': {'nanoseconds_since_epoch': min(stamps)},
                       'duration': {'nanoseconds': max(stamps) - min(stamps)},
                       'message_count': len(messages)}],
            'compression_format': '', 'compression_mode': '',
            'topics_with_message_count': [
                {'topic_metadata': {'name': t, 'type': ty, 'serialization_format': 'cdr',
                                    'offered_qos_profiles': HUMBLE_QOS},
                 'message_count': sum(m[0] == t for m in messages)} for t, ty in topics]}
    with open(os.path.join(path, 'metadata.yaml'), 'w') as f:
        yaml.safe_dump({'rosbag2_bagfile_information': info}, f)
    return path


def test_play_a_humble_sqlite3_bag(ros, tmp_path):
    """A bag of Humble's ros2 bag record (sqlite3, no definitions) plays."""
    bag = _humble_bag(str(tmp_path / 'humble'), [
        ('/h/a', 'std_msgs/msg/String', 10**9 + k * 50_000_000,
         serialize_message(String(data=str(k)))) for k in range(5)])
    ros.received.clear()
    got = ros.collect(String, '/h/a', RELIABLE)
    proc = _start('bag_play', bag, '--wait-for-subscribers', '20')
    out = _wait_done(ros, proc)
    assert ros.wait_for(lambda: len(got) == 5, 5.0), out
    assert [m.data for _, m in got] == ['0', '1', '2', '3', '4']
