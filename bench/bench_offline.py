# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
fusion_offline speed: real-time factor and CPU by stage on a 60 s bag of the demo's format.

    python bench/bench_offline.py                 # every row, twice (about 12 minutes)
    python bench/bench_offline.py --quick         # the default options only, once
    python bench/bench_offline.py --before SRC    # also the code in SRC (a checkout's
                                                  # late_fusion_ros/ package folder)
    python bench/bench_offline.py --bag DIR       # another bag (e.g. a make demo run's)

The bag is made here, reproducibly, as the demo records it: the media player's scenario
(espeak-ng speech, silence and noise, looped) as 48 kHz stereo S16LE AudioDataStamped in
1024-frame chunks after a latched AudioInfo, and 1280x720 rgb8 photos at 15 fps, each
received a little after its capture: the topics and types of `make demo`'s bag. It is
written to a temporary folder (2.4 GB) and deleted at the end.

The real-time factor is the bag's duration over the wall time of the whole command
(`fusion_offline IN OUT`: interpreter start, imports and model loading included), as a
user sees it. CPU by stage is the run's own account (`--profile`: each thread's CPU time
by stage; Whisper's CTranslate2 threads count as transcription, start-up is everything
before the first message). The rows run interleaved, `--repeat` times, and each cell is
the median; the machine is shared, so compare rows of one run, not runs.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import table
import numpy as np

RATE, CHUNK, FPS, SIZE = 48000, 1024, 15.0, (1280, 720)
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')
SECONDS_PER_PHOTO = 3.0
PATTERN = 'speech silence speech noise speech silence'  # the media player's default
T0 = 1_800_000_000.0


def _stamp(msg, t):
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round(t % 1 * 1e9))


def make_bag(path: str, seconds: float = 60.0, fps: float = FPS, size=SIZE) -> str:
    """Write the demo-format bag of `seconds` to `path` (see the module doc); return it."""
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from late_fusion_ros.core.media import camera_frame, scenario, stereo
    from late_fusion_ros.tools.bag_io import BagWriter
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    mono, _ = scenario(PATTERN, rate=RATE)
    audio = stereo(mono)
    width, height = size
    photos = [camera_frame(n, width, height).tobytes() for n in PHOTOS]
    chunks = int(seconds * RATE) // CHUNK
    frames = int(seconds * fps)
    # Receipt times: a chunk once its last sample is captured (+1 ms), a frame 8 ms after
    # its exposure (a driver's copy and the middleware), as bag_record stamps them.
    events = [((T0 + (k + 1) * CHUNK / RATE + 0.001), 'a', k) for k in range(chunks)]
    events += [(T0 + k / fps + 0.008, 'i', k) for k in range(frames)]
    events.sort()
    with BagWriter(path) as writer:
        writer.add_topic('/audio_info', 'audio_common_msgs/msg/AudioInfo')
        writer.add_topic('/audio_stamped', 'audio_common_msgs/msg/AudioDataStamped')
        writer.add_topic('/image', 'sensor_msgs/msg/Image')
        writer.write('/audio_info', int((T0 - 0.5) * 1e9), serialize_message(AudioInfo(
            channels=2, sample_rate=RATE, sample_format='S16LE', bitrate=RATE * 32,
            coding_format='wave')))
        for receipt, kind, k in events:
            if kind == 'a':
                msg = AudioDataStamped()
                _stamp(msg, T0 + k * CHUNK / RATE)
                msg.header.frame_id = 'microphone'
                idx = (np.arange(CHUNK) + k * CHUNK) % len(audio)
                msg.audio.data = audio[idx].astype('<i2').tobytes()
                writer.write('/audio_stamped', int(round(receipt * 1e9)),
                             serialize_message(msg))
            else:
                t = k / fps
                msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                            data=photos[int(t / SECONDS_PER_PHOTO) % len(photos)])
                _stamp(msg, T0 + t)
                msg.header.frame_id = 'camera_optical_frame'
                writer.write('/image', int(round(receipt * 1e9)), serialize_message(msg))
    return path


# name, fusion_offline options; the first row is the default command.
ROWS = [
    ('default (-j 2, --batch 4, transcription)', []),
    ('-j 1', ['-j', '1']),
    ('--batch 1', ['--batch', '1']),
    ('--batch 8', ['--batch', '8']),
    ('--max-frame-rate 10', ['--max-frame-rate', '10']),
    ('--max-frame-rate 5', ['--max-frame-rate', '5']),
    # Whisper's own threads: 1 instead of the node's 2 (the same output bag, checked).
    ('-p transcription:cpu_threads:=1', ['-p', 'transcription:cpu_threads:=1']),
    ('--no-transcribe', ['--no-transcribe']),
    ('--no-transcribe -j 1', ['--no-transcribe', '-j', '1']),
]
STAGES = ('decode', 'vision', 'audio', 'transcription', 'fusion', 'writing', 'start-up',
          'other')


