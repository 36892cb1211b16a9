# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
`bag_record`: record ROS 2 topics into a rosbag2 bag, for machines without `ros2 bag`.

    ros2 run late_fusion_ros bag_record -a -o demo_bag
    ros2 run late_fusion_ros bag_record /audio_stamped /audio_info /image
    ros2 run late_fusion_ros bag_record -e '/robot1/.*' -x '.*/compressed' -s sqlite3

Writes MCAP (or sqlite3 with -s) that `ros2 bag info/play` and Foxglove read: message
definitions from the installed packages, each topic's type hash and the QoS profiles its
publishers offered. Messages are taken serialized (no deserialization, as rosbag2 does) by
subscriptions whose reliability and durability follow the publishers (reliable only if
every publisher is, transient local only if every publisher is, like `ros2 bag record`),
stamped with the node clock at receipt (`--ros-args -p use_sim_time:=true` records on
/clock), and written by a separate thread so that disk writes never hold a callback up.
Ctrl-C (or --duration) closes the bag.
"""

import argparse
import os
import queue
import re
import signal
import sys
import threading
import time
from typing import List, Optional

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.topic_or_service_is_hidden import topic_or_service_is_hidden

from .bag_io import BagError, BagWriter, default_bag_name, message_class, STORAGES, typestore_for
from ..shared.adaptive_subscription import AdaptiveSubscription

# Reliability and durability adapt to the publishers; history is ours. A Python callback
# can stall for a few hundred milliseconds under load: 100 messages is ~2 s of 48 kHz audio
# in 1024-frame chunks or ~7 s of a 15 fps camera.
RECORD_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=100,
                        reliability=QoSReliabilityPolicy.BEST_EFFORT,
                        durability=QoSDurabilityPolicy.VOLATILE)


def split_ros_args(argv: List[str]):
    """
    Split a command line into (our arguments, rclpy's arguments).

    Only what lies between --ros-args and -- (or the end) is rclpy's. The rest must not
    reach rclpy.init: rcl would take a `from:=to` there (bag_play's --remap) for a
    deprecated global remapping rule.
    """
    ours, ros, inside = [], [], False
    for arg in argv[1:]:
        if arg == '--ros-args':
            inside = True
            ros.append(arg)
        elif inside and arg == '--':
            inside = False
        else:
            (ros if inside else ours).append(arg)
    return ours, argv[:1] + ros


class TopicSelection:
    """Which topics a bag tool takes: a list, a regular expression, or all, minus exclusions."""

    def __init__(self, topics: Optional[List[str]] = None, regex: str = '',
                 exclude: str = '', include_hidden: bool = False, all_topics: bool = False):
        """`regex`/`exclude` are searched in the name (re.search), as rosbag2 does."""
        self.topics = [t if t.startswith('/') else '/' + t for t in (topics or [])]
        try:
            self.regex = re.compile(regex) if regex else None
            self.exclude = re.compile(exclude) if exclude else None
        except re.error as err:
            raise ValueError(f'bad regular expression: {err}') from None
        self.include_hidden = include_hidden
        self.all = all_topics or (not self.topics and self.regex is None)

    def __call__(self, topic: str) -> bool:
        """Return True if `topic` is selected."""
        if self.exclude is not None and self.exclude.search(topic):
            return False
        if topic in self.topics:
            return True  # named explicitly: hidden or not
        if not self.include_hidden and topic_or_service_is_hidden(topic):
            return False
        if self.regex is not None and self.regex.search(topic):
            return True
        return self.all


class BagRecorder:
    """
    Record the topics `select` accepts into `writer`, discovering new ones every second.

    Usable inside any node (the bag_record executable is one such node). Per topic: one
    AdaptiveSubscription with raw=True; the bag topic is added when the first publisher is
    seen, with the QoS profiles the publishers offer. A topic with more than one type, or
    of a type not installed here, is skipped with a warning. Messages wait in a queue
    bounded by `max_queue_bytes` for the writer thread; beyond that they are dropped and
    counted (a full disk or a slow one must not grow memory without bound).
    """

    def __init__(self, node: Node, writer: BagWriter, select: TopicSelection,
                 max_queue_bytes: int = 512 * 1024 * 1024):
        """Start discovering, subscribing and writing."""
        self._node = node
        self._writer = writer
        self._select = select
        self._subs = {}
        self._types = {}
        self._skipped = set()
        self._queue = queue.Queue()
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._max_queue_bytes = max_queue_bytes
        self.dropped = 0
        self.lost: dict = {}  # topic -> messages the middleware reported lost
        self.error: Optional[str] = None
        self._thread = threading.Thread(target=self._write_loop, name='bag_writer', daemon=True)
        self._thread.start()
        # A steady timer: with use_sim_time and no /clock yet, ROS-time timers stand still.
        self._timer = node.create_timer(1.0, self.discover,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.discover()

    def discover(self) -> None:
        """Subscribe every selected topic not yet recorded."""
        for topic, types in self._node.get_topic_names_and_types():
            if topic in self._subs or topic in self._skipped or not self._select(topic):
                continue
            if len(types) != 1:
                self._skip(topic, f'has {len(types)} types ({", ".join(types)})')
                continue
            try:
                cls = message_class(types[0])
            except BagError as err:
                self._skip(topic, str(err))
                continue
            self._types[topic] = types[0]
            self._subs[topic] = AdaptiveSubscription(
                self._node, cls, topic, lambda data, t=topic: self._on_message(t, data),
                RECORD_QOS, adapt_durability=True, raw=True,
                on_lost=lambda count, t=topic: self._on_lost(t, count))
            self._node.get_logger().info(f'recording {topic} ({types[0]})')

    def _on_lost(self, topic: str, count: int) -> None:
        # The middleware reports samples that never reached this subscription: a reliable
        # publisher with a shallow history overwrites what a busy reader has not taken yet.
        if not self.lost:
            self._node.get_logger().warn(
                f'{topic}: {count} message(s) lost before they reached the recorder '
                '(counted in the summary)')
        self.lost[topic] = self.lost.get(topic, 0) + count

    def _skip(self, topic: str, why: str) -> None:
        self._skipped.add(topic)
        self._node.get_logger().warn(f'not recording {topic}: {why}')

    def _add_topic(self, topic: str) -> bool:
        """Add `topic` to the bag with its publishers' offered QoS; False if it cannot be."""
        sub = self._subs[topic]
        infos = self._node.get_publishers_info_by_topic(topic) or sub.offered
        msgtype = self._types[topic]
        try:
            store = typestore_for([msgtype])
            announced = {str(i.topic_type_hash) for i in infos}
            local = store.hash_rihs01(msgtype)
            if announced and announced != {local}:
                self._node.get_logger().warn(
                    f'{topic}: the publishers announce type hash {", ".join(announced)} but '
                    f'the installed definition of {msgtype} hashes to {local}: the bag '
                    'embeds the installed definition')
            self._writer.add_topic(topic, msgtype, [i.qos_profile for i in infos], store)
            return True
        except BagError as err:
            self._skip(topic, str(err))  # its messages are ignored from now on
            return False

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp = self._node.get_clock().now().nanoseconds
        with self._bytes_lock:
            full = self._queued_bytes + len(data) > self._max_queue_bytes
            if not full:
                self._queued_bytes += len(data)
        if full:
            self.dropped += 1
            if self.dropped == 1:
                self._node.get_logger().warn('the disk cannot keep up: dropping messages '
                                             '(counted in the summary)')
            return
        self._queue.put((topic, stamp, data))

    def _write_loop(self) -> None:
        # This thread alone touches the bag, from the first topic to closing it (an sqlite3
        # connection must stay in the thread that opened it).
        while (item := self._queue.get()) is not None:
            topic, stamp, data = item
            with self._bytes_lock:
                self._queued_bytes -= len(data)
            if self.error is not None or topic in self._skipped:
                continue
            try:
                if not self._writer.has_topic(topic) and not self._add_topic(topic):
                    continue
                self._writer.write(topic, stamp, data)
            except Exception as err:  # noqa: BLE001 - a disk error must not kill the node
                self.error = str(err)
                self._node.get_logger().error(f'recording stopped: {err}')
        try:
            self._writer.close()
        except BagError as err:
            self.error = str(err)
            self._node.get_logger().error(str(err))

    def close(self) -> dict:
        """Stop taking messages, write what is queued, close the bag; return the counts."""
        for sub in self._subs.values():
            if sub.subscription is not None:
                self._node.destroy_subscription(sub.subscription)
                sub.subscription = None
        self._node.destroy_timer(self._timer)
        self._queue.put(None)
        self._thread.join()
        return dict(self._writer.counts)


class BagRecordNode(Node):
    """The bag_record executable's node: a BagRecorder, stopped by Ctrl-C or --duration."""

    def __init__(self, args: argparse.Namespace, writer: BagWriter):
        """Start recording; after `args.duration` seconds (if > 0) stop as Ctrl-C would."""
        super().__init__('bag_record')
        self._writer = writer
        self._started = time.monotonic()
        self.recorder = BagRecorder(self, writer, args.selection)
        if args.duration > 0:
            self._stop_timer = self.create_timer(
                args.duration, lambda: os.kill(os.getpid(), signal.SIGINT),
                clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'recording to {writer.path} (Ctrl-C stops)')

    def close(self) -> None:
        """Close the bag and print what was recorded (called before destroy_node)."""
        counts = self.recorder.close()
        seconds = time.monotonic() - self._started
        size = sum(f.stat().st_size for f in self._writer.path.iterdir())
        lost = self.recorder.lost
        lines = [f'  {topic}: {count}' + (f' ({lost[topic]} lost)' if lost.get(topic) else '')
                 for topic, count in sorted(counts.items())]
        dropped = f', {self.recorder.dropped} dropped' if self.recorder.dropped else ''
        print(f'recorded {sum(counts.values())} messages on {len(counts)} topics in '
              f'{seconds:.1f} s{dropped}: {self._writer.path} ({size / 1e6:.1f} MB)',
              *lines, sep='\n', flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (shared with the demo's help text)."""
    parser = argparse.ArgumentParser(
        prog='bag_record', description=__doc__.strip().splitlines()[0].strip('`: '),
        epilog='ROS arguments go after --ros-args (e.g. -p use_sim_time:=true).')
    parser.add_argument('topics', nargs='*', help='topics to record (default with -a: all)')
    parser.add_argument('-a', '--all', action='store_true',
                        help='record every topic (the default when no topic or -e is given)')
    parser.add_argument('-e', '--regex', default='',
                        help='record topics whose name matches this regular expression')
    parser.add_argument('-x', '--exclude', default='',
                        help='never record topics whose name matches this regular expression')
    parser.add_argument('--include-hidden-topics', action='store_true',
                        help='also record hidden topics (a name part starting with _)')
    parser.add_argument('-o', '--output', default=None,
                        help='bag directory to create (default: rosbag2_<date>-<time>)')
    parser.add_argument('-s', '--storage', choices=STORAGES, default='mcap',
                        help='storage format (default mcap)')
    parser.add_argument('--compress', action='store_true',
                        help='zstd: MCAP chunk compression, sqlite3 message compression')
    parser.add_argument('-d', '--duration', type=float, default=0.0,
                        help='stop after this many seconds (default: at Ctrl-C)')
    return parser


def main(argv=None) -> int:
    """Record until Ctrl-C or --duration."""
    from ..shared.lifecycle import spin_node
    ours, ros_argv = split_ros_args(sys.argv if argv is None else argv)
    args = build_parser().parse_args(ours)
    try:
        args.selection = TopicSelection(args.topics, args.regex, args.exclude,
                                        args.include_hidden_topics, args.all)
        writer = BagWriter(args.output or default_bag_name(), args.storage, args.compress)
    except (BagError, ValueError) as err:
        print(f'bag_record: {err}', file=sys.stderr)
        return 1

    def bag_record():
        return BagRecordNode(args, writer)
    spin_node(bag_record, ros_argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
