# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`late_fusion_demo`: real speech and photos through the three nodes, fused outputs printed.

Starts the media player (playing espeak-ng speech, silence and noise as a microphone and
scikit-image photos as a camera), the audio encoder, vision encoder and fusion nodes (and
the transcription node where its model is installed) as separate processes over DDS, and
prints the fused outputs as they stream and the partial and final transcripts live. Unless
--no-record, bag_record records every topic of the run (MCAP) and, at the end, the demo
draws the run's timeline (PNG and HTML) from that bag and prints where both are.
"""

import argparse
import os
import re
import shutil
import sys
import time

from ..bringup import node_specs, NodeSpec, transcription_available
from ..bringup.launcher import ProcessGroup


def _monitor(duration: float, every: float) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from late_fusion_msgs.msg import FusionOutput

    rclpy.init()
    node = rclpy.create_node('late_fusion_demo_monitor')
    stats, last_print = {}, {}

    def on_output(msg: FusionOutput):
        stats[msg.trigger_modality] = stats.get(msg.trigger_modality, 0) + 1
        now = time.monotonic()
        # Every modality's outputs are shown, each at most once per `every` seconds.
        if now - last_print.get(msg.trigger_modality, 0.0) < every:
            return
        last_print[msg.trigger_modality] = now
        mods = ' '.join(
            f"{m.modality}={'-' if not m.present else 'stale' if m.stale else f'{m.weight:.2f}'}"
            for m in msg.modalities)
        top = ', '.join(f'{lab} {s:.2f}' for lab, s in list(zip(msg.labels, msg.scores))[:3])
        print(f'[{msg.trigger_modality:>6} #{msg.trigger_seq:<5}] {msg.decision or "(none)":<13}'
              f' conf {msg.confidence:.2f} | {top} | weights {mods} | '
              f'capture->out {msg.capture_to_output_latency * 1e3:6.1f} ms', flush=True)

    from ..shared.qos import EMBEDDING_QOS
    node.create_subscription(FusionOutput, 'fusion_output', on_output, EMBEDDING_QOS)
    _show_transcripts(node, EMBEDDING_QOS)
    end = time.monotonic() + duration if duration > 0 else float('inf')
    try:
        while rclpy.ok() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        counts = ', '.join(f'{v} {k}-triggered' for k, v in stats.items())
        print(f'fused outputs: {counts or "none"}', flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return sum(stats.values())


def _show_transcripts(node, qos) -> None:
    """Print every partial and final transcript of the transcription node as it arrives."""
    from late_fusion_msgs.msg import Transcript

    def on_transcript(msg: Transcript):
        kind = 'FINAL  ' if msg.final else 'partial'
        took = msg.processing_time.sec + msg.processing_time.nanosec * 1e-9
        print(f'[speech #{msg.utterance_id:<4}] {kind} "{msg.text}" (decode {took:.2f} s)',
              flush=True)

    node.create_subscription(Transcript, 'speech/transcript', on_transcript, qos)


RUN_NAME = re.compile(r'^\d{8}-\d{6}$')


def _new_run_dir(root: str, keep: int) -> str:
    """
    Make <root>/<date-time>; delete the oldest earlier runs beyond `keep`.

    The bag of a 30 s run takes about 1.2 GB (mostly 1280x720 camera frames).
    """
    os.makedirs(root, exist_ok=True)
    runs = sorted(d for d in os.listdir(root) if RUN_NAME.match(d)
                  and os.path.isdir(os.path.join(root, d)))
    for old in runs[:max(0, len(runs) - (keep - 1))]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    path = os.path.join(root, time.strftime('%Y%m%d-%H%M%S'))
    os.makedirs(path)
    return path


def _timeline(bag: str, run_dir: str) -> None:
    from .bag_io import BagError
    from .timeline import load_bag, render_html, render_png
    try:
        data = load_bag(bag)
        png_path = os.path.join(run_dir, 'timeline.png')
        png = render_png(data, png_path)
        render_html(data, png, os.path.join(run_dir, 'timeline.html'))
    except (BagError, OSError) as err:
        print(f'no timeline: {err}', flush=True)
        return
    size = sum(os.path.getsize(os.path.join(bag, f)) for f in os.listdir(bag)) / 1e6
    print(f'bag:      {bag} ({size:.0f} MB; replay it with bag_play, run it with '
          f'fusion_offline)\ntimeline: {png_path}\n          '
          f'{os.path.join(run_dir, "timeline.html")}', flush=True)


def main(argv=None):
    """Run the demo for --duration seconds (0: until Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--duration', type=float, default=0.0)
    parser.add_argument('--print-every', type=float, default=0.5,
                        help='seconds between printed outputs of one trigger modality')
    parser.add_argument('--log-dir', default=None, help='node logs here instead of stdout')
    parser.add_argument('--face', action='store_true',
                        help='also run the face/mouth-movement encoder and fuse its cues')
    parser.add_argument('--no-transcribe', dest='transcribe', action='store_false',
                        default=None, help='do not run the speech-to-text node')
    parser.add_argument('--runs-dir', default='demo_runs',
                        help='each run records its bag and timeline in <runs-dir>/<date-time>')
    parser.add_argument('--keep-runs', type=int, default=2,
                        help='earlier runs kept in --runs-dir (older ones are deleted)')
    parser.add_argument('--no-record', action='store_true', help='record no bag')
    args = parser.parse_args(argv)
    group = ProcessGroup(log_dir=args.log_dir)
    player = NodeSpec('media_player_node', 'media_player')
    transcribe = transcription_available() if args.transcribe is None else args.transcribe
    specs = node_specs(face=args.face, transcribe=transcribe)
    print(f"starting media player, {', '.join(s.name for s in specs)} "
          f"(ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); Ctrl-C stops", flush=True)
    bag = None
    recorder = ProcessGroup(log_dir=args.log_dir)
    if not args.no_record:
        run_dir = _new_run_dir(args.runs_dir, args.keep_runs)
        bag = os.path.join(run_dir, 'bag')
        # First, so that it has subscribed by the time the player starts publishing.
        recorder.start(NodeSpec('bag_record', 'bag_record'), ['--', '-a', '-o', bag])
        time.sleep(1.0)
    group.start_all([player] + specs)  # reports parameters-file sections that fit no node
    try:
        count = _monitor(args.duration, args.print_every)
    finally:
        codes = group.stop()
        # Last, with time to write what it still holds: a bag killed before it is closed
        # has no index and cannot be read.
        codes.update(recorder.stop(timeout=120.0))
    print('node exit codes: ' + ', '.join(f'{k}={v}' for k, v in codes.items()), flush=True)
    if bag is not None and os.path.isfile(os.path.join(bag, 'metadata.yaml')):
        _timeline(bag, run_dir)
    return 0 if count > 0 and not any(codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
