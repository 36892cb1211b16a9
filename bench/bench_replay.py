# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Audio latency while one process replays a 720p bag: Fast DDS's default against the fix.

A player that publishes camera frames and audio from one process (`ros2 bag play`, the
project's `bag_play`, the demo's media player) delays the audio in Fast DDS: a 2.8 MB frame
overflows the participant's 512 KiB shared-memory segment, the overflow is dropped and
resent, and the audio waits behind it. `bag_play` therefore loads
config/fastdds_large_frames.xml (a 32 MiB segment) unless told `--default-dds`.

This replays a 20 s bag of the demo's format (1280x720 rgb8 at 15 fps, 48 kHz stereo audio
in 1024-frame chunks; made like bench_offline.py's) with `bag_play`, in alternating rounds
with and without the profile, into the audio and vision encoders (default parameters, own
processes) and a raw rclpy subscriber of the audio topic in this process. Latency is the
delay beyond the best case: (receipt - capture stamp) minus its minimum over the round,
for each audio chunk at the raw subscriber and each embedding of the audio encoder.

    python bench/bench_replay.py [--seconds 20] [--rounds 2]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench_offline import make_bag
from benchlib import exit_status, pct, spin_in_background, table, wait_for
import numpy as np


def main(argv=None):
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='bag length')
    parser.add_argument('--rounds', type=int, default=2, help='rounds of each setting')
    args = parser.parse_args(argv)
    for name in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                 'FASTDDS_BUILTIN_TRANSPORTS'):
        os.environ.pop(name, None)  # bag_play decides; this process keeps the default
    import rclpy
    from audio_common_msgs.msg import AudioDataStamped
    from late_fusion_msgs.msg import Embedding
    from late_fusion_ros.bringup import node_specs
    from late_fusion_ros.bringup.dds import profile_variable
    from late_fusion_ros.bringup.launcher import executable_path, ProcessGroup
    from late_fusion_ros.shared.qos import EMBEDDING_QOS
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    folder = tempfile.mkdtemp(prefix='bench_replay_')
    bag = make_bag(os.path.join(folder, 'bag'), seconds=args.seconds)
    rclpy.init()
    node = rclpy.create_node('bench_replay')
    seen = {'audio': [], 'embedding': []}
    node.create_subscription(
        AudioDataStamped, '/audio_stamped',
        lambda m: seen['audio'].append((time.time(), m.header.stamp)),
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(
        Embedding, '/audio/embedding',
        lambda m: seen['embedding'].append((time.time(), m.header.stamp)), EMBEDDING_QOS)
    executor = spin_in_background(node)
    group = ProcessGroup(log_dir=os.path.join(folder, 'logs'))
    rows = []
    try:
        for spec in node_specs():
            if spec.executable != 'fusion_node':
                group.start(spec)
        player = executable_path('bag_play')
        results = {'default': [], 'profile': []}
        for _ in range(args.rounds):
            for setting in ('default', 'profile'):
                for box in seen.values():
                    box.clear()
                cmd = [player, bag, '--wait-for-subscribers', '60']
                if setting == 'default':
                    cmd.append('--default-dds')
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if run.returncode != 0:
                    raise RuntimeError(f'bag_play failed: {run.stderr[-2000:]}')
                wait_for(lambda: False, 1.0)  # the last embeddings on their way
                results[setting].append({k: list(v) for k, v in seen.items()})
        for setting, rounds in results.items():
            for k, r in enumerate(rounds):
                cells = [setting if setting == 'default' else
                         f'{profile_variable()}=fastdds_large_frames.xml', k + 1]
                for key, expected in (('audio', None), ('embedding', None)):
                    delay = np.array([t - (s.sec + s.nanosec * 1e-9) for t, s in r[key]])
                    excess = 1e3 * (delay - delay.min()) if len(delay) else delay
                    cells += [len(delay), f'{pct(excess, 50):.1f}', f'{pct(excess, 99):.1f}',
                              f'{excess.max() if len(excess) else float("nan"):.1f}']
                rows.append(cells)
    finally:
        codes = group.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    table(f'bag_play of a {args.seconds:.0f} s 1280x720 15 fps + 48 kHz stereo bag into the '
          'audio and vision encoders: audio delay beyond the best case, ms',
          ['setting', 'round', 'raw chunks', 'raw p50', 'raw p99', 'raw max', 'embeddings',
           'emb p50', 'emb p99', 'emb max'], rows)
    return exit_status(codes)


if __name__ == '__main__':
    sys.exit(main())
