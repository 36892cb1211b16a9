# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark across machines: the graph split over hosts (network namespaces, needs root).

Layouts, each started through the project's bring-up on hosts joined by a virtual switch
(late_fusion_ros/test/hosts.py), with separate driver processes (the media player as a 48
kHz stereo microphone and as a reliable 1280x720 rgb8 camera at 15 fps), the default
parameters and multicast discovery:

- a: the robot has the microphone, camera, audio encoder, transcription and fusion; the
  offload host has the vision encoder (camera frames cross the link);
- b: each encoder beside its sensor (mic host, camera host), fusion on a base host that
  receives embeddings only;
- central: the sensors on the robot, every node on a central host (raw frames and audio
  cross the link): what embeddings-only layouts are compared with.

For each: bytes per second on every host's link in each direction, CPU per host, and
capture-to-output latency p50/p99 per trigger at the fusion host, next to the raw rclpy
floor over the same hops (multihost_relay.py: each input turned into an Embedding at once,
no model, no fusion), measured first with the same drivers and link. Then in layout a the
offload host's link is cut for 5 s and for 60 s (past DDS's 20 s participant lease): the
time until vision contributes again, the robot's audio windows that got no output, and
whether (after how long) the robot's DDS forgot the vision publisher.

    python bench/bench_multihost.py [--seconds 20] [--drops 5 60]
"""

import argparse
import os
import subprocess
import sys
import time

from benchlib import pct, table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'late_fusion_ros', 'test'))
import hosts  # noqa: E402, I202 - the tests' host harness, shared with this benchmark
import numpy as np  # noqa: E402, I100

MIC = {'audio_topic': '/mic/audio_stamped', 'audio_info_topic': '/mic/audio_info'}
CAMERA = '/camera/image_raw'
CHUNK_S = 1024 / 48000  # the microphone's chunk: the floor's audio latency counts from its end
WINDOW_S = 512 / 16000  # the audio encoder's window: its outputs count from the window's end


def layout(name):
    """Return (host names, {host: [NodeSpec]}, fusion host, {modality: relay chain})."""
    from late_fusion_ros.bringup import node_specs, NodeSpec
    specs = {s.executable: s for s in node_specs(
        MIC['audio_topic'], MIC['audio_info_topic'], CAMERA, transcribe=True)}
    mic = NodeSpec('media_player_node', 'microphone', [
        ('audio_stamped', MIC['audio_topic']), ('audio_info', MIC['audio_info_topic'])],
        parameters={'camera': False})
    camera = NodeSpec('media_player_node', 'camera', [('image', CAMERA)],
                      parameters={'microphone': False, 'fps': 15.0})
    audio_nodes = [specs['audio_encoder_node'], specs['transcription_node']]
    if name == 'a':
        place = {'robot': [mic, camera, specs['fusion_node']] + audio_nodes,
                 'offload': [specs['vision_encoder_node']]}
        return ['robot', 'offload'], place, 'robot', {'vision': 'offload', 'audio': 'robot'}
    if name == 'b':
        place = {'mic': [mic] + audio_nodes, 'camera': [camera, specs['vision_encoder_node']],
                 'base': [specs['fusion_node']]}
        return ['mic', 'camera', 'base'], place, 'base', {'vision': 'camera', 'audio': 'mic'}
    place = {'robot': [mic, camera], 'central': [specs['fusion_node'],
                                                 specs['vision_encoder_node']] + audio_nodes}
    return ['robot', 'central'], place, 'central', {'vision': 'central', 'audio': 'central'}


def cpu_seconds(pids):
    """Return the CPU time (s) the processes `pids` have used so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        except OSError:
            pass
    return total


def latencies(records, since, until):
    """
    Return {trigger: [seconds]} of fusion outputs in a window, from their input's arrival.

    Vision: from the frame's capture stamp. Audio: from the end of the microphone chunk
    that completed the window (no node can publish earlier; the floor's audio counts from
    its chunk's end too). Chunks lie on the sample clock that the first window starts.
    """
    out = {'audio': [], 'vision': []}
    windows = [r['stamp'] for r in records if r['kind'] == 'embedding'
               and r['topic'] == '/audio/embedding']
    anchor = min(windows) if windows else 0.0
    for r in records:
        if r['kind'] == 'fusion' and since <= r['t'] < until and r['trigger'] in out:
            end = r['stamp']
            if r['trigger'] == 'audio':
                end = anchor + np.ceil((end + WINDOW_S - anchor) / CHUNK_S - 1e-6) * CHUNK_S
            out[r['trigger']].append(r['t'] - end)
    return out


