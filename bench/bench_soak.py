# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Soak: the whole graph on real media for a long run; memory, latency and queues over time.

The media player (48 kHz stereo speech in 1024-frame chunks, 1280x720 rgb8 photos at 15 fps,
reliable, as real drivers) feeds the audio encoder (silero VAD), the vision encoder
(EfficientNet-Lite0) and the fusion node, all separate processes with their shipped
defaults. Every `--every` seconds this prints one row per interval: each node's RSS, the
fused outputs per second, capture-to-output latency p50/p99 per trigger modality, and the
encoders' queues (audio windows pending, vision frames dropped). At the end: RSS growth
per node between the first and the last minute, and the latency trend (least-squares slope
per minute), the figures that show a leak or a growing queue.

    python bench/bench_soak.py [--minutes 20] [--every 30]
"""

import argparse
import os
import random
import sys
import tempfile
import time

from benchlib import collect_diagnostics, pct, spin_in_background, table
import numpy as np


def rss_mib(pid):
    """Return the resident set size of process `pid` in MiB (nan once it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


def main():
    """Run the graph for --minutes and print the curve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--minutes', type=float, default=20.0)
    parser.add_argument('--every', type=float, default=30.0, help='seconds per printed row')
    parser.add_argument('--warmup', type=float, default=2.0,
                        help='minutes before RSS growth is counted')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 230)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from late_fusion_msgs.msg import FusionOutput
    from late_fusion_ros.bringup import node_specs, NodeSpec
    from late_fusion_ros.bringup.launcher import ProcessGroup
    from late_fusion_ros.shared.qos import EMBEDDING_QOS

    rclpy.init()
    node = rclpy.create_node('bench_soak')
    outputs = []
    node.create_subscription(
        FusionOutput, 'fusion_output',
        lambda m: outputs.append((time.time(), m.trigger_modality,
                                  m.capture_to_output_latency)), EMBEDDING_QOS)

    diag = collect_diagnostics(node)
    executor = spin_in_background(node)
    specs = [NodeSpec('media_player_node', 'media_player')] + node_specs()
    rows, samples = [], []
    with tempfile.TemporaryDirectory() as log_dir:
        group = ProcessGroup(log_dir=log_dir)
        try:
            for spec in specs:
                group.start(spec)
            end = time.time() + 120
            while time.time() < end and not {'audio', 'vision'} <= {o[1] for o in outputs}:
                time.sleep(0.5)
            if not {'audio', 'vision'} <= {o[1] for o in outputs}:
                raise RuntimeError(f'graph did not come up: {group.alive()}')
            print(f'[ROS_DOMAIN_ID={os.environ["ROS_DOMAIN_ID"]}] soak of '
                  f'{args.minutes:g} min; one row every {args.every:g} s', flush=True)
            start = time.time()
            names = [s.name for s in specs]
            header = (['t (min)'] + [f'{n} MiB' for n in names] +
                      ['out/s', 'audio p50', 'audio p99', 'vision p50', 'vision p99',
                       'audio pending', 'vision dropped %'])
            print('  '.join(header), flush=True)
            while time.time() - start < args.minutes * 60:
                t0 = time.time()
                time.sleep(args.every)
                if any(code is not None for code in group.alive().values()):
                    raise RuntimeError(f'a node died: {group.alive()}')
                window = [o for o in outputs if o[0] >= t0]
                lat = {m: np.array([o[2] for o in window if o[1] == m]) * 1e3
                       for m in ('audio', 'vision')}
                rss = [rss_mib(group.procs[n].pid) for n in names]
                vision = diag.get('/vision_encoder', {})
                dropped = int(vision.get('dropped', 0)) / max(1, int(vision.get('received', 1)))
                sample = {'t': (time.time() - start) / 60, 'rss': rss,
                          'rate': len(window) / (time.time() - t0),
                          'audio': (pct(lat['audio'], 50), pct(lat['audio'], 99)),
                          'vision': (pct(lat['vision'], 50), pct(lat['vision'], 99)),
                          'pending': diag.get('/audio_encoder', {}).get('pending', '-')}
                samples.append(sample)
                row = ([f'{sample["t"]:.1f}'] + [f'{r:.1f}' for r in rss] +
                       [f'{sample["rate"]:.0f}', f'{sample["audio"][0]:.1f}',
                        f'{sample["audio"][1]:.1f}', f'{sample["vision"][0]:.1f}',
                        f'{sample["vision"][1]:.1f}', sample['pending'], f'{dropped:.1%}'])
                rows.append(row)
                print('  '.join(row), flush=True)
                del outputs[:max(0, len(outputs) - 20000)]  # the soak must not grow here
        finally:
            codes = group.stop()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    table(f'soak: {args.minutes:g} min of the whole graph on real media', header, rows)
    per_min = max(1, int(round(60 / args.every)))
    # After the warm-up (first model runs, malloc arenas and DDS pools at their working
    # size): the first minute against the last, and the least-squares slope, which shows a
    # leak however the RSS of a node that handles 2.7 MB frames wobbles around it.
    settled = [s for s in samples if s['t'] > args.warmup] or samples
    first, last = settled[:per_min], settled[-per_min:]
    summary = []
    for k, name in enumerate(names):
        a = np.nanmean([s['rss'][k] for s in first])
        b = np.nanmean([s['rss'][k] for s in last])
        ts = np.array([s['t'] for s in settled])
        ys = np.array([s['rss'][k] for s in settled])
        ok = np.isfinite(ys)
        slope = np.polyfit(ts[ok], ys[ok], 1)[0] if ok.sum() > 2 else float('nan')
        summary.append((name, f'{np.nanmean([s["rss"][k] for s in samples[:per_min]]):.1f}',
                        f'{a:.1f}', f'{b:.1f}', f'{b - a:+.1f}',
                        f'{slope * (ts[-1] - ts[0]):+.1f}', f'{np.nanmin(ys):.1f}',
                        f'{np.nanmax(ys):.1f}'))
    table(f'RSS, MiB, after a {args.warmup:g}-minute warm-up: its first minute -> the last '
          'minute, and the fitted trend over the same span (target: growth under 5 MiB per '
          'node)', ['node', 'minute 1', 'first', 'last', 'growth', 'trend', 'min', 'max'],
          summary)
    t = np.array([s['t'] for s in samples])
    trend = []
    for m in ('audio', 'vision'):
        for q, col in (('p50', 0), ('p99', 1)):
            y = np.array([s[m][col] for s in samples])
            ok = np.isfinite(y)
            slope = np.polyfit(t[ok], y[ok], 1)[0] if ok.sum() > 2 else float('nan')
            trend.append((f'{m} capture->output {q}', f'{np.nanmean(y):.1f}',
                          f'{slope:+.3f}'))
    table('latency trend (ms; slope per minute: ~0 means no growing latency or queue)',
          ['', 'mean', 'slope ms/min'], trend)
    print(f'node exit codes {codes}')
    return 0 if not any(codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
