# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
r"""
`bag_play`: publish a rosbag2 bag's topics with their recorded timing, without `ros2 bag`.

    ros2 run late_fusion_ros bag_play demo_bag --clock 100
    ros2 run late_fusion_ros bag_play run.mcap --topics /audio_stamped /image \
        --remap /image:=/camera/image_raw -r 0.5 --start-offset 10 --loop

Any rosbag2 bag: a directory (metadata.yaml) or a bare .mcap/.db3 file, written by
`ros2 bag record` (MCAP or sqlite3, with or without embedded definitions) or by bag_record.
Messages are published as recorded, serialized (no deserialization), at their receipt
times scaled by --rate, each topic with the QoS its recorded publishers offered (as
`ros2 bag play` chooses it: the recorded reliability and durability when all publishers
agreed, rosbag2's default otherwise; a deeper history than rosbag2's 10). A latched
(transient local) message is acknowledged by the subscribers before the next message is
published. With --clock, /clock carries the bag's time, so nodes started with
use_sim_time:=true run on it. A topic of a type that is not installed here is skipped
with a warning.
"""

import argparse
import os
import signal
import sys
import threading
import time
from typing import Dict, List, Optional

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

from .bag_io import BagError, BagReader, message_class
from .bag_record import split_ros_args, TopicSelection

# rosbag2 offers keep-last 10. A Python player that fell behind publishes a burst to catch
# up, and a reliable writer overwrites samples a reader has not acknowledged yet beyond its
# history (Fast DDS then reports them lost): 100 covers two seconds of 48 kHz audio chunks.
DEFAULT_DEPTH = 100
# A latched (transient local) message is acknowledged by the subscribers before the next
# message goes out, at most this long (the playback pauses meanwhile): configuration topics
# such as AudioInfo reach the nodes before the data that follows them, as when the driver
# published them.
LATCHED_ACK_TIMEOUT = 0.5
# At the end, the last messages are acknowledged before the player leaves, at most this
# long: a subscriber still completing discovery would otherwise never get them.
FINAL_ACK_TIMEOUT = 2.0


def playback_qos(recorded: list) -> QoSProfile:
    """
    Return the QoS to publish a topic with, from its recorded offered profiles.

    As rosbag2's Player (Rosbag2QoS::adapt_offer_to_recorded_offers): when every recorded
    publisher offered the same reliability and durability, offer those (a latched AudioInfo
    stays transient local, a best-effort camera stays best effort); otherwise, or with no
    profile recorded, rmw's default (reliable, volatile). History is keep-last
    DEFAULT_DEPTH: publishers' history is not visible on the wire, so bags record it as
    unknown.
    """
    qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=DEFAULT_DEPTH,
                     reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.VOLATILE)
    pairs = {(q.reliability.value, q.durability.value) for q in recorded}  # rosbags enums
    if len(pairs) == 1:
        reliability, durability = pairs.pop()
        if reliability in (QoSReliabilityPolicy.RELIABLE, QoSReliabilityPolicy.BEST_EFFORT):
            qos.reliability = QoSReliabilityPolicy(reliability)
        if durability in (QoSDurabilityPolicy.VOLATILE, QoSDurabilityPolicy.TRANSIENT_LOCAL):
            qos.durability = QoSDurabilityPolicy(durability)
    return qos


def parse_remaps(remaps: List[str]) -> Dict[str, str]:
    """Parse 'from:=to' pairs (topic names, '/' prepended when missing)."""
    out = {}
    for remap in remaps:
        if ':=' not in remap:
            raise ValueError(f"--remap takes 'from:=to', got {remap!r}")
        src, dst = remap.split(':=', 1)
        if not src or not dst:
            raise ValueError(f"--remap takes 'from:=to', got {remap!r}")
        out['/' + src.lstrip('/')] = '/' + dst.lstrip('/')
    return out


