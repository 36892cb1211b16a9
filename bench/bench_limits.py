# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Size limits: what one enormous message costs each node's memory, with the shipped defaults.

The audio encoder, the vision encoder and the fusion node run as separate processes with
config/late_fusion.yaml; this process plays a microphone (48 kHz stereo S16LE, latched
AudioInfo), a reliable camera and a stray publisher of Embeddings. Each node first gets
normal input (a 1280x720 rgb8 frame, 1024-frame audio chunks, a 1280-float Embedding), so
that its peak RSS (VmHWM) already holds what normal work needs; then, one case at a time:

  image declaring 100 MB  5774x5774 rgb8 header, 3 bytes of data        max_image_bytes
  image carrying 100 MB   5774x5774 rgb8, all 100 MB sent               max_image_bytes
  embedding of 10^7       10^7 float32 (40 MB) on vision/embedding,     max_embedding_size
    floats                before any vision encoder output
  60 s audio chunk        60 s of 48 kHz stereo S16LE (11.5 MB)         max_chunk_seconds

For each: the node's reject counter, its one log line, and its VmHWM growth, side by side
with the floor: a raw rclpy subscriber process (this file with --floor; empty callbacks,
the nodes' QoS) that receives the same messages. A message the middleware carries is
reassembled by Fast DDS, deserialized by the rmw and converted to Python by rclpy before any
callback can look at it, so the floor grows by a few times the bytes carried; a node at
the floor's growth allocated nothing more for it (a conversion or a copy into numpy would
add at least one more size).

    python bench/bench_limits.py
"""

import os
import random
import subprocess
import sys
import tempfile
import time

from benchlib import collect_diagnostics, spin_in_background, table, wait_for

MIB = 1024 * 1024


def status_kib(pid, key):
    """Return /proc/<pid>/status's `key` (VmHWM, VmRSS) in KiB."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def too_large_lines(log):
    """Return how many lines of a node's log name the 'too_large' reason."""
    with open(log) as f:
        return sum('too_large' in line for line in f)


