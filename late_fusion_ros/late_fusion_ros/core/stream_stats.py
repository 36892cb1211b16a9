# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Rate and losses of a stream of stamped frames, estimated from the stamps alone."""

from collections import deque
from typing import Optional

import numpy as np

# An interval this many times the usual frame period means frames went missing.
GAP_FACTOR = 1.5
# Stamps this many usual periods apart are a pause of the driver, not frames lost.
PAUSE_PERIODS = 30


class FrameStats:
    """
    Follow a camera stream's stamps: its frame rate and the frames lost before the node.

    A camera stamps frames at a steady period. An interval of k periods (k >= 1.5) means
    round(k) - 1 frames never arrived; a much longer interval is the driver pausing, and a
    stamp that goes back is a restarted clock (a bag loop, sim time): neither is a loss.
    This is the fallback where the middleware reports no message-lost events.
    """

    def __init__(self, window: int = 30):
        """Estimate the period as the median of the last `window` intervals."""
        self._periods = deque(maxlen=window)
        self.last: Optional[float] = None
        self.frames = 0
        self.missed = 0
        self.pauses = 0
        self.clock_jumps = 0

    @property
    def period(self) -> Optional[float]:
        """Return the usual frame period in seconds, once a few intervals are known."""
        return float(np.median(self._periods)) if len(self._periods) >= 3 else None

    @property
    def rate(self) -> float:
        """Return the frame rate in Hz (0 until known)."""
        period = self.period
        return 1.0 / period if period else 0.0

    def add(self, stamp: float) -> int:
        """Account for a frame stamped `stamp`; return how many frames before it were missed."""
        self.frames += 1
        last, self.last = self.last, stamp
        if last is None:
            return 0
        interval = stamp - last
        if interval < 0:
            self.clock_jumps += 1
            self._periods.clear()
            return 0
        period = self.period
        if interval == 0 or period is None or interval < GAP_FACTOR * period:
            if interval > 0:
                self._periods.append(interval)
            return 0
        if interval > PAUSE_PERIODS * period:
            self.pauses += 1
            return 0
        missed = int(round(interval / period)) - 1
        self.missed += missed
        return missed
