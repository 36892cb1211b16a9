# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`late_fusion_demo`: real speech and photos through the three nodes, fused outputs printed.

Starts the media player (playing espeak-ng speech, silence and noise as a microphone and
scikit-image photos as a camera), the audio encoder, vision encoder and fusion nodes (and
the transcription node where its model is installed) as separate processes over DDS, and
prints the fused outputs as they stream and the partial and final transcripts live.
"""

import argparse
import os
import sys
import time

from .bringup import node_specs, NodeSpec, transcription_available
from .launcher import ProcessGroup


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

    from .ros_common import EMBEDDING_QOS
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
    args = parser.parse_args(argv)
    group = ProcessGroup(log_dir=args.log_dir)
    player = NodeSpec('media_player_node', 'media_player')
    transcribe = transcription_available() if args.transcribe is None else args.transcribe
    specs = node_specs(face=args.face, transcribe=transcribe)
    print(f"starting media player, {', '.join(s.name for s in specs)} "
          f"(ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); Ctrl-C stops", flush=True)
    for spec in [player] + specs:
        group.start(spec)
    try:
        count = _monitor(args.duration, args.print_every)
    finally:
        codes = group.stop()
    print('node exit codes: ' + ', '.join(f'{k}={v}' for k, v in codes.items()), flush=True)
    return 0 if count > 0 and not any(codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
