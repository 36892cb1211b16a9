# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Approximate time matching, the 'sync' baseline the asynchronous policy is compared with."""

import itertools
from typing import Any, Dict, List, Optional, Tuple


class ApproximateSync:
    """
    Same matching rule as message_filters.ApproximateTimeSynchronizer (ROS 2, Python).

    Each queue keeps at most `queue_size` items keyed by stamp (a new item with an equal
    stamp replaces the old one; the oldest is evicted). An added item is the pivot: for every
    other queue the candidates within `slop` of the pivot are tried nearest first, and the
    first combination whose stamps span less than `slop` is emitted and removed from the
    queues; older unmatched items stay until evicted.
    """

    def __init__(self, n_queues: int, queue_size: int, slop: float):
        """Create `n_queues` empty queues of `queue_size` items; `slop` in seconds."""
        if n_queues < 1 or queue_size < 1 or not slop >= 0.0:
            raise ValueError('need n_queues >= 1, queue_size >= 1 and slop >= 0')
        self.queue_size = queue_size
        # Stamps are compared in integer nanoseconds, as in ROS, so keys are exact.
        self._slop = int(round(slop * 1e9))
        self._queues: List[Dict[int, Tuple[float, Any]]] = [{} for _ in range(n_queues)]

    def add(self, i: int, stamp: float, item: Any) -> Optional[tuple]:
        """Queue `item` on queue `i`; return one item per queue when a set matches, else None."""
        key = int(round(stamp * 1e9))
        mine = self._queues[i]
        mine[key] = (stamp, item)
        while len(mine) > self.queue_size:
            del mine[min(mine)]
        candidates = []
        for j, queue in enumerate(self._queues):
            if j == i:
                candidates.append([key])
                continue
            near = sorted((abs(k - key), k) for k in queue if abs(k - key) <= self._slop)
            if not near:
                return None
            candidates.append([k for _, k in near])
        for keys in itertools.product(*candidates):
            if max(keys) - min(keys) < self._slop and all(
                    k in q for q, k in zip(self._queues, keys)):
                return tuple(q.pop(k)[1] for q, k in zip(self._queues, keys))
        return None

    def clear(self) -> None:
        """Drop everything queued."""
        for queue in self._queues:
            queue.clear()
