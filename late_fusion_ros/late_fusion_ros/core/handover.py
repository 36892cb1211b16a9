# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""A bounded hand-over between a subscription callback and a model's worker thread."""

from collections import deque
import os
import sys
import threading
from typing import Any, Optional


def lower_thread_priority(increment: int) -> Optional[int]:
    """
    Add `increment` to the calling thread's nice value; return the new value (None: unchanged).

    On Linux a nice value belongs to one thread (os.setpriority with the thread's native
    id), and threads started by it afterwards inherit it, so a model loaded after this call
    runs all its worker threads at the lower priority. Elsewhere nothing changes. Raising a
    nice value needs no privilege; OSError if the system refuses anyway.
    """
    if increment <= 0 or not sys.platform.startswith('linux'):
        return None
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) +
                                             increment))
    return os.getpriority(os.PRIO_PROCESS, tid)


class Mailbox:
    """
    Thread-safe bounded queue in which a new item evicts the oldest waiting one.

    With maxlen 1 it is latest-frame-wins; with more it bounds how far a model may fall
    behind a stream. `put` never blocks (a callback must not wait for a model) and reports
    an eviction so that the caller can count it. `close` wakes the worker for shutdown.
    """

    def __init__(self, maxlen: int):
        """Hold at most `maxlen` (>= 1) items."""
        if maxlen < 1:
            raise ValueError('maxlen must be at least 1')
        self._items = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> bool:
        """Add `item`; return True if the oldest waiting item was evicted to make room."""
        with self._cond:
            evicted = len(self._items) == self._items.maxlen
            self._items.append(item)
            self._cond.notify()
        return evicted

    def get(self, timeout: Optional[float] = None) -> Optional[Any]:
        """Return the oldest item, waiting up to `timeout`; None when closed or timed out."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if self._closed or not self._items:
                return None
            return self._items.popleft()

    def clear(self) -> int:
        """Drop every waiting item; return how many there were."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def close(self) -> None:
        """Make every current and future get() return None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Return True once close() was called."""
        return self._closed

    def __len__(self) -> int:
        """Return the number of waiting items."""
        return len(self._items)