def run_offline(bag: str, args, before: str = ''):
    """Run fusion_offline once; return (wall s, CPU s of the process, its profile or None)."""
    out = tempfile.mkdtemp(prefix='bench_offline_out_')
    shutil.rmtree(out)
    env = dict(os.environ)
    if before:  # the previous code on the same installation: messages, YAML, models
        env['PYTHONPATH'] = before + os.pathsep + env.get('PYTHONPATH', '')
        cmd = [sys.executable, '-m', 'late_fusion_ros.tools.fusion_offline', bag, out, *args]
    else:
        cmd = [sys.executable, '-m', 'late_fusion_ros.tools.fusion_offline', bag, out,
               '--profile', *args]
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{proc.stdout}{proc.stderr}')
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    profile = None
    for line in proc.stdout.splitlines():
        if line.startswith('fusion_offline: profile '):
            profile = json.loads(line.split('profile ', 1)[1])
    return wall, cpu, profile


def bag_seconds(bag: str) -> float:
    """Return the bag's duration (first to last receipt)."""
    from late_fusion_ros.tools.bag_io import BagReader
    with BagReader(bag) as reader:
        return (reader.end_ns - reader.start_ns) * 1e-9


def main(argv=None) -> int:
    """Make (or take) the bag and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bag', help='use this bag instead of making the 60 s one')
    parser.add_argument('--seconds', type=float, default=60.0, help='length of the bag made')
    parser.add_argument('--repeat', type=int, default=2, help='runs of every row')
    parser.add_argument('--quick', action='store_true', help='the default row only, once')
    parser.add_argument('--before', default='', metavar='SRC',
                        help="also run the fusion_offline of another checkout's "
                        'late_fusion_ros/ package folder (same installation), as "before"')
    parser.add_argument('--make-only', metavar='DIR', help='only write the bag to DIR')
    args = parser.parse_args(argv)
    if args.make_only:
        t = time.monotonic()
        make_bag(args.make_only, args.seconds)
        print(f'wrote {args.make_only} in {time.monotonic() - t:.1f} s')
        return 0
    rows = ROWS[:1] if args.quick else list(ROWS)
    repeat = 1 if args.quick else max(1, args.repeat)
    if args.before:
        rows = [('before: the previous code, -j 2 (no transcription)', None)] + rows
    tmp = None
    try:
        bag = args.bag
        if bag is None:
            tmp = tempfile.mkdtemp(prefix='bench_offline_')
            bag = os.path.join(tmp, 'bag')
            t = time.monotonic()
            make_bag(bag, args.seconds)
            print(f'bag: {args.seconds:g} s, 1280x720 rgb8 at {FPS:g} fps, 48 kHz stereo '
                  f'speech, made in {time.monotonic() - t:.0f} s', flush=True)
        span = bag_seconds(bag)
        results = {name: [] for name, _ in rows}
        for k in range(repeat):
            for name, options in rows:  # interleaved: load changes hit every row alike
                load = os.getloadavg()[0]
                if options is None:
                    got = run_offline(bag, [], before=args.before)
                else:
                    got = run_offline(bag, options)
                results[name].append(got + (load,))
                print(f'  [{k + 1}/{repeat}] {name}: {got[0]:.1f} s wall '
                      f'({span / got[0]:.1f}x), {got[1]:.1f} s CPU, load {load:.1f}',
                      flush=True)
        print_tables(span, rows, results)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def print_tables(span: float, rows, results) -> None:
    """Print the real-time factor table and the CPU-by-stage table (medians)."""
    lines = []
    for name, _ in rows:
        runs = results[name]
        wall = float(np.median([r[0] for r in runs]))
        cpu = float(np.median([r[1] for r in runs]))
        load = float(np.median([r[3] for r in runs]))
        lines.append((name, f'{wall:.1f}', f'{span / wall:.1f}x', f'{cpu:.1f}',
                      f'{cpu / wall:.2f}', f'{load:.1f}'))
    table(f'fusion_offline on a {span:.0f} s bag (whole command; median of '
          f'{len(next(iter(results.values())))})',
          ['options', 'wall s', 'real time', 'CPU s', 'cores used', 'load before'], lines)
    lines = []
    for name, _ in rows:
        profiles = [r[2] for r in results[name] if r[2] is not None]
        if not profiles:
            continue
        cells = []
        for stage in STAGES:
            values = [p['cpu_seconds'].get(stage, 0.0) for p in profiles]
            cells.append(float(np.median(values)))
        total = sum(cells)
        lines.append((name, *(f'{v:.1f} ({100 * v / total:.0f}%)' for v in cells),
                      f'{total:.1f}'))
    table('CPU seconds by stage (share of the total), median', ['options', *STAGES, 'total'],
          lines)


if __name__ == '__main__':
    sys.exit(main())
