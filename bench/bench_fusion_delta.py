# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark of the fusion engine: delta-state update against full recomputation.

Prints per-arrival cost of FusionEngine.update (median and p99, microseconds) with delta
updates (only the arriving modality is projected) and with full recomputation (every
modality re-projected on every arrival), for several numbers of modalities and embedding
sizes, using the attention strategy (random weights; projection dominates) and
weighted_average. The cells of one strategy and size are timed in interleaved rounds, and
the last column divides each delta cost by the one with the fewest modalities: flat means
the cost of an arrival does not grow with the number of modalities (target: within 1.2x
from 2 to 16). Then memory over many arrivals (tracemalloc current/peak, and resident set
size since torch allocates outside tracemalloc's view) and sustained arrivals/s for two
modalities. About two minutes on two cores with the defaults.

    python bench/bench_fusion_delta.py [--arrivals 1000] [--threads 1]
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

# Benchmark the source tree next to this file rather than a possibly stale install.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                'late_fusion_ros'))

from late_fusion_ros.core.fusion import (  # noqa: E402
    EmbeddingInput, FusionConfig, FusionEngine, ModalityConfig)
import numpy as np  # noqa: E402

LABELS = [f'label{i}' for i in range(8)]
POOL = 16  # distinct embeddings per modality, reused so generation stays out of the timing


class Arrivals:
    """An endless round-robin stream of valid arrivals over `n` modalities of length `dim`."""

    def __init__(self, n: int, dim: int, labels, seed: int = 0):
        """Pre-generate embeddings and scores; `labels` per arrival."""
        rng = np.random.default_rng(seed)
        self.names = [f'm{i}' for i in range(n)]
        self.data = rng.normal(size=(n, POOL, dim)).astype(np.float32)
        self.scores = rng.uniform(size=(n, POOL, len(labels))).astype(np.float32)
        self.labels = list(labels)
        self.count, self.now = 0, 0.0

    def step(self):
        """Return (input, now) of the next arrival; 10 ms apart, captured 5 ms earlier."""
        i, k = self.count % len(self.names), (self.count // len(self.names)) % POOL
        self.count += 1
        self.now += 0.01
        inp = EmbeddingInput(self.names[i], self.count, self.now - 0.005, self.data[i, k],
                             self.labels, self.scores[i, k])
        return inp, self.now


def attention_model(n: int, dim: int, d_model: int, folder: str) -> str:
    """Write a randomly initialised attention model over n modalities of length dim."""
    import torch
    from late_fusion_ros.core.fusion.attention_model import (AttentionFusionModel,
                                                             save_attention_model)
    torch.manual_seed(0)
    model = AttentionFusionModel({f'm{i}': dim for i in range(n)}, d_model, len(LABELS))
    return save_attention_model(model, LABELS, os.path.join(folder, f'att_{n}_{dim}.pt'))


def make_engine(strategy, n, dim, params, full=False):
    """Build an engine over n modalities m0.. of length dim."""
    mods = [ModalityConfig(f'm{i}', dim=dim) for i in range(n)]
    return FusionEngine(FusionConfig(mods, strategy=strategy, strategy_params=params),
                        full_recompute=full)


def per_arrival_us(engine, stream, arrivals):
    """Return per-arrival times (us) of engine.update after one warm-up round."""
    for _ in range(2 * len(stream.names)):
        engine.update(*stream.step())
    times = np.empty(arrivals)
    clock = time.perf_counter_ns
    for j in range(arrivals):
        inp, now = stream.step()
        start = clock()
        result = engine.update(inp, now)
        times[j] = clock() - start
        assert result.output is not None and result.output.valid
    return times / 1e3


def interleaved_us(cases, arrivals, rounds=20):
    """
    Per-arrival times (us) of several engines, measured in interleaved rounds.

    cases: {key: (engine, stream)}. Each round times arrivals / rounds updates of every
    engine in turn, so that the machine's noise falls on all of them alike and their ratio
    (the flatness over the number of modalities) means something on a shared machine.
    """
    times = {key: [] for key in cases}
    for engine, stream in cases.values():
        per_arrival_us(engine, stream, 1)  # warm-up
    for _ in range(rounds):
        for key, (engine, stream) in cases.items():
            times[key].append(per_arrival_us(engine, stream, max(1, arrivals // rounds)))
    return {key: np.concatenate(t) for key, t in times.items()}


def cost_table(args, folder):
    """Print the delta vs full table, and the delta cost's flatness over M."""
    print(f'{"strategy":<17}{"M":>3}{"dim":>6}  {"delta med":>10}{"p99":>9}  '
          f'{"full med":>10}{"p99":>9}  {"full/delta":>10}  '
          f'{"delta vs M=" + str(args.modalities[0]):>12}')
    for strategy in ('attention', 'weighted_average'):
        for dim in args.dims:
            cases = {}
            for n in args.modalities:
                params = ({'model_path': attention_model(n, dim, args.d_model, folder)}
                          if strategy == 'attention' else {})
                for full in (False, True):
                    cases[(n, full)] = (make_engine(strategy, n, dim, params, full),
                                        Arrivals(n, dim, LABELS))
            t = interleaved_us(cases, args.arrivals)
            base = np.median(t[(args.modalities[0], False)])
            for n in args.modalities:
                d, f = t[(n, False)], t[(n, True)]
                print(f'{strategy:<17}{n:>3}{dim:>6}  {np.median(d):>10.1f}'
                      f'{np.percentile(d, 99):>9.1f}  {np.median(f):>10.1f}'
                      f'{np.percentile(f, 99):>9.1f}  {np.median(f) / np.median(d):>10.2f}'
                      f'  {np.median(d) / base:>12.2f}', flush=True)


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux), or nan elsewhere."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except OSError:
        return float('nan')


def memory(args, folder):
    """Print tracemalloc current/peak and RSS after warm-up and after many more arrivals."""
    print(f'\nmemory over {args.memory_arrivals} arrivals, 2 modalities, dim 512: tracemalloc '
          'KiB current/peak (engine built under tracing), RSS MiB')
    for strategy, params in (('weighted_average', {}), ('attention', {
            'model_path': attention_model(2, 512, args.d_model, folder)})):
        tracemalloc.start()
        eng, stream = make_engine(strategy, 2, 512, params), Arrivals(2, 512, LABELS)
        for _ in range(1000):
            eng.update(*stream.step())
        start, start_rss = tracemalloc.get_traced_memory(), rss_mib()
        tracemalloc.reset_peak()
        for _ in range(args.memory_arrivals - 1000):
            eng.update(*stream.step())
        end, end_rss = tracemalloc.get_traced_memory(), rss_mib()
        tracemalloc.stop()
        print(f'  {strategy:<17} after 1000: {start[0] / 1024:8.1f} / {start[1] / 1024:8.1f}   '
              f'at end: {end[0] / 1024:8.1f} / {end[1] / 1024:8.1f}   '
              f'RSS {start_rss:7.1f} -> {end_rss:7.1f}')


def throughput(args, folder):
    """Print sustained engine.update calls per second for two modalities."""
    print(f'\nsustained arrivals/s, 2 modalities ({args.seconds:.1f} s each)')
    cases = (('speaking_to_robot', 128, ['speech', 'face', 'mouth_moving'], {}),
             ('weighted_average', 512, LABELS, {}),
             ('attention', 512, LABELS,
              {'model_path': attention_model(2, 512, args.d_model, folder)}))
    for strategy, dim, labels, params in cases:
        eng, stream = make_engine(strategy, 2, dim, params), Arrivals(2, dim, labels)
        done, deadline = 0, time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                eng.update(*stream.step())
            done += 100
        print(f'  {strategy:<17} dim {dim:>4}: {done / args.seconds:10.0f} arrivals/s')


def main(argv=None):
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arrivals', type=int, default=1000, help='timed arrivals per cell')
    parser.add_argument('--modalities', type=int, nargs='+', default=[2, 4, 8, 16])
    parser.add_argument('--dims', type=int, nargs='+', default=[128, 512, 1024, 4096])
    parser.add_argument('--d-model', type=int, default=64, help='attention token size')
    parser.add_argument('--memory-arrivals', type=int, default=100_000)
    parser.add_argument('--seconds', type=float, default=2.0, help='per throughput case')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (the engine leaves this to its caller)')
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    print(f'python {sys.version.split()[0]}, numpy {np.__version__}, torch {torch.__version__}'
          f', {args.threads} torch thread(s), {os.cpu_count()} CPUs; times in microseconds\n')
    with tempfile.TemporaryDirectory() as folder:
        cost_table(args, folder)
        memory(args, folder)
        throughput(args, folder)
    print(f'\ntotal {time.perf_counter() - began:.1f} s')


if __name__ == '__main__':
    main()
