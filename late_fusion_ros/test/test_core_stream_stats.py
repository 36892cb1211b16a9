# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Frame rate and losses of a camera stream estimated from its stamps; QoS adaptation rule."""

from late_fusion_ros.core.stream_stats import FrameStats
import numpy as np
import pytest


def test_rate_and_missed_frames_from_stamps():
    """30 fps with 2 frames missing once and 1 once: 3 missed, rate 30 Hz."""
    rng = np.random.default_rng(1)
    stamps = [k / 30 + rng.normal(0, 0.001) for k in range(100) if k not in (40, 41, 70)]
    stats = FrameStats()
    missed = [stats.add(t) for t in stamps]
    assert stats.missed == 3 and sum(missed) == 3
    assert stats.rate == pytest.approx(30.0, rel=0.05)
    assert stats.frames == 97


def test_pauses_and_clock_jumps_are_not_losses():
    """A driver pausing for seconds, or stamps going back (bag loop), loses nothing."""
    stats = FrameStats()
    for k in range(10):
        stats.add(k * 0.1)
    stats.add(30.0)          # 29 s pause
    stats.add(30.1)
    stats.add(2.0)           # the clock went back
    stats.add(2.1)
    assert stats.missed == 0 and stats.pauses == 1 and stats.clock_jumps == 1


def test_adapted_policy_follows_every_publisher():
    """Reliable / transient local only when every publisher offers it; a pin wins."""
    rclpy_qos = pytest.importorskip('rclpy.qos')
    from late_fusion_ros.shared.adaptive_subscription import adapted_policy
    rel, be = rclpy_qos.QoSReliabilityPolicy.RELIABLE, rclpy_qos.QoSReliabilityPolicy.BEST_EFFORT
    assert adapted_policy('reliability', [rel, rel]) == rel
    assert adapted_policy('reliability', [rel, be]) == be
    assert adapted_policy('reliability', []) == be
    assert adapted_policy('reliability', [rel], pinned=be) == be
    tl = rclpy_qos.QoSDurabilityPolicy.TRANSIENT_LOCAL
    vol = rclpy_qos.QoSDurabilityPolicy.VOLATILE
    assert adapted_policy('durability', [tl]) == tl
    assert adapted_policy('durability', [tl, vol]) == vol
