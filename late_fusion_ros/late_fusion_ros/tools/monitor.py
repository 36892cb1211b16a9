# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`fusion_monitor`: one line a second about every late_fusion_ros graph that is running.

    ros2 run late_fusion_ros fusion_monitor
    ros2 run late_fusion_ros fusion_monitor --namespace /robot1 --count 10

Attaches to any running graph, in any namespace: FusionOutput and Embedding topics are
found by their type, so remapped or namespaced graphs need no arguments; each
FusionOutput topic is one graph, and the Embedding topics and nodes in its namespace are
its inputs. Per graph and second: the output rate, each modality's input rate, the
capture-to-output latency p50/p99 of that second's outputs, each modality's age in the
latest output ('!' when the fusion found it stale), the latest decision, and drops and
rejects, from the fusion's own counters and from the encoders' diagnostics (on
/diagnostics_agg when a diagnostic_aggregator runs, on /diagnostics otherwise).
"""

import argparse
from collections import defaultdict
import signal
import sys
import time
from typing import Dict, Optional

import numpy as np

OUTPUT = 'late_fusion_msgs/msg/FusionOutput'
EMBEDDING = 'late_fusion_msgs/msg/Embedding'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
# Diagnostics values that count inputs lost or dropped before or in an encoder, and inputs
# it refused (see the encoder nodes' input and encoder statuses).
DROP_KEYS = ('dropped', 'skipped_windows', 'lost', 'lost_chunks')
REJECT_KEYS = ('rejected',)


def namespace_of(name: str) -> str:
    """Return the namespace of a topic or node name ('/' for the root)."""
    head = name.rsplit('/', 1)[0]
    return head or '/'


def in_namespace(name: str, ns: str) -> bool:
    """Return True if `name` lies in namespace `ns` (or below it)."""
    return ns == '/' or name == ns or name.startswith(ns.rstrip('/') + '/')


class GraphStats:
    """What one graph (one FusionOutput topic) did during the current second."""

    def __init__(self, output_topic: str):
        """Start counting for `output_topic`."""
        self.topic = output_topic
        self.ns = namespace_of(output_topic)
        self.outputs = 0
        self.latencies = []
        self.inputs = defaultdict(int)
        self.last = None          # the latest FusionOutput
        self.total_outputs = 0
        self.encoder_drops: Dict[str, int] = {}    # node FQN -> total
        self.encoder_rejects: Dict[str, int] = {}
        self.prev_drops = None

    def line(self, seconds: float) -> str:
        """Return the line for the `seconds` just counted, and start the next period."""
        out = f'{self.outputs / seconds:5.1f} Hz'
        ins = ' '.join(f'{m} {n / seconds:.1f}' for m, n in sorted(self.inputs.items()))
        if self.latencies:
            lat = np.asarray(self.latencies) * 1e3
            latency = f'lat p50 {np.percentile(lat, 50):.1f} p99 {np.percentile(lat, 99):.1f} ms'
        else:
            latency = 'lat -'
        last = self.last
        if last is None:
            ages = 'age -'
            decision = 'no output yet'
            fusion_drops = fusion_rejects = 0
        else:
            ages = 'age ' + ' '.join(
                f"{m.modality} {'-' if not m.present else f'{m.age:.2f}'}"
                f"{'!' if m.stale else ''}" for m in last.modalities)
            decision = (f'{last.decision} {last.confidence:.2f} ({last.trigger_modality} '
                        f'#{last.trigger_seq})' if last.valid else 'invalid (no usable input)')
            fusion_drops = sum(int(m.dropped) for m in last.modalities)
            fusion_rejects = sum(int(m.rejected) for m in last.modalities)
        drops = fusion_drops + sum(self.encoder_drops.values())
        rejects = fusion_rejects + sum(self.encoder_rejects.values())
        new = '' if self.prev_drops is None or drops == self.prev_drops else \
            f' (+{drops - self.prev_drops})'
        self.prev_drops = drops
        text = (f'{self.topic}: out {out} | in {ins or "-"} Hz | {latency} | {ages} s | '
                f'{decision} | drops {drops}{new} rejects {rejects}')
        self.outputs, self.latencies = 0, []
        self.inputs = defaultdict(int)
        return text


class FusionMonitor:
    """Discover graphs by topic type, count what they publish, print a line a second."""

    def __init__(self, node, namespace: str = '/', out=sys.stdout):
        """Watch every graph in `namespace` (default: all) from `node`."""
        from rclpy.clock import Clock, ClockType
        self._node = node
        self._ns = namespace if namespace.startswith('/') else '/' + namespace
        self._out = out
        self.graphs: Dict[str, GraphStats] = {}
        self._subscribed = set()
        self._diag_topic: Optional[str] = None
        self._diag_sub = None
        self._period_start = time.monotonic()
        self.lines = 0
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # also with use_sim_time
        self._discover_timer = node.create_timer(0.5, self.discover, clock=steady)
        self._print_timer = node.create_timer(1.0, self.print_lines, clock=steady)
        self.discover()

    def discover(self) -> None:
        """Subscribe to new FusionOutput and Embedding topics, and to the diagnostics."""
        from late_fusion_msgs.msg import Embedding, FusionOutput
        from ..shared.qos import EMBEDDING_QOS
        names = self._node.get_topic_names_and_types()
        for topic, types in names:
            if topic in self._subscribed or not in_namespace(topic, self._ns):
                continue
            if OUTPUT in types:
                self.graphs[topic] = GraphStats(topic)
                self._node.create_subscription(
                    FusionOutput, topic, lambda m, t=topic: self._on_output(t, m),
                    EMBEDDING_QOS)
            elif EMBEDDING in types:
                self._node.create_subscription(
                    Embedding, topic, lambda m, t=topic: self._on_embedding(t, m),
                    EMBEDDING_QOS)
            else:
                continue
            self._subscribed.add(topic)
        # The aggregator's output when one runs (it keeps hardware_id and values), else raw.
        available = {t for t, types in names if DIAGNOSTICS in types}
        want = '/diagnostics_agg' if '/diagnostics_agg' in available else (
            '/diagnostics' if '/diagnostics' in available else None)
        if want is not None and want != self._diag_topic:
            from diagnostic_msgs.msg import DiagnosticArray
            if self._diag_sub is not None:
                self._node.destroy_subscription(self._diag_sub)
            self._diag_sub = self._node.create_subscription(
                DiagnosticArray, want, self._on_diagnostics, 10)
            self._diag_topic = want

    @property
    def diagnostics_topic(self) -> Optional[str]:
        """Return the diagnostics topic read (/diagnostics_agg or /diagnostics), if any."""
        return self._diag_topic

    def _graphs_of(self, name: str):
        return [g for g in self.graphs.values() if in_namespace(name, g.ns)]

    def _on_output(self, topic: str, msg) -> None:
        g = self.graphs[topic]
        g.outputs += 1
        g.total_outputs += 1
        g.latencies.append(msg.capture_to_output_latency)
        g.last = msg

    def _on_embedding(self, topic: str, msg) -> None:
        for g in self._graphs_of(topic):
            g.inputs[msg.modality or namespace_of(topic).rsplit('/', 1)[-1]] += 1

    def _on_diagnostics(self, msg) -> None:
        per_node = defaultdict(lambda: [0, 0])
        for status in msg.status:
            if not status.hardware_id.startswith('/'):
                continue  # an aggregator's group header, or another package's device
            for kv in status.values:
                if kv.key in DROP_KEYS or kv.key in REJECT_KEYS:
                    try:
                        value = int(kv.value)
                    except ValueError:
                        continue
                    per_node[status.hardware_id][kv.key in REJECT_KEYS] += value
        # The fusion node's statuses hold per-modality keys ('audio.dropped'), none of these:
        # its own counts come with its outputs.
        for fqn, (drops, rejects) in per_node.items():
            for g in self._graphs_of(fqn):
                g.encoder_drops[fqn] = drops
                g.encoder_rejects[fqn] = rejects

    def print_lines(self) -> None:
        """Print one line per graph for the second just past."""
        now = time.monotonic()
        seconds = max(now - self._period_start, 1e-3)
        self._period_start = now
        if not self.graphs:
            print(f'waiting for a late_fusion_ros graph (a FusionOutput topic) in '
                  f'{self._ns}...', file=self._out, flush=True)
            return  # not a line of figures: --count counts those
        stamp = time.strftime('%H:%M:%S')
        for g in self.graphs.values():
            print(f'{stamp} {g.line(seconds)}', file=self._out, flush=True)
        self.lines += 1


def main(argv=None) -> int:
    """Print a line a second until Ctrl-C (or --count lines)."""
    from .bag_record import split_ros_args
    ours, ros_argv = split_ros_args(sys.argv if argv is None else ['fusion_monitor'] + argv)
    parser = argparse.ArgumentParser(
        prog='fusion_monitor', description=__doc__.strip().splitlines()[0].strip('`: '),
        epilog='ROS arguments go after --ros-args (e.g. -p use_sim_time:=true).')
    parser.add_argument('--namespace', default='/',
                        help='only graphs in this namespace (default: every graph)')
    parser.add_argument('--count', type=int, default=0,
                        help='stop after this many seconds of figures (default: at Ctrl-C)')
    args = parser.parse_args(ours)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=ros_argv, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a clean stop, as Ctrl-C
    node = rclpy.create_node('fusion_monitor')
    monitor = FusionMonitor(node, args.namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not (args.count and monitor.lines >= args.count):
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
