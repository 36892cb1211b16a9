# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
A listener for tests whose graph runs on other hosts (network namespaces): JSON lines out.

    python probe.py --fusion /fusion_output --embedding /vision/embedding --diagnostics

Prints one JSON object per message received, with its receipt time (wall clock, which
every namespace shares) and the fields the tests check, flushed at once so a test can
follow the file while the graph runs. Ctrl-C ends it.
"""

import argparse
import json
import signal
import sys
import time


def main(argv=None):
    """Subscribe what the arguments name and print every message as it arrives."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--fusion', action='append', default=[], help='FusionOutput topic')
    parser.add_argument('--embedding', action='append', default=[], help='Embedding topic')
    parser.add_argument('--diagnostics', action='store_true', help='/diagnostics too')
    parser.add_argument('--publishers', action='append', default=[],
                        help='report the number of publishers this host knows on a topic, '
                        'each time it changes (checked twice a second)')
    parser.add_argument('--name', default='probe')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from diagnostic_msgs.msg import DiagnosticArray
    from late_fusion_msgs.msg import Embedding, FusionOutput
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(args.name)
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)

    def sec(stamp):
        return stamp.sec + stamp.nanosec * 1e-9

    def emit(record):
        record['t'] = time.time()
        sys.stdout.write(json.dumps(record) + '\n')
        sys.stdout.flush()

    def on_fusion(topic):
        return lambda m: emit({
            'kind': 'fusion', 'topic': topic, 'trigger': m.trigger_modality,
            'seq': m.trigger_seq, 'stamp': sec(m.header.stamp), 'frame_id': m.header.frame_id,
            'valid': m.valid, 'latency': m.capture_to_output_latency,
            'modalities': {s.modality: [s.present, s.stale, s.age, sec(s.stamp)]
                           for s in m.modalities}})

    def on_embedding(topic):
        return lambda m: emit({
            'kind': 'embedding', 'topic': topic, 'modality': m.modality, 'seq': m.seq,
            'stamp': sec(m.header.stamp), 'frame_id': m.header.frame_id})

    def on_diagnostics(m):
        for status in m.status:
            emit({'kind': 'diagnostics', 'name': status.name, 'level': int.from_bytes(
                status.level, 'little') if isinstance(status.level, bytes) else status.level,
                'message': status.message, 'hardware_id': status.hardware_id,
                'values': {kv.key: kv.value for kv in status.values}})

    for topic in args.fusion:
        node.create_subscription(FusionOutput, topic, on_fusion(topic), qos)
    for topic in args.embedding:
        node.create_subscription(Embedding, topic, on_embedding(topic), qos)
    if args.diagnostics:
        node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 50)
    known = {}

    def on_graph():
        # What discovery says, not what arrives: a peer whose lease expired drops to 0.
        for topic in args.publishers:
            count = node.count_publishers(topic)
            if known.get(topic) != count:
                known[topic] = count
                emit({'kind': 'publishers', 'topic': topic, 'count': count})

    if args.publishers:
        node.create_timer(0.5, on_graph)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
