# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Small rclpy helpers shared by the nodes: parameters, QoS, stamps and the main loop."""

import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, List, Type

from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time as TimeMsg
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile,
                       QoSReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions

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


def declare(node: Node, name: str, default, description: str, *, read_only: bool = False,
            min_value=None, max_value=None, dynamic_typing: bool = False):
    """Declare a parameter with a ParameterDescriptor and return its value."""
    desc = ParameterDescriptor(description=description, read_only=read_only,
                               dynamic_typing=dynamic_typing)
    if min_value is not None or max_value is not None:
        if isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(min_value), to_value=float(max_value), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(
                from_value=int(min_value), to_value=int(max_value), step=0)]
    return node.declare_parameter(name, default, desc).value


def qos_override() -> QoSOverridingOptions:
    """Let users override reliability, depth, history and durability of a topic from YAML."""
    return QoSOverridingOptions.with_default_policies()


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


def report_undeclared(node: Node) -> List[str]:
    """
    Log the parameters `node` was given at start-up but does not declare; return them.

    rcl silently ignores a parameter no node declares, so a misspelt name in a parameters
    file (`max_agee`) would leave the default in force unnoticed. A node may explain a
    name it ignores on purpose with `unused_parameter_reason(name) -> str` (logged at
    info level instead of as a warning).
    """
    # rclpy keeps what the command line and parameters files gave the node only here (no
    # public accessor; the attribute exists in every release since Foxy).
    given = getattr(node, '_parameter_overrides', None) or {}
    unused = sorted(name for name in given if not node.has_parameter(name))
    explain = getattr(node, 'unused_parameter_reason', lambda name: '')
    reasons = {}
    for name in unused:
        reasons.setdefault(explain(name) or '', []).append(name)
    for reason, names in sorted(reasons.items()):
        if reason:
            node.get_logger().info(f'parameters not used ({reason}): {_compact(names)}')
        else:
            node.get_logger().warn(
                f'parameters given but not declared by this node, ignored: {_compact(names)} '
                f"(misspelt? 'ros2 param list {node.get_fully_qualified_name()}' lists "
                'the declared ones)')
    return unused


def _compact(names: List[str]) -> str:
    """Return 'a.b.{c, d}, e' for ['a.b.c', 'a.b.d', 'e']."""
    groups = {}
    for name in names:
        head, _, tail = name.rpartition('.')
        groups.setdefault(head, []).append(tail)
    return ', '.join(f'{head}.{{{", ".join(tails)}}}' if head and len(tails) > 1
                     else (f'{head}.{tails[0]}' if head else tails[0])
                     for head, tails in groups.items())


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


def make_executor(kind: str):
    """
    Return the executor named `kind`: 'single_threaded' or 'events'.

    Models run in the nodes' own worker threads, so the executor only moves messages; it is
    always spun with a bounded wait (spin_once), never with spin(): the EventsExecutor's
    spin() busy-polls a whole core here even with nothing to do (measured 62 % idle), and
    the MultiThreadedExecutor took 57 % of a core for the audio encoder at 31 chunks/s
    against 7 % for the SingleThreadedExecutor. bench_fusion_node.py measures both kinds.
    """
    if kind == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    if kind != 'single_threaded':
        raise ValueError(f"executor must be 'single_threaded' or 'events', not {kind!r}")
    return SingleThreadedExecutor()


def spin_node(node_cls: Type[Node], args=None) -> None:
    """
    Run one node until Ctrl-C or SIGTERM, then clean up in order, without a traceback.

    rclpy's own signal handler would shut the context down at once, while a worker thread
    may still be publishing; instead SIGINT/SIGTERM end the spin loop here, and the node's
    `close()` stops its workers before the node is destroyed and rclpy shut down.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    spinning = False

    def on_signal(signum, frame):
        # An exception raised by a signal handler lands wherever the main thread is. During
        # start-up (models loading) that is what Ctrl-C should do; while spinning it can land
        # inside rclpy's message conversion, which turns it into a RuntimeError (seen under
        # `ros2 launch` with audio at 47 chunks/s): then only ask the loop to end.
        if not spinning:
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node = None
    code = 0
    try:
        try:
            node = node_cls()
            kind = declare(node, 'executor', getattr(node, 'DEFAULT_EXECUTOR',
                                                     'single_threaded'),
                           "rclpy executor: 'single_threaded' or 'events' (rclpy.experimental."
                           'EventsExecutor), spun with a bounded wait either way.',
                           read_only=True)
            executor = make_executor(kind)
        except (ValueError, OSError, ParameterException) as err:
            # A configuration the node cannot start with: one clear line, no traceback.
            rclpy.logging.get_logger(node_cls.__name__).fatal(f'cannot start: {err}')
            code = 1
            return
        report_undeclared(node)
        executor.add_node(node)
        spinning = True
        while rclpy.ok() and not stop.is_set():
            # A bounded wait returns to Python regularly so that a stop request is seen even
            # when nothing arrives (e.g. use_sim_time with no /clock: timers stand still).
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        if node is not None:
            if hasattr(node, 'close'):
                node.close()
            node.destroy_node()
        rclpy.try_shutdown()
        # Everything the node owns is released now. What remains is the interpreter's own
        # teardown of torch, mediapipe and the other modules: ~1 s per model process here
        # when idle, and more than the 5 s `ros2 launch` waits before escalating to SIGTERM
        # when four of them stop at once on a busy 2-core computer (measured). Skip it.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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
