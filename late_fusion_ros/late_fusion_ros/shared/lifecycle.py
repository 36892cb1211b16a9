# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The lifecycle plumbing every node shares: the managed-node base class and the main loop.

Every node of the graph is a ROS 2 managed node (rclpy.lifecycle): `configure` validates
its parameters and loads and warms its model, `activate` subscribes and starts publishing,
`deactivate` stops intake (nothing is received or published, the model stays loaded),
`cleanup` frees the model, `shutdown` (and Ctrl-C or SIGTERM, in any state) ends the
process cleanly. A lifecycle manager, `ros2 lifecycle set` or the launch file
(`managed:=true`) drives the transitions; with the parameter `autostart` (the default, what
`ros2 run` and `managed:=false` use) the node configures and activates itself at start-up,
as a plain node does.
"""

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Type

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from .diagnostics import Diagnostics
from .parameters import declare, report_undeclared

_OK = TransitionCallbackReturn.SUCCESS
_FAILED = TransitionCallbackReturn.FAILURE


def _release_heap() -> None:
    """
    Return freed heap memory to the operating system (glibc), so that RSS drops.

    A model released by cleanup is freed inside the process, but glibc keeps the freed
    arenas mapped, so RSS would not show it; malloc_trim hands them back. A no-op where
    glibc is absent.
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def one_line(err: BaseException) -> str:
    """Return an exception as one line for a log: 'Type: message' without a traceback."""
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if isinstance(err, (ValueError, OSError)) else f'{type(err).__name__}: {text}'


