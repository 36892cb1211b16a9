# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""The bounded hand-over between subscription callbacks and model workers (no ROS)."""

import threading
import time

from late_fusion_ros.core.handover import Mailbox
import pytest


def test_latest_item_wins_with_maxlen_one():
    """A second put evicts the waiting item and says so; get returns the newest."""
    box = Mailbox(1)
    assert box.put('a') is False
    assert box.put('b') is True
    assert len(box) == 1 and box.get(0) == 'b'
    assert box.get(0.01) is None


def test_bounded_fifo_evicts_the_oldest():
    """With maxlen 3, five puts keep the newest three in order and report two evictions."""
    box = Mailbox(3)
    evictions = [box.put(k) for k in range(5)]
    assert evictions == [False, False, False, True, True]
    assert [box.get(0) for _ in range(3)] == [2, 3, 4]
    assert box.put(9) is False and box.clear() == 1


def test_close_wakes_a_waiting_worker():
    """A worker blocked in get() returns None promptly on close()."""
    box, result = Mailbox(1), []
    worker = threading.Thread(target=lambda: result.append(box.get()))
    worker.start()
    time.sleep(0.1)
    box.close()
    worker.join(1.0)
    assert not worker.is_alive() and result == [None] and box.closed
    box.put('late')
    assert box.get(0) is None


def test_maxlen_must_be_positive():
    """A mailbox that holds nothing is a configuration error."""
    with pytest.raises(ValueError, match='at least 1'):
        Mailbox(0)
