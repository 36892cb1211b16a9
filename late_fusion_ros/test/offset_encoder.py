# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
An encoder on a computer whose clock is off: Embeddings stamped `--offset` seconds away.

    python offset_encoder.py --topic /vision/embedding --offset 2.5 --rate 10

Publishes vision-like Embeddings (a 1280-d vector, one score) as an encoder node does:
reliable, a capture stamp `--latency` seconds before publishing and that latency in
`capture_to_publish_latency`, both read from a clock that runs `--offset` seconds ahead
(positive) or behind (negative) the real one, as on a host without chrony or PTP.
"""

import argparse
import signal
import sys
import time


def main(argv=None):
    """Publish until Ctrl-C."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--topic', default='/vision/embedding')
    parser.add_argument('--modality', default='vision')
    parser.add_argument('--offset', type=float, required=True, help='seconds, + is ahead')
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--latency', type=float, default=0.05)
    parser.add_argument('--name', default='offset_encoder')
    args = parser.parse_args(argv)
    import numpy as np
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from late_fusion_msgs.msg import Embedding
    from late_fusion_ros.shared.messages import sec_to_stamp
    from late_fusion_ros.shared.qos import EMBEDDING_QOS
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(args.name)
    pub = node.create_publisher(Embedding, args.topic, EMBEDDING_QOS)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    data = np.random.default_rng(0).random(1280).astype(np.float32).tolist()
    seq = 0
    while not stop:
        now = time.time() + args.offset  # this host's clock
        msg = Embedding(modality=args.modality, encoder_id='offset_encoder', seq=seq,
                        data=data, labels=['face'], scores=[0.9],
                        capture_to_publish_latency=args.latency)
        msg.header.stamp = sec_to_stamp(now - args.latency)
        msg.header.frame_id = 'camera_optical_frame'
        pub.publish(msg)
        seq += 1
        rclpy.spin_once(node, timeout_sec=1.0 / args.rate)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