class BagPlayer:
    """
    Publish a bag in a thread, message by message at its recorded time scaled by `rate`.

    Bag time t maps to wall time start + (t - first) / rate on a monotonic clock; /clock
    (when `clock_hz` > 0) publishes the bag time the playback is at, every 1 / clock_hz
    seconds of wall time and right before each message, so a subscriber on sim time never
    sees a message from its future. With `loop` the bag starts over (and /clock jumps back,
    which the fusion node treats as a reset). `done` is set when playback ends.
    """

    def __init__(self, node: Node, reader: BagReader, topics: Dict[str, str],
                 remaps: Dict[str, str], rate: float = 1.0, start_offset: float = 0.0,
                 loop: bool = False, clock_hz: float = 0.0):
        """Create the publishers; `topics` maps the bag topics to play to their types."""
        if not rate > 0:
            raise ValueError(f'--rate must be > 0, got {rate}')
        self._node = node
        self._reader = reader
        self._rate = rate
        self._loop = loop
        self._clock_period = 1.0 / clock_hz if clock_hz > 0 else None
        self._first = reader.start_ns + int(max(0.0, start_offset) * 1e9)
        self._pubs = {}
        self.counts = {}
        for topic, msgtype in topics.items():
            qos = playback_qos(reader.offered_qos(topic))
            out = remaps.get(topic, topic)
            self._pubs[topic] = node.create_publisher(message_class(msgtype), out, qos)
            self.counts[out] = 0
        self._clock_pub = None
        self._last_clock = 0
        if self._clock_period is not None:
            from rosgraph_msgs.msg import Clock
            self._clock_type = Clock
            self._clock_pub = node.create_publisher(Clock, '/clock', 10)
        self.late = 0  # messages published more than 10 ms after their time
        self.error: Optional[str] = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    @property
    def publishers(self):
        """Return {bag topic: rclpy Publisher}."""
        return dict(self._pubs)

    def wait_for_subscribers(self, timeout: float, settle: float = 0.5) -> List[str]:
        """
        Wait until every played topic has a subscriber; return those still without.

        A publisher sees a subscription before the subscription has seen the publisher
        (discovery completes on each side on its own), and what is published meanwhile
        reaches it late; `settle` seconds more let the subscribers' side catch up.
        """
        end = time.monotonic() + timeout
        while True:
            missing = [p.topic_name for p in self._pubs.values()
                       if not p.get_subscription_count()]
            if not missing:
                self._stop.wait(settle)
                return missing
            if time.monotonic() >= end or self._stop.is_set():
                return missing
            time.sleep(0.05)

    def start(self, delay: float = 0.0) -> None:
        """Start playing after `delay` seconds (during which /clock shows the start time)."""
        self._thread = threading.Thread(target=self._run, args=(delay,), name='bag_play',
                                        daemon=True)
        self._thread.start()

    def _publish_clock(self, bag_ns: int, restart: bool = False) -> None:
        """Publish /clock at `bag_ns`; it never goes back within one pass of the bag."""
        if self._clock_pub is not None:
            bag_ns = int(bag_ns) if restart else max(int(bag_ns), self._last_clock)
            self._last_clock = bag_ns
            msg = self._clock_type()
            msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 1_000_000_000)
            self._clock_pub.publish(msg)

    def _wait_until(self, wall: float, bag_ns_at) -> bool:
        """Sleep until monotonic `wall`, ticking /clock; False when stopped."""
        while True:
            now = time.monotonic()
            if now >= wall:
                return not self._stop.is_set()
            step = wall - now
            if self._clock_period is not None:
                step = min(step, self._clock_period)
            if self._stop.wait(step):
                return False
            if self._clock_period is not None:
                self._publish_clock(bag_ns_at(time.monotonic()))

    def _run(self, delay: float) -> None:
        try:
            first = self._first
            start = time.monotonic()
            self._publish_clock(first)
            if not self._wait_until(start + delay, lambda _: first):
                return
            while not self._stop.is_set():
                clock = {'start': time.monotonic()}  # shifted by the pauses for latched acks
                self._publish_clock(first, restart=True)  # a loop starts the clock over

                def bag_ns_at(wall: float) -> int:
                    return first + int((wall - clock['start']) * self._rate * 1e9)
                for topic, _, stamp, data in self._reader.messages(self._pubs, first):
                    due = clock['start'] + (stamp - first) * 1e-9 / self._rate
                    if not self._wait_until(due, bag_ns_at):
                        return
                    if time.monotonic() - due > 0.01:
                        self.late += 1
                    self._publish_clock(stamp)
                    pub = self._pubs[topic]
                    pub.publish(data)  # serialized CDR, published as is
                    self.counts[pub.topic_name] += 1
                    if pub.qos_profile.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL and \
                            pub.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE:
                        paused = time.monotonic()
                        pub.wait_for_all_acked(Duration(seconds=LATCHED_ACK_TIMEOUT))
                        clock['start'] += time.monotonic() - paused
                if not self._loop:
                    break
            deadline = time.monotonic() + FINAL_ACK_TIMEOUT
            for pub in self._pubs.values():
                if pub.qos_profile.reliability == QoSReliabilityPolicy.RELIABLE:
                    left = max(0.0, deadline - time.monotonic())
                    pub.wait_for_all_acked(Duration(seconds=left))
        except BagError as err:
            self.error = str(err)
        except Exception as err:  # noqa: BLE001 - e.g. rclpy's RCLError on a write timeout
            self.error = f'{type(err).__name__}: {err}'
        finally:
            self.done.set()

    def stop(self) -> None:
        """Stop playing and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class BagPlayNode(Node):
    """The bag_play executable's node: plays, then stops as Ctrl-C would."""

    def __init__(self, args: argparse.Namespace, reader: BagReader, topics: Dict[str, str]):
        """Create the player, optionally wait for subscribers, and start."""
        super().__init__('bag_play')
        self._reader = reader
        self._started = time.monotonic()
        self.player = BagPlayer(self, reader, topics, args.remaps, args.rate,
                                args.start_offset, args.loop, args.clock)
        self._waiter = threading.Thread(target=self._play, args=(args,), daemon=True)
        self._waiter.start()

    def _play(self, args) -> None:
        if args.wait_for_subscribers > 0:
            missing = self.player.wait_for_subscribers(args.wait_for_subscribers)
            if missing:
                self.get_logger().warn(f'no subscriber after {args.wait_for_subscribers:g} s '
                                       f'on {", ".join(missing)}: playing anyway')
        self.get_logger().info(f'playing {self._reader.path} at rate {args.rate:g}'
                               f"{' with /clock' if args.clock else ''}")
        self.player.start(args.delay)
        self.player.done.wait()
        os.kill(os.getpid(), signal.SIGINT)  # end the process as Ctrl-C does

    def close(self) -> None:
        """Stop playing and print what was published (called before destroy_node)."""
        self.player.stop()
        self._reader.close()
        counts = self.player.counts
        lines = [f'  {topic}: {count}' for topic, count in sorted(counts.items())]
        late = f', {self.player.late} more than 10 ms late' if self.player.late else ''
        print(f'published {sum(counts.values())} messages in '
              f'{time.monotonic() - self._started:.1f} s{late}', *lines, sep='\n', flush=True)
        if self.player.error:
            print(f'bag_play: {self.player.error}', file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog='bag_play', description=__doc__.strip().splitlines()[0].strip('`: '),
        epilog='ROS arguments go after --ros-args.')
    parser.add_argument('bag', help='bag directory, or a .mcap/.db3 file')
    parser.add_argument('--topics', nargs='+', default=[], help='play only these topics')
    parser.add_argument('-e', '--regex', default='',
                        help='play only topics whose name matches this regular expression')
    parser.add_argument('-x', '--exclude', default='',
                        help='never play topics whose name matches this regular expression')
    parser.add_argument('-m', '--remap', nargs='+', default=[], metavar='FROM:=TO',
                        help='publish topic FROM of the bag on TO')
    parser.add_argument('-r', '--rate', type=float, default=1.0,
                        help='playback speed factor (default 1)')
    parser.add_argument('--start-offset', type=float, default=0.0,
                        help='start this many seconds into the bag')
    parser.add_argument('-l', '--loop', action='store_true', help='play the bag in a loop')
    parser.add_argument('--clock', type=float, nargs='?', const=40.0, default=0.0,
                        metavar='HZ', help='publish /clock with the bag time (default 40 Hz, '
                        'as ros2 bag play); nodes then run with use_sim_time:=true')
    parser.add_argument('-d', '--delay', type=float, default=0.0,
                        help='seconds to wait before playing')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='first wait (at most this long) until every played topic has a '
                        'subscriber, so that nodes that just started miss nothing')
    parser.add_argument('--default-dds', action='store_true',
                        help="keep Fast DDS's default configuration instead of "
                        'config/fastdds_large_frames.xml (a 32 MiB shared-memory segment, so '
                        'that audio published beside camera frames is not delayed; not '
                        'loaded anyway when FASTDDS_DEFAULT_PROFILES_FILE, '
                        'FASTRTPS_DEFAULT_PROFILES_FILE or FASTDDS_BUILTIN_TRANSPORTS is set)')
    return parser


