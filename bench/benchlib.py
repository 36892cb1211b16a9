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


def pct(values, q):
    """Return the q-th percentile of values, or nan when empty."""
    return float(np.percentile(values, q)) if len(values) else float('nan')


def spin_in_background(node):
    """Spin `node` in a daemon thread; return the executor (call shutdown() to stop)."""
    import threading

    from rclpy.executors import SingleThreadedExecutor
    # SingleThreadedExecutor: the multi-threaded and events executors busy-poll here.
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    return executor
