# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""The nodes' executor and main loop."""

import logging
import os
import signal
import sys
import threading
from typing import Type

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .parameters import declare, report_undeclared


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
