# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""The model thread every node runs its model in: off the executor, at a lower priority."""

import threading
from typing import Any, Callable, Optional

from ..core.handover import lower_thread_priority, Mailbox


class ModelThread:
    """
    A worker thread that takes items from a Mailbox and runs the model on each.

    The executor thread only hands items over (`put`, never blocking: a full mailbox evicts
    its oldest item, which the caller counts), so subscriptions, parameters, lifecycle
    transitions and shutdown stay live however long the model takes. The thread first adds
    `nice` to its own nice value (Linux), so that on a small computer the other nodes'
    threads preempt the model, and then runs `prepare()` if given, e.g. loading a model
    whose own threads must inherit that priority; an exception there is raised by
    `start()`. `work(item)` runs for every item until `stop()`.
    """

    def __init__(self, name: str, work: Callable[[Any], None], maxlen: int, nice: int = 0,
                 prepare: Optional[Callable[[], None]] = None, on_nice_error=None):
        """Prepare the thread (not started); `maxlen` bounds the items waiting."""
        self.mailbox = Mailbox(maxlen)
        self.nice_applied: Optional[int] = None
        self._work = work
        self._nice = nice
        self._prepare = prepare
        self._on_nice_error = on_nice_error
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread; wait for `prepare` and raise what it raised."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def put(self, item: Any) -> bool:
        """Hand `item` over; True if the oldest waiting item was evicted (count it)."""
        return self.mailbox.put(item)

    def clear(self) -> int:
        """Drop every waiting item (intake stopped, or the stream restarted)."""
        return self.mailbox.clear()

    @property
    def stopping(self) -> bool:
        """Return True once stop() began: a result in flight must not be published."""
        return self.mailbox.closed

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the item in progress; return True when the thread has ended."""
        self.mailbox.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def __len__(self) -> int:
        """Return the number of items waiting."""
        return len(self.mailbox)

    def _main(self) -> None:
        try:
            self.nice_applied = lower_thread_priority(self._nice)
        except OSError as err:
            if self._on_nice_error is not None:
                self._on_nice_error(err)
        try:
            if self._prepare is not None:
                self._prepare()
        except BaseException as err:  # noqa: BLE001 - handed to start() in the caller
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        while (item := self.mailbox.get()) is not None:
            self._work(item)
