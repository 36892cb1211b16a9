# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The raw rclpy floor across hosts: a relay that turns each input into an Embedding at once.

    python multihost_relay.py --input /camera/image_raw --type image --output /floor/vision

Subscribes one topic (sensor_msgs/Image, audio_common_msgs/AudioDataStamped or
late_fusion_msgs/Embedding) with the QoS our nodes use for it and, in the callback,
publishes a late_fusion_msgs/Embedding of the size an encoder publishes (1280 floats for
an image, one score for audio, the same data for an embedding) with the input's capture
stamp: the same messages over the same hops as the graph, with no model and no fusion.
"""

import argparse
import signal
import sys


def main(argv=None):
    """Relay until Ctrl-C."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--input', required=True)
    parser.add_argument('--type', choices=('image', 'audio', 'embedding'), required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--name', default='relay')
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from audio_common_msgs.msg import AudioDataStamped
    from late_fusion_msgs.msg import Embedding
    from late_fusion_ros.shared.qos import EMBEDDING_QOS
    from sensor_msgs.msg import Image
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(args.name)
    pub = node.create_publisher(Embedding, args.output, EMBEDDING_QOS)
    size = {'image': 1280, 'audio': 1}
    msg_type = {'image': Image, 'audio': AudioDataStamped, 'embedding': Embedding}[args.type]
    # What our encoders end up with for these drivers (adapted to reliable publishers).
    qos = QoSProfile(depth=10 if args.type == 'image' else 64,
                     reliability=ReliabilityPolicy.RELIABLE)
    if args.type == 'embedding':
        qos = EMBEDDING_QOS
    filler = [0.5] * size.get(args.type, 0)

    def relay(msg):
        out = Embedding(modality='floor', data=list(msg.data) if args.type == 'embedding'
                        else filler, labels=['x'], scores=[0.5])
        out.header = msg.header
        pub.publish(out)

    node.create_subscription(msg_type, args.input, relay, qos)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
