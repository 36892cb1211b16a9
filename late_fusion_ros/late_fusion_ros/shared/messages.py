# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Stamps, durations and the Embedding message: conversions every node uses."""

from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time as TimeMsg
import numpy as np
from rclpy.node import Node


def stamp_to_sec(stamp: TimeMsg) -> float:
    """Convert a builtin_interfaces/Time to float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float) -> TimeMsg:
    """Convert float seconds to builtin_interfaces/Time (non-negative)."""
    ns = max(0, int(round(t * 1e9)))
    return TimeMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def sec_to_duration(t: float) -> DurationMsg:
    """Convert float seconds to builtin_interfaces/Duration."""
    ns = int(round(t * 1e9))
    return DurationMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def embedding_msg(out, modality: str, encoder_id: str, seq: int, stamp: TimeMsg,
                  frame_id: str, source_duration: float, processing_time: float):
    """
    Build a late_fusion_msgs/Embedding from an EncoderOutput and the source's stamp.

    `capture_to_publish_latency` is left 0: the caller sets it when it knows the time of
    publishing (the nodes just before publish(), fusion_offline from the bag's receipt time).
    """
    from late_fusion_msgs.msg import Embedding
    msg = Embedding(modality=modality, encoder_id=encoder_id, seq=seq,
                    data=np.asarray(out.data, np.float32).tolist(), labels=list(out.labels),
                    scores=np.asarray(out.scores, np.float32).tolist(),
                    source_duration=sec_to_duration(source_duration),
                    processing_time=sec_to_duration(processing_time),
                    processing_seconds=float(processing_time))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def now_sec(node: Node) -> float:
    """Return the node clock's time in seconds (ROS time: sim time when use_sim_time)."""
    return node.get_clock().now().nanoseconds * 1e-9
