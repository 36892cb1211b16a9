# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`late_fusion_demo`: real speech and photos through the three nodes, fused outputs printed.

Starts the media player (playing espeak-ng speech, silence and noise as a microphone and
scikit-image photos as a camera), the audio encoder, vision encoder and fusion nodes as
separate processes over DDS, and prints the fused outputs as they stream.
"""

import argparse
import os
import sys
import time

from .bringup import node_specs, NodeSpec
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


def main(argv=None):
    """Run the demo for --duration seconds (0: until Ctrl-C)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--duration', type=float, default=0.0)
    parser.add_argument('--print-every', type=float, default=0.5,
                        help='seconds between printed outputs of one trigger modality')
    parser.add_argument('--log-dir', default=None, help='node logs here instead of stdout')
    parser.add_argument('--face', action='store_true',
                        help='also run the face/mouth-movement encoder and fuse its cues')
    args = parser.parse_args(argv)
    group = ProcessGroup(log_dir=args.log_dir)
    player = NodeSpec('media_player_node', 'media_player')
    specs = node_specs(face=args.face)
    print('starting media player, audio encoder, vision encoder and fusion node '
          f"(ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); Ctrl-C stops", flush=True)
    group.start_all([player] + specs)  # reports parameters-file sections that fit no node
    try:
        count = _monitor(args.duration, args.print_every)
    finally:
        codes = group.stop()
    print('node exit codes: ' + ', '.join(f'{k}={v}' for k, v in codes.items()), flush=True)
    return 0 if count > 0 and not any(codes.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