def floor_main(topic, count_file):
    """Subscribe `topic` with an empty callback, as the node does; write the count to a file."""
    from audio_common_msgs.msg import AudioDataStamped
    from late_fusion_msgs.msg import Embedding
    from late_fusion_ros.shared.qos import EMBEDDING_QOS
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('bench_limits_floor')
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    received = [0]

    def callback(_msg):
        received[0] += 1
        with open(count_file, 'a') as f:
            f.write('.')
    msg_type, qos = {'image': (Image, reliable), 'audio_stamped': (AudioDataStamped, reliable),
                     'vision/embedding': (Embedding, EMBEDDING_QOS)}[topic]
    node.create_subscription(msg_type, topic, callback, qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()


def main():
    """Send each oversized message to its node and print the memory it cost."""
    if sys.argv[1:2] == ['--floor']:
        return floor_main(sys.argv[2], sys.argv[3])
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 230)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from late_fusion_msgs.msg import Embedding
    from late_fusion_ros.bringup import node_specs
    from late_fusion_ros.bringup.launcher import ProcessGroup
    from late_fusion_ros.shared.qos import EMBEDDING_QOS
    import numpy as np
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('bench_limits')
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    image_pub = node.create_publisher(Image, 'image', reliable)
    audio_pub = node.create_publisher(AudioDataStamped, 'audio_stamped', reliable)
    info_pub = node.create_publisher(AudioInfo, 'audio_info', latched)
    emb_pub = node.create_publisher(Embedding, 'vision/embedding', EMBEDDING_QOS)
    diag = collect_diagnostics(node)
    executor = spin_in_background(node)
    info_pub.publish(AudioInfo(channels=2, sample_rate=48000, sample_format='S16LE',
                               coding_format='wave', bitrate=0, chunk_size=1024))

    def value(fqn, key):
        return int(diag.get(fqn, {}).get(key, 0))

    def image(width, height, data):
        msg = Image(width=width, height=height, encoding='rgb8', step=3 * width)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera_optical_frame'
        msg.data = data
        return msg

    chunk_t = [time.time()]

    def chunk(frames):
        msg = AudioDataStamped()
        msg.header.stamp.sec = int(chunk_t[0])
        msg.header.stamp.nanosec = int((chunk_t[0] % 1) * 1e9)
        chunk_t[0] += frames / 48000.0
        msg.audio.data = bytes(4 * frames)  # S16LE stereo silence
        return msg

    def embedding(n):
        msg = Embedding(modality='vision', seq=n, labels=['x'], scores=[0.5])
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.data = np.zeros(n, np.float32)
        return msg

    big_side = 5774  # 5774 * 5774 * 3 bytes = 100.0 MB
    cases = [
        ('image declaring 100 MB', '/vision_encoder', 'rejected_too_large', image_pub,
         lambda: image_pub.publish(image(big_side, big_side, b'\0\0\0')), 3),
        ('image carrying 100 MB', '/vision_encoder', 'rejected_too_large', image_pub,
         lambda: image_pub.publish(image(big_side, big_side,
                                         bytes(3 * big_side * big_side))),
         3 * big_side * big_side),
        ('Embedding of 10^7 floats', '/fusion', 'vision.too_large', emb_pub,
         lambda: emb_pub.publish(embedding(10_000_000)), 4 * 10_000_000),
        ('60 s audio chunk', '/audio_encoder', 'rejected_too_large', audio_pub,
         lambda: audio_pub.publish(chunk(60 * 48000)), 4 * 60 * 48000),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        group = ProcessGroup(log_dir=log_dir)
        floor = None

        def start_floor(topic, pub):
            # A fresh floor per case: VmHWM is a peak, an earlier bigger case would hide it.
            path = os.path.join(log_dir, topic.replace('/', '_') + '.count')
            subs = pub.get_subscription_count()
            proc = subprocess.Popen([sys.executable, __file__, '--floor', topic, path])
            if not wait_for(lambda: pub.get_subscription_count() > subs, 30):
                raise RuntimeError('the floor subscriber did not come up')
            time.sleep(1.0)  # its side of discovery: nothing to poll from here
            return proc, lambda: os.path.getsize(path) if os.path.exists(path) else 0
        try:
            specs = node_specs()
            for spec in specs:
                group.start(spec)
            pids = {spec.fqn: group.procs[spec.name].pid for spec in specs}
            logs = {spec.fqn: os.path.join(log_dir, f'{spec.name}.log') for spec in specs}
            up = wait_for(lambda: image_pub.get_subscription_count() and
                          audio_pub.get_subscription_count() and
                          emb_pub.get_subscription_count() and
                          value('/vision_encoder', 'encoded') >= 0 and
                          '/vision_encoder' in diag and '/fusion' in diag and
                          '/audio_encoder' in diag, 120)
            if not up:
                raise RuntimeError(f'the nodes did not come up: {group.alive()}')
            # Normal work first, so the peaks below are what the oversized message added.
            frame = bytes(3 * 1280 * 720)
            for _ in range(3):
                image_pub.publish(image(1280, 720, frame))
                time.sleep(0.5)
            for _ in range(50):
                audio_pub.publish(chunk(1024))
                time.sleep(0.02)
            emb_pub.publish(embedding(1280))
            if not wait_for(lambda: value('/vision_encoder', 'encoded') >= 1 and
                            value('/fusion', 'vision.received') >= 1, 60):
                raise RuntimeError(f'no normal input processed: {diag}')
            time.sleep(2.0)  # the encoders' last windows and frames (peaks settle)
            last_case = 0.0
            for name, fqn, key, pub, send, carried in cases:
                # The nodes log each reason at most once in 5 s (ThrottledLog): let that pass
                # so that every case shows its own line.
                time.sleep(max(0.0, 5.5 - (time.time() - last_case)))
                floor, floor_count = start_floor(pub.topic_name.lstrip('/'), pub)
                before, lines_before = value(fqn, key), too_large_lines(logs[fqn])
                hwm0 = status_kib(pids[fqn], 'VmHWM')
                floor0 = status_kib(floor.pid, 'VmHWM')
                t0 = time.time()
                send()
                counted = wait_for(lambda: value(fqn, key) > before, 120)
                seconds = time.time() - t0
                floor_got = wait_for(lambda: floor_count() > 0, 60)
                time.sleep(1.0)  # a late allocation would show here
                growth = (status_kib(pids[fqn], 'VmHWM') - hwm0) / 1024
                floor_growth = (status_kib(floor.pid, 'VmHWM') - floor0) / 1024
                rss = status_kib(pids[fqn], 'VmRSS')
                floor.terminate()
                floor.wait(10)
                floor = None
                last_case = time.time()
                rows.append((name, fqn, f'{carried / MIB:.1f}', 'yes' if counted else 'NO',
                             f'{seconds:.1f}', f'{hwm0 / 1024:.0f}', f'{growth:+.1f}',
                             f'{floor_growth:+.1f}' if floor_got else 'not received',
                             f'{growth / floor_growth:.2f}' if floor_growth > 1 else '-',
                             f'{rss / 1024:.0f}', too_large_lines(logs[fqn]) - lines_before))
            alive = group.alive()
        finally:
            codes = group.stop()
            if floor is not None:
                floor.kill()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    table('size limits, shipped defaults: one oversized message per case (VmHWM: peak RSS)',
          ['case', 'node', 'carried MiB', 'counted', 'to count s', 'peak before MiB',
           'peak growth MiB', 'floor growth MiB', 'node / floor', 'RSS after MiB',
           'log lines'], rows)
    print('  floor: a raw rclpy subscriber of the same topic (empty callback): what receiving '
          'the message costs before any callback; node / floor ~1: the node refused it '
          'without converting or copying it')
    print(f'nodes alive after all cases: {alive}; exit codes {codes}')
    if any(code is not None for code in alive.values()) or any(r[3] != 'yes' for r in rows):
        raise SystemExit(1)


if __name__ == '__main__':
    main()
