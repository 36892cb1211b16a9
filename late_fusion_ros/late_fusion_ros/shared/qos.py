# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""QoS profiles of the nodes' inputs and outputs, and the users' QoS overrides."""

from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,
                       QoSReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions

# Camera frames: the vision node keeps only the newest frame for its model, but every frame
# must reach the callback (counted, checked): a reliable reader queue of 5 overflowed when
# the executor thread stalled ~170 ms on a busy 2-core machine (bench_drivers.py: 9 of
# 300 1280x720 frames lost); 10 (ROS's default depth) holds a third of a second at 30 fps.
# Reliability follows the driver: AdaptiveSubscription sets it from the publishers found.
SENSOR_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10,
                        reliability=QoSReliabilityPolicy.BEST_EFFORT,
                        durability=QoSDurabilityPolicy.VOLATILE)
# Embeddings and fused outputs are small and every one matters to the consumer: reliable.
EMBEDDING_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=50,
                           reliability=QoSReliabilityPolicy.RELIABLE,
                           durability=QoSDurabilityPolicy.VOLATILE)


def qos_override() -> QoSOverridingOptions:
    """Let users override reliability, depth, history and durability of a topic from YAML."""
    return QoSOverridingOptions.with_default_policies()


def declare_subscription_qos_overrides(node, topic: str, qos: QoSProfile) -> None:
    """
    Declare the `qos_overrides.<topic>.subscription.*` parameters now.

    rclpy declares them when the subscription is created, which a lifecycle node does only
    on activate; declared in the constructor, they are listable in every state, and a
    parameters file setting them is not reported as unused at start-up. The same function
    and names create_subscription uses, so the later creation finds them declared.
    """
    import copy
    from rclpy.qos_overriding_options import _declare_qos_parameters
    from rclpy.subscription import Subscription
    _declare_qos_parameters(Subscription, node, node.resolve_topic_name(topic), copy.copy(qos),
                            qos_override())