class ManagedNode(LifecycleNode):
    """
    Base class of the late_fusion_ros nodes: a lifecycle node with the project's conventions.

    A node declares every parameter in its constructor (so `ros2 param list|describe` and
    parameters files work in every state) and implements four steps, called from the
    standard transitions:

    - `configure_node()`: validate parameters, load and warm up the model, create the
      lifecycle publishers (`lifecycle_publisher`) and the /diagnostics stages
      (`add_stage`). Raising fails the transition with one error line and the node stays
      unconfigured; what was built so far is released with `cleanup_node()`.
    - `activate_node()`: subscribe (intake starts); publishers are enabled just before.
    - `deactivate_node()`: unsubscribe and drop what waits for the model (intake stops);
      publishers are disabled just after, so a result still in flight is not published.
    - `cleanup_node()`: stop the model thread and free the model; must accept a partly
      configured node.

    /diagnostics carries a `lifecycle` status in every state (state, configure and activate
    times, and why the last configure failed, as ERROR), then the stages of a configured
    node.
    """

    # Each node may choose its executor (shared.lifecycle.make_executor); spin_node declares
    # the read-only `executor` parameter with this default.
    DEFAULT_EXECUTOR = 'single_threaded'

    def __init__(self, node_name: str, **node_options):
        """Create the node unconfigured, with its `autostart` parameter and /diagnostics."""
        super().__init__(node_name, **node_options)
        self.autostart = declare(
            self, 'autostart', True, 'Configure and activate at start-up, as a plain node '
            '(ros2 run, launch managed:=false). false: start unconfigured and wait for a '
            'lifecycle manager or `ros2 lifecycle set` (launch managed:=true).', read_only=True)
        self.lifecycle_state = 'unconfigured'
        self.configure_error = ''
        self.transition_seconds: Dict[str, float] = {}
        self._publishers_made: List = []
        self._stages: List[str] = []
        # A plain publisher: /diagnostics reports the lifecycle state in every state.
        self.diagnostics = Diagnostics(self)
        self.diagnostics.add('lifecycle', self._lifecycle_status)

    # ------------------------------------------------------------------ for the nodes
    def configure_node(self) -> None:
        """Validate parameters, load the model, create publishers and diagnostics stages."""

    def activate_node(self) -> None:
        """Start intake: subscribe the inputs."""

    def deactivate_node(self) -> None:
        """Unsubscribe and stop intake."""

    def cleanup_node(self) -> None:
        """Stop the model thread and free the model (also after a failed configure)."""

    def lifecycle_publisher(self, msg_type, topic: str, qos):
        """Create a lifecycle publisher, destroyed by cleanup (enabled while active)."""
        pub = self.create_lifecycle_publisher(msg_type, topic, qos)
        self._publishers_made.append(pub)
        return pub

    def add_stage(self, name: str, provider: Callable[[], tuple]) -> None:
        """Add a /diagnostics stage of the configured node, removed again by cleanup."""
        self.diagnostics.add(name, provider)
        self._stages.append(name)

    @property
    def active(self) -> bool:
        """Return whether the node is in the active state (receiving and publishing)."""
        return self.lifecycle_state == 'active'

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Configure: see configure_node; a failure leaves the node unconfigured."""
        start = time.perf_counter()
        try:
            self.configure_node()
        except Exception as err:  # noqa: BLE001 - any failure: one line, stay unconfigured
            self.configure_error = one_line(err)
            self.get_logger().error(f'configure failed: {self.configure_error}')
            self._cleanup_quietly()
            return _FAILED
        self.configure_error = ''
        self._timed('configure', start)
        self.lifecycle_state = 'inactive'
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Activate: enable the publishers, then subscribe (activate_node)."""
        start = time.perf_counter()
        super().on_activate(state)
        try:
            self.activate_node()
        except Exception as err:  # noqa: BLE001 - one line, stay inactive
            self.get_logger().error(f'activate failed: {one_line(err)}')
            self._deactivate_quietly(state)
            return _FAILED
        self._timed('activate', start)
        self.lifecycle_state = 'active'
        return _OK

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Deactivate: stop intake, then disable the publishers."""
        self._deactivate_quietly(state)
        self.lifecycle_state = 'inactive'
        self.get_logger().info('inactive: intake stopped, nothing is published')
        return _OK

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Clean up: free the model and the publishers; back to unconfigured."""
        self._cleanup_quietly()
        self.lifecycle_state = 'unconfigured'
        self.get_logger().info('cleaned up: model released')
        return _OK

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Shut down from any state: release what the state holds; the process then ends."""
        self.close()
        self.lifecycle_state = 'finalized'
        return _OK

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover from a failed transition: release everything, back to unconfigured."""
        self.close()
        self.lifecycle_state = 'unconfigured'
        return _OK

    def close(self) -> None:
        """Release whatever the current state holds (deactivate and clean up as needed)."""
        if self.lifecycle_state == 'active':
            self._deactivate_quietly(None)
        if self.lifecycle_state in ('active', 'inactive'):
            self._cleanup_quietly()
        self.lifecycle_state = 'unconfigured'

    # ------------------------------------------------------------------ internals
    def _timed(self, transition: str, start: float) -> None:
        took = time.perf_counter() - start
        self.transition_seconds[transition] = took
        self.get_logger().info(f'{transition}d in {took:.2f} s')

    def _deactivate_quietly(self, state: Optional[LifecycleState]) -> None:
        try:
            self.deactivate_node()
        except Exception as err:  # noqa: BLE001 - deactivation must complete
            self.get_logger().error(f'deactivate: {one_line(err)}')
        for pub in self._publishers_made:
            pub.on_deactivate(state)

    def _cleanup_quietly(self) -> None:
        try:
            self.cleanup_node()
        except Exception as err:  # noqa: BLE001 - cleanup must complete
            self.get_logger().error(f'cleanup: {one_line(err)}')
        for pub in self._publishers_made:
            self.destroy_lifecycle_publisher(pub)
        self._publishers_made = []
        for name in self._stages:
            self.diagnostics.remove(name)
        self._stages = []
        _release_heap()

    def _lifecycle_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus
        values = {'state': self.lifecycle_state, 'autostart': self.autostart}
        values.update({f'{k}_seconds': round(v, 3) for k, v in self.transition_seconds.items()})
        if self.configure_error and self.lifecycle_state == 'unconfigured':
            values['configure_error'] = self.configure_error
            return DiagnosticStatus.ERROR, f'configure failed: {self.configure_error}', values
        return DiagnosticStatus.OK, self.lifecycle_state, values


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
    Run one node until Ctrl-C, SIGTERM or (managed nodes) the shutdown transition.

    rclpy's own signal handler would shut the context down at once, while a worker thread
    may still be publishing; instead SIGINT/SIGTERM end the spin loop here, and the node is
    shut down in order (a managed node through its shutdown transition from whatever state
    it is in) before it is destroyed and rclpy shut down. A managed node with `autostart`
    configures and activates itself first; if that fails it exits 1 with one FATAL line.
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
        managed = isinstance(node, ManagedNode)
        if managed and node.autostart:
            if node.trigger_configure() != _OK:
                node.get_logger().fatal(f'cannot start: {node.configure_error}')
                code = 1
                return
            if node.trigger_activate() != _OK:
                node.get_logger().fatal('cannot start: activation failed')
                code = 1
                return
        executor.add_node(node)
        spinning = True
        while rclpy.ok() and not stop.is_set():
            if managed and node.lifecycle_state == 'finalized':
                break  # `ros2 lifecycle set <node> shutdown`: the process ends
            # A bounded wait returns to Python regularly so that a stop request is seen even
            # when nothing arrives (e.g. use_sim_time with no /clock: timers stand still).
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        if node is not None:
            _shut_down(node)
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


def _shut_down(node: Node) -> None:
    """Stop a node before it is destroyed: the shutdown transition, or its close()."""
    if isinstance(node, ManagedNode):
        if node.lifecycle_state == 'finalized':
            return
        try:
            # Through the state machine, so that a lifecycle manager sees `finalized`.
            node.trigger_shutdown()
        except Exception:  # noqa: BLE001 - e.g. Ctrl-C in the middle of a transition
            pass
        if node.lifecycle_state != 'finalized':
            node.close()
    elif hasattr(node, 'close'):
        node.close()
