# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""A subscription whose reliability and durability follow the publishers on its topic."""

import copy
import os
from typing import Callable, Optional

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSPolicyKind, QoSProfile, QoSReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions


def discovery_server_client() -> bool:
    """Return True when this process discovers through a Fast DDS discovery server."""
    return bool(os.environ.get('ROS_DISCOVERY_SERVER', '').strip())


# The policies that adapt, with the value each takes when every publisher offers it and
# the value that matches any publisher otherwise.
_ADAPTED = {
    'reliability': (QoSReliabilityPolicy, QoSReliabilityPolicy.RELIABLE,
                    QoSReliabilityPolicy.BEST_EFFORT),
    'durability': (QoSDurabilityPolicy, QoSDurabilityPolicy.TRANSIENT_LOCAL,
                   QoSDurabilityPolicy.VOLATILE),
}


def adapted_policy(name: str, offered, pinned=None):
    """
    Return the `name` policy ('reliability' or 'durability') a subscription should request.

    `offered` lists the publishers' values of that policy. As `ros2 bag record` does: the
    stronger value (reliable, transient local) only when every publisher offers it, since
    it would not match a weaker publisher; the weaker one otherwise. `pinned` (the user's
    override) wins.
    """
    _, strong, weak = _ADAPTED[name]
    if pinned is not None:
        return pinned
    return strong if offered and all(v == strong for v in offered) else weak


def qos_name(policy) -> str:
    """Return a QoS policy value as rclpy's parameters spell it, e.g. 'best_effort'."""
    return policy.name.lower()