def floor_latencies(records, since, until):
    """Return {modality: [seconds]} of the floor relays' final Embeddings in a window."""
    out = {'audio': [], 'vision': []}
    for r in records:
        if r['kind'] == 'embedding' and since <= r['t'] < until and \
                r['topic'].startswith('/floor/') and r['topic'].endswith('_out'):
            modality = r['topic'].split('/')[2].split('_')[0]
            end = r['stamp'] + (CHUNK_S if modality == 'audio' else 0.0)
            out[modality].append(r['t'] - end)
    return out


def run_layout(name, seconds, log_root, drops=()):
    """Measure one layout; return its rows and, for layout a, the drop rows."""
    names, place, fusion_host, sensor_host = layout(name)
    net = hosts.Network(names, os.path.join(log_root, name))
    rows, drop_rows = [], []
    try:
        probe = net.probe(fusion_host, '--fusion', '/fusion_output',
                          '--embedding', '/floor/vision_out', '--embedding', '/floor/audio_out',
                          '--embedding', '/audio/embedding',
                          '--publishers', '/vision/embedding')
        drivers = {h: [s for s in specs if s.executable == 'media_player_node']
                   for h, specs in place.items()}
        for host, specs in drivers.items():
            net.start(host, *specs)
        # Phase 1, the floor: the drivers and the relays only (a relay beside the graph
        # would double the camera's traffic on the link and load the same cores).
        relays = start_relays(net, sensor_host, fusion_host)
        time.sleep(8.0)
        t0 = time.time()
        time.sleep(seconds)
        floor = floor_latencies(probe.records(), t0, time.time())
        stop(relays)
        # Phase 2, the graph.
        for host, specs in place.items():
            net.start(host, *[s for s in specs if s not in drivers[host]])
        deadline = time.time() + 180
        while time.time() < deadline and not any(
                r['trigger'] == 'vision' for r in probe.records('fusion')):
            time.sleep(0.5)
        time.sleep(5.0)  # past the start-up transients (first frames, transcription warm-up)
        pids = {h: net.hosts.pids(h) for h in names}
        before = {h: net.hosts.counters(h) for h in names}
        cpu0 = {h: cpu_seconds(pids[h]) for h in names}
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        took = t1 - t0
        after = {h: net.hosts.counters(h) for h in names}
        cpu = {h: (cpu_seconds(pids[h]) - cpu0[h]) / took for h in names}
        ours = latencies(probe.records(), t0, t1)
        for h in names:
            rx = (after[h]['rx_bytes'] - before[h]['rx_bytes']) / took
            tx = (after[h]['tx_bytes'] - before[h]['tx_bytes']) / took
            rows.append([name, h, f'{tx / 1e6:.3f}', f'{rx / 1e6:.3f}', f'{100 * cpu[h]:.0f}'])
        for trigger in ('audio', 'vision'):
            o, f = ours[trigger], floor[trigger]
            rows.append([name, f'{trigger} latency', f'{1e3 * pct(o, 50):.1f} / '
                         f'{1e3 * pct(o, 99):.1f}', f'{1e3 * pct(f, 50):.1f} / '
                         f'{1e3 * pct(f, 99):.1f}',
                         f'{pct(o, 50) / pct(f, 50):.2f}x / {pct(o, 99) / pct(f, 99):.2f}x'])
        for seconds_down in drops:
            drop_rows.append(measure_drop(net, probe, seconds_down))
    finally:
        codes = net.close()
    bad = {k: v for k, v in codes.items() if v}
    if bad:
        print(f'layout {name}: exit codes {bad}', file=sys.stderr)
    return rows, drop_rows


