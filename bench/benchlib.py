# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Table printing and percentiles shared by the benchmarks in this folder."""

import sys

import numpy as np


def table(title, headers, rows):
    """Print a plain aligned table with a title line."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    print(f'\n{title}')
    print('  '.join(h.rjust(w) for h, w in zip(headers, widths)))
    print('  '.join('-' * w for w in widths))
    for r in cells:
        print('  '.join(c.rjust(w) for c, w in zip(r, widths)))
    sys.stdout.flush()


def exit_status(codes):
    """Return the benchmark's exit status: 1 (and say which) if a process exited non-zero."""
    bad = {k: v for k, v in codes.items() if v}
    if bad:
        print(f'exit codes: {bad}', file=sys.stderr)
    return 1 if bad else 0


def pct(values, q):
    """Return the q-th percentile of values, or nan when empty."""
    return float(np.percentile(values, q)) if len(values) else float('nan')


def wait_for(predicate, timeout, period=0.05):
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    import time
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(period)
    return False


def collect_diagnostics(node):
    """
    Subscribe /diagnostics on `node`; return {hardware_id: {key: value}}, kept up to date.

    Every status of a node carries its FQN as hardware_id, so the values of all its stages
    ('<node>: input', ': encoder', ': output') merge into one dict per node.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    values = {}

    def on_diag(msg):
        for status in msg.status:
            values.setdefault(status.hardware_id, {}).update(
                {kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    return values


def spin_in_background(node, events=False):
    """
    Spin `node` in a daemon thread; return the executor (call shutdown() to stop).

    SingleThreadedExecutor by default. With `events`, rclpy.experimental.EventsExecutor,
    spun with a bounded wait: its spin() would busy-poll a whole core.
    """
    import threading

    from rclpy.executors import SingleThreadedExecutor
    if not events:
        # SingleThreadedExecutor: the multi-threaded one busy-polls here.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        return executor
    from rclpy.experimental import EventsExecutor
    return _BoundedSpin(EventsExecutor(), node)


class _BoundedSpin:
    """An executor spun with spin_once(timeout) in a daemon thread, stopped by shutdown()."""

    def __init__(self, executor, node):
        import threading
        self._executor = executor
        self._executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        from rclpy.executors import ExternalShutdownException
        try:
            while not self._stop.is_set():
                self._executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass

    def shutdown(self):
        """Stop spinning and shut the executor down."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._executor.shutdown()
