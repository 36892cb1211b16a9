# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
How far another host's clock is from ours, judged from the stamps its messages carry.

An encoder on another computer stamps its Embeddings with its sensor's capture time and
says how long it took to publish (`capture_to_publish_latency`, both on its own clock).
On arrival, `age = now - stamp` (our clock) is that latency, plus the time on the wire,
plus the offset between the two clocks. So `age - capture_to_publish_latency` is the
offset plus the transport time, which is small and never negative: its low percentile
over recent arrivals estimates the offset (positive: the publisher's clock is behind ours;
negative: ahead, its stamps lie in our future). Nothing here imports ROS.
"""

from collections import deque
from typing import Optional

import numpy as np


class ClockOffsetEstimator:
    """
    Estimate a publisher's clock offset from (age on arrival, its own latency) pairs.

    `window` recent arrivals are kept; the estimate is their `percentile`-th percentile
    (low: transport delays only ever add). An encoder that does not fill in its latency
    (0) still reveals a clock that is ahead (ages below zero), but an age that is merely
    large then may be its processing time, so `behind` is only concluded from arrivals
    that carry their latency.
    """

    def __init__(self, window: int = 64, percentile: float = 10.0, min_samples: int = 8):
        """Keep `window` arrivals; judge once `min_samples` are in."""
        self._values = deque(maxlen=window)
        self._known = deque(maxlen=window)
        self._percentile = percentile
        self._min_samples = min_samples

    def add(self, age: float, publish_latency: float) -> None:
        """Record one arrival: its age on our clock and its capture-to-publish latency."""
        known = publish_latency > 0.0
        self._values.append(age - (publish_latency if known else 0.0))
        self._known.append(known)

    def clear(self) -> None:
        """Forget every arrival (the publisher restarted, our clock jumped)."""
        self._values.clear()
        self._known.clear()

    def estimate(self) -> Optional[float]:
        """Return the offset (s; + behind ours, - ahead), or None with too few arrivals."""
        if len(self._values) < self._min_samples:
            return None
        return float(np.percentile(np.fromiter(self._values, float), self._percentile))

    def judge(self, tolerance: float) -> Optional[float]:
        """
        Return the offset when it exceeds `tolerance` (s) either way, else None.

        Ahead is concluded from any arrivals; behind only when most arrivals carry their
        publish latency (otherwise a slow encoder would look like a late clock).
        """
        offset = self.estimate()
        if offset is None or abs(offset) <= tolerance:
            return None
        if offset > 0.0 and sum(self._known) * 2 < len(self._known):
            return None
        return offset
