# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""/diagnostics of the nodes (one status per stage) and throttled logging of bad input."""

import time
from typing import Callable

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node


def processing_values(seconds, digits: int = 2) -> dict:
    """
    Return processing_p50_ms and processing_max_ms of recent model runs (seconds), or {}.

    `seconds` is the deque a worker thread appends to: it is copied at once.
    """
    if not seconds:
        return {}
    ms = np.array(list(seconds)) * 1e3
    return {'processing_p50_ms': round(float(np.percentile(ms, 50)), digits),
            'processing_max_ms': round(float(ms.max()), digits)}


class ThrottledLog:
    """
    Log each distinct problem at most once per period, with a count of what was suppressed.

    rclpy's throttle_duration_sec throttles per call site, so one noisy reason would hide
    every other; bad input is logged per (source, reason) key instead.
    """

    def __init__(self, node: Node, period: float = 5.0):
        self._node = node
        self._period = period
        self._last = {}

    def warn(self, key, text: str) -> None:
        """Log `text` unless `key` was logged less than `period` seconds ago."""
        now = time.monotonic()
        last, suppressed = self._last.get(key, (None, 0))
        if last is not None and now - last < self._period:
            self._last[key] = (last, suppressed + 1)
            return
        more = f' ({suppressed} more since last report)' if suppressed else ''
        self._node.get_logger().warn(text + more)
        self._last[key] = (now, 0)


class Diagnostics:
    """
    Publish counters as diagnostic_msgs/DiagnosticArray on /diagnostics.

    diagnostic_updater has no wheel here, and what it would add for a handful of counters
    is a timer and a message: this class is that, so rqt_robot_monitor and
    diagnostic_aggregator see the same topic and message either way. One status per stage
    of the node (input, encoder, output...), named '<node FQN>: <stage>' as
    diagnostic_updater names them with `diagnostic_updater.use_fqn` (two robots' nodes in
    two namespaces never share a status), with the node's FQN as hardware_id, which
    survives diagnostic_aggregator's renaming (config/diagnostic_aggregator.yaml groups
    them) and which fusion_monitor uses to find a node's statuses.
    """

    def __init__(self, node: Node, period: float = 1.0):
        from diagnostic_msgs.msg import DiagnosticArray
        self._node = node
        self._array_type = DiagnosticArray
        # /diagnostics is absolute by convention (the aggregator listens there).
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._providers = []
        # A steady timer: a node on sim time whose /clock is paused or gone (a bag that ended)
        # is exactly when its diagnostics are looked at. Stamps stay on the node's clock.
        self._timer = node.create_timer(period, self.publish,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    def add(self, name: str, provider: Callable[[], tuple]) -> None:
        """Add a status; provider() returns (level, message, {key: value})."""
        self._providers.append((name, provider))

    def remove(self, name: str) -> None:
        """Remove the status `name` (a stage of a node that was cleaned up)."""
        self._providers = [(n, p) for n, p in self._providers if n != name]

    def publish(self) -> None:
        """Publish every status now."""
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
        array = self._array_type()
        array.header.stamp = self._node.get_clock().now().to_msg()
        fqn = self._node.get_fully_qualified_name()
        for name, provider in self._providers:
            level, message, values = provider()
            array.status.append(DiagnosticStatus(
                level=level, name=f'{fqn}: {name}', message=message, hardware_id=fqn,
                values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()]))
        self._pub.publish(array)