class AdaptiveSubscription:
    """
    Subscribe with a QoS that matches whatever the publishers on the topic offer.

    A sensor subscription has to guess the driver's QoS, and both guesses fail: best effort
    makes every connection best effort, and Fast DDS then loses most camera frames above
    ~0.5 MB (measured: 33 % of 640x480 rgb8 frames and 1.3 % of 1280x720 arrived from a
    reliable driver); reliable matches no best-effort driver at all. Like `ros2 bag record`,
    this class looks at the publishers first: reliable when every publisher is reliable,
    transient local (with `adapt_durability`, for latched topics such as AudioInfo) when
    every publisher is, and the weaker policy otherwise. It subscribes once the first
    publisher appears and re-creates the subscription when the publishers change so that
    the adapted QoS changes (a driver restarted with another QoS), so no publisher is
    ever refused and no incompatible-QoS warning is logged on either side.

    Overrides still win: `qos_overrides.<topic>.subscription.reliability` and `.durability`
    (declared here, '' by default, read-only) pin a policy; `.history` and `.depth` are
    rclpy's usual QoSOverridingOptions. `on_lost(count)` receives the middleware's
    message-lost events where the RMW reports them (`lost_events` says whether it does).
    With `raw` the callback receives the serialized message (bytes), as a recorder wants.

    The parameters are declared at construction; `start()` begins watching the topic (and
    subscribes once a publisher appears) and `stop()` destroys the subscription and its
    timer, so a lifecycle node stops all intake while inactive. `start` (default True)
    starts at once.
    """

    def __init__(self, node: Node, msg_type, topic: str, callback: Callable, qos: QoSProfile,
                 *, adapt_durability: bool = False, check_period: float = 0.5,
                 on_lost: Optional[Callable[[int], None]] = None, callback_group=None,
                 raw: bool = False, start: bool = True):
        """Declare the override parameters; with `start`, subscribe once a publisher exists."""
        self._node = node
        self.msg_type = msg_type
        self._raw = raw
        self.topic = node.resolve_topic_name(topic)
        self._callback = callback
        self._base = qos
        self._adapt_durability = adapt_durability
        self._on_lost = on_lost
        self._group = callback_group
        self._pins = {}
        for policy, (enum, _, _) in _ADAPTED.items():
            name = f'qos_overrides.{self.topic}.subscription.{policy}'
            choices = ', '.join(qos_name(v) for v in _ADAPTED[policy][1:])
            # '' rather than an uninitialised parameter: one of those makes the node's
            # get_parameters service answer nothing at all (`ros2 param dump` prints {}).
            value = node.declare_parameter(name, '', ParameterDescriptor(
                description=f'{policy} of the subscription to {self.topic} ({choices}); '
                            "'' (default): adapted to the publishers found on the topic",
                read_only=True)).value
            if value:
                try:
                    self._pins[policy] = enum[value.upper()]
                except KeyError:
                    raise ValueError(f'{name}: {value!r} is not one of {choices}') from None
        # History and depth are rclpy's QoSOverridingOptions, declared by create_subscription;
        # declared here already (rclpy then reads them back) so that they are listable and
        # settable from the start, before any publisher appears.
        for policy, value in (('history', qos_name(qos.history)), ('depth', qos.depth)):
            name = f'qos_overrides.{self.topic}.subscription.{policy}'
            node.declare_parameter(name, value, ParameterDescriptor(
                description=f'{policy} for subscription `{self.topic}` with id `None`',
                read_only=True))
        self.subscription = None
        self.qos: Optional[QoSProfile] = None
        self.publishers = 0
        self.offered = []  # TopicEndpointInfo of the publishers last seen (a bag records them)
        self.lost_events = on_lost is not None
        self.resubscriptions = 0
        self.incompatible = 0  # publishers that offered a QoS this subscription refused
        self._check_period = check_period
        self._timer = None
        if start:
            self.start()

    def start(self) -> None:
        """Watch the topic's publishers and subscribe as soon as one exists."""
        if self._timer is not None:
            return
        # A steady clock: with use_sim_time and no /clock yet, ROS-time timers stand still.
        self._timer = self._node.create_timer(self._check_period, self.check,
                                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.check()

    def stop(self) -> None:
        """Destroy the subscription and stop watching: nothing more is received."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None
        self.qos = None

    @property
    def started(self) -> bool:
        """Return True between start() and stop()."""
        return self._timer is not None

    def check(self) -> None:
        """Look at the publishers; (re)subscribe if the adapted QoS differs from the current."""
        if self._timer is None:
            return  # stopped: a late incompatible-QoS event must not subscribe again
        infos = self._node.get_publishers_info_by_topic(self.topic)
        self.publishers = len(infos)
        if not infos:
            if self.subscription is None and discovery_server_client():
                self._subscribe_blind()
            return  # keep the current subscription while a driver restarts
        self.offered = infos
        policies = {
            'reliability': adapted_policy('reliability',
                                          [i.qos_profile.reliability for i in infos],
                                          self._pins.get('reliability')),
            'durability': adapted_policy(
                'durability',
                [i.qos_profile.durability for i in infos] if self._adapt_durability else [],
                self._pins.get('durability')),
        }
        if self.qos is not None and all(
                getattr(self.qos, k) == v for k, v in policies.items()):
            return
        qos = copy.copy(self._base)
        qos.reliability, qos.durability = policies['reliability'], policies['durability']
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.resubscriptions += 1
        self.subscription = self._subscribe(qos)
        self.qos = self.subscription.qos_profile
        self._node.get_logger().info(
            f"'{self.topic}': subscribed {self.describe()} (publishers offer "
            f"{', '.join(sorted({qos_name(i.qos_profile.reliability) for i in infos}))})")

    def _subscribe_blind(self) -> None:
        """
        Subscribe with the weaker policies, matching any publisher, before seeing one.

        A client of a Fast DDS discovery server (ROS_DISCOVERY_SERVER, for networks without
        multicast) learns only about topics it has endpoints on: waiting to see the driver's
        publisher before subscribing would wait forever. Best effort and volatile match every
        publisher; once the publishers are known (within check_period) the subscription
        adapts. Elsewhere this is not done: a best-effort start would lose the first large
        frames of a reliable camera.
        """
        qos = copy.copy(self._base)
        qos.reliability = self._pins.get('reliability', QoSReliabilityPolicy.BEST_EFFORT)
        qos.durability = self._pins.get('durability', QoSDurabilityPolicy.VOLATILE)
        self.subscription = self._subscribe(qos)
        self.qos = self.subscription.qos_profile
        self._node.get_logger().info(
            f"'{self.topic}': subscribed {self.describe()} before seeing a publisher, so that "
            'the discovery server (ROS_DISCOVERY_SERVER) announces the topic; adapting once a '
            'publisher appears')

    def _subscribe(self, qos: QoSProfile):
        overrides = QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH])
        events = {'incompatible_qos': self._on_incompatible}
        if self.lost_events:
            events['message_lost'] = lambda info: self._on_lost(info.total_count_change)
        try:
            return self._node.create_subscription(
                self.msg_type, self.topic, self._callback, qos,
                qos_overriding_options=overrides,
                event_callbacks=SubscriptionEventCallbacks(**events),
                callback_group=self._group, raw=self._raw)
        except UnsupportedEventTypeError:
            # This RMW has no message-lost event: the caller falls back to stamp gaps.
            self.lost_events = False
            return self._subscribe(qos)

    def _on_incompatible(self, event) -> None:
        self.incompatible += 1
        if self._pins:
            self._node.get_logger().error(
                f"'{self.topic}': a publisher offers a QoS incompatible with the pinned "
                f'qos_overrides ({", ".join(f"{k}: {qos_name(v)}" for k, v in self._pins.items())}'
                '); unset them to let the subscription adapt', throttle_duration_sec=10.0)
        else:
            self.check()  # a new publisher with a weaker QoS: adapt at once

    def describe(self) -> str:
        """Return the subscription's QoS in words, e.g. 'reliable volatile depth 5'."""
        if self.qos is None:
            return 'waiting for a publisher'
        pinned = f" (pinned: {', '.join(sorted(self._pins))})" if self._pins else ''
        return (f'{qos_name(self.qos.reliability)} {qos_name(self.qos.durability)} '
                f'depth {self.qos.depth}{pinned}')