def main(argv=None) -> int:
    """Play a bag once (or in a loop until Ctrl-C)."""
    from ..bringup.dds import use_large_frames_profile
    from ..shared.lifecycle import spin_node
    ours, ros_argv = split_ros_args(sys.argv if argv is None else argv)
    args = build_parser().parse_args(ours)
    try:
        args.remaps = parse_remaps(args.remap)
        select = TopicSelection(args.topics, args.regex, args.exclude, include_hidden=True)
        if args.rate <= 0:
            raise ValueError(f'--rate must be > 0, got {args.rate}')
        reader = BagReader(args.bag)
    except (BagError, ValueError) as err:
        print(f'bag_play: {err}', file=sys.stderr)
        return 1
    topics = {}
    for topic, msgtype in sorted(reader.topics.items()):
        if not select(topic):
            continue
        try:
            message_class(msgtype)
            topics[topic] = msgtype
        except BagError as err:
            print(f'bag_play: skipping {topic}: {err}', file=sys.stderr)
    if not topics:
        print(f'bag_play: nothing to play in {args.bag} (topics: '
              f'{", ".join(sorted(reader.topics)) or "none"})', file=sys.stderr)
        reader.close()
        return 1

    nodes = []

    def bag_play():
        nodes.append(BagPlayNode(args, reader, topics))
        return nodes[-1]
    if not args.default_dds:
        # Camera frames and audio from one participant: without a larger shared-memory
        # segment Fast DDS delays the audio behind the frames (bringup/dds.py).
        use_large_frames_profile()
    spin_node(bag_play, ros_argv)
    return 1 if not nodes or nodes[0].player.error else 0


if __name__ == '__main__':
    sys.exit(main())