def start_relays(net, sensor_host, fusion_host):
    """Start the floor: per modality, a relay on the encoder's host and one at the fusion's."""
    relays = []
    for modality, first in sensor_host.items():
        source = (CAMERA, 'image') if modality == 'vision' else (MIC['audio_topic'], 'audio')
        for host, args in ((first, ['--input', source[0], '--type', source[1], '--output',
                                    f'/floor/{modality}', '--name', f'floor_{modality}']),
                           (fusion_host, ['--input', f'/floor/{modality}', '--type',
                                          'embedding', '--output', f'/floor/{modality}_out',
                                          '--name', f'floor_{modality}_out'])):
            relays.append(subprocess.Popen(
                net.prefix(host) + [sys.executable, os.path.join(HERE, 'multihost_relay.py')] +
                args, env=net.env_for(host), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
    return relays


def stop(processes):
    """SIGINT, then wait (kill after 10 s)."""
    for p in processes:
        p.send_signal(2)
    for p in processes:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def measure_drop(net, probe, seconds_down):
    """Cut the offload host's link for `seconds_down`; return the recovery row."""
    cut = time.time()
    net.hosts.link('offload', False)
    time.sleep(seconds_down)
    net.hosts.link('offload', True)
    back = time.time()
    recovered = None
    while time.time() < back + 120:
        fresh = [r['t'] for r in probe.records('fusion') if r['t'] > back and
                 r['modalities']['vision'][0] and not r['modalities']['vision'][1]]
        if fresh:
            recovered = min(fresh) - back
            break
        time.sleep(0.2)
    time.sleep(3.0)
    records = probe.records()
    windows = {r['seq'] for r in records if r['kind'] == 'embedding' and
               r['topic'] == '/audio/embedding' and cut - 1 < r['t'] < back + 2}
    fused = {r['seq'] for r in records if r['kind'] == 'fusion' and r['trigger'] == 'audio'}
    times = sorted(r['t'] for r in records if r['kind'] == 'fusion' and
                   r['trigger'] == 'audio' and cut - 1 < r['t'] < back + 2)
    gap = max((b - a for a, b in zip(times, times[1:])), default=float('nan'))
    # Whether DDS gave the offload host up (its participant's lease ran out): the robot
    # then knew no vision publisher, and recovery took discovery, not only repairs.
    gone = [r['t'] - cut for r in records if r['kind'] == 'publishers' and
            cut < r['t'] < back and r['count'] == 0]
    return [f'{seconds_down:g} s', f'after {gone[0]:.1f} s' if gone else 'no',
            'never' if recovered is None else f'{recovered:.2f}',
            f'{len(windows - fused)} of {len(windows)}', f'{1e3 * gap:.0f}']


def main(argv=None):
    """Run every layout and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='per measurement phase')
    parser.add_argument('--drops', type=float, nargs='*', default=[5.0, 60.0],
                        help='link drops (s) in layout a')
    parser.add_argument('--layouts', nargs='+', default=['a', 'b', 'central'])
    args = parser.parse_args(argv)
    reason = hosts.available()
    if reason:
        print(f'bench_multihost skipped: {reason}')
        return 0
    import tempfile
    log_root = tempfile.mkdtemp(prefix='bench_multihost_')
    rows, drops = [], []
    for name in args.layouts:
        r, d = run_layout(name, args.seconds, log_root, args.drops if name == 'a' else ())
        rows += r
        drops += d
    table('per host: link MB/s out / in, CPU % of one core (sum of its processes)',
          ['layout', 'host', 'tx MB/s', 'rx MB/s', 'CPU %'],
          [r for r in rows if not r[1].endswith('latency')])
    table('capture -> output at the fusion host, ms p50 / p99 (audio from the end of the chunk '
          'completing the window), beside the raw rclpy floor over the same hops (same drivers '
          'and link, measured just before the graph started)',
          ['layout', 'trigger', 'ours', 'floor', 'ours / floor'],
          [r for r in rows if r[1].endswith('latency')])
    if drops:
        table("layout a: the offload host's link cut, then restored",
              ['drop', "robot forgot vision's publisher", 'vision back after (s)',
               'robot audio windows without output',
               'longest gap between audio outputs (ms)'], drops)
    print(f'(node logs: {log_root})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
