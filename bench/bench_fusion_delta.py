# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Benchmark of the fusion engine: delta-state update against full recomputation.

Prints per-arrival cost of FusionEngine.update (median and p99, microseconds) with delta
updates (only the arriving modality is projected; meta_learner and attention update their
running sums by its term) and with full recomputation (every modality re-projected and
fused from scratch on every arrival), for every strategy, 2 to 16 modalities and embedding
sizes 128 to 4096. Arrivals go round-robin over the modalities, 10 ms apart; meta_learner
and attention run randomly initialised models written here. The inputs come from one pool
of POOL embeddings whatever the number of modalities, so that the benchmark's own inputs
take the same room in the caches for every M (a node gets each one freshly deserialised).
The cells of one strategy and size are timed in interleaved rounds; the last column is the
median over rounds of each round's delta cost over that of the fewest modalities: flat
means the cost of an arrival does not grow with the number of modalities (target: within
1.1x from 2 to 16). A summary gives the largest ratio per strategy and size.

Then where attention's remaining growth comes from: the same engines fed round-robin
against fed by one modality only (the others kept fresh by an untimed round every
ONE_BLOCK arrivals: the same work per arrival, fusing all M tokens, but the projection
weights of one modality only, always in cache), and Attention.project alone in both
patterns. Then memory over many arrivals (tracemalloc current/peak, and resident set size
since torch allocates outside tracemalloc's view) and sustained arrivals/s for two
modalities. About two minutes on two quiet cores with the defaults (four under load).

    python bench/bench_fusion_delta.py [--arrivals 1500] [--threads 1] [--strategies ...]
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
    EmbeddingInput, FusionConfig, FusionEngine, make_strategy, ModalityConfig)
import numpy as np  # noqa: E402

LABELS = [f'label{i}' for i in range(8)]
# Distinct inputs in all, reused so that generating them stays out of the timing; split
# between the modalities, so that their footprint does not grow with the number of them.
POOL = 32
ONE_BLOCK = 25  # timed arrivals of one modality between two rounds over all of them
STRATEGIES = ('weighted_average', 'log_linear', 'speaking_to_robot', 'meta_learner',
              'attention')
# speaking_to_robot reads three cue modalities (m0 audio, m1 vision, m2 speech); the others
# carry labels it ignores, as an IMU or a second camera would.
SPEAKING_LABELS = ['speech', 'face', 'mouth_moving', 'addressed_to_robot']
SPEAKING_PARAMS = {'audio': 'm0', 'vision': 'm1', 'speech_modality': 'm2'}


class Arrivals:
    """
    An endless stream of valid arrivals over `n` modalities of length `dim`.

    Round-robin over the modalities; with `only`, arrivals of modality `only` alone, and
    `refresh()` gives one arrival of every modality (to keep them fresh).
    """

    def __init__(self, n: int, dim: int, labels, seed: int = 0, only=None):
        """Pre-generate POOL embeddings and their scores; `labels` per arrival."""
        rng = np.random.default_rng(seed)
        self.names = [f'm{i}' for i in range(n)]
        self.per = max(1, POOL // n)
        self.data = rng.normal(size=(n, self.per, dim)).astype(np.float32)
        self.scores = rng.uniform(size=(n, self.per, len(labels))).astype(np.float32)
        self.labels = list(labels)
        self.only = only
        self.count, self.now = 0, 0.0

    def arrival(self, i: int):
        """Return (input, now) of the next arrival of modality i; 10 ms apart, 5 ms old."""
        k = (self.count // len(self.names)) % self.per
        self.count += 1
        self.now += 0.01
        inp = EmbeddingInput(self.names[i], self.count, self.now - 0.005, self.data[i, k],
                             self.labels, self.scores[i, k])
        return inp, self.now

    def step(self):
        """Return (input, now) of the next arrival."""
        return self.arrival(self.count % len(self.names) if self.only is None else self.only)

    def refresh(self):
        """Return one arrival of every modality."""
        return [self.arrival(i) for i in range(len(self.names))]


def attention_model(n: int, dim: int, d_model: int, folder: str) -> str:
    """Write a randomly initialised attention model over n modalities of length dim."""
    import torch
    from late_fusion_ros.core.fusion.attention_model import (AttentionFusionModel,
                                                             save_attention_model)
    torch.manual_seed(0)
    model = AttentionFusionModel({f'm{i}': dim for i in range(n)}, d_model, len(LABELS))
    return save_attention_model(model, LABELS, os.path.join(folder, f'att_{n}_{dim}.pt'))


def meta_model(n: int, hidden: int, folder: str) -> str:
    """
    Write a randomly initialised meta_learner over n modalities m0.. reporting LABELS.

    Features: every modality's every label, then one presence bit per modality (the
    layout train_meta_learner writes); `hidden` > 0 adds a ReLU layer of that size.
    """
    rng = np.random.default_rng(0)
    features = [f'm{i}/{label}' for i in range(n) for label in LABELS]
    size = len(features) + n
    arrays = {'features': np.array(features), 'modalities': np.array([f'm{i}' for i in range(n)]),
              'labels': np.array(LABELS)}
    if hidden:
        arrays.update(hidden_weight=rng.normal(size=(hidden, size)) / np.sqrt(size),
                      hidden_bias=rng.normal(size=hidden))
        size = hidden
    arrays.update(weight=rng.normal(size=(len(LABELS), size)) / np.sqrt(size),
                  bias=rng.normal(size=len(LABELS)))
    path = os.path.join(folder, f'meta_{n}_{hidden}.npz')
    np.savez(path, **arrays)
    return path


def setup(strategy, n, dim, args, folder):
    """Return (strategy_params, labels) of `strategy` over n modalities of length dim."""
    if strategy == 'attention':
        return {'model_path': attention_model(n, dim, args.d_model, folder)}, LABELS
    if strategy == 'meta_learner':
        return {'model_path': meta_model(n, args.meta_hidden, folder)}, LABELS
    if strategy == 'speaking_to_robot':
        return dict(SPEAKING_PARAMS), SPEAKING_LABELS
    return {}, LABELS


def make_engine(strategy, n, dim, params, full=False):
    """Build an engine over n modalities m0.. of length dim (full: full recomputation)."""
    mods = [ModalityConfig(f'm{i}', dim=dim) for i in range(n)]
    return FusionEngine(FusionConfig(mods, strategy=strategy, strategy_params=params),
                        full_recompute=full, fuse_from_scratch=full)


def per_arrival_us(engine, stream, arrivals):
    """Return per-arrival times (us) of engine.update after an untimed warm-up."""
    # Warm-up: a round-robin stream visits every modality twice (its weights and state back
    # in cache after the other engines' turns); a one-modality stream refreshes the others.
    warm = stream.refresh() if stream.only is not None else [
        stream.step() for _ in range(2 * len(stream.names))]
    for inp, now in warm:
        engine.update(inp, now)
    times = np.empty(arrivals)
    clock = time.perf_counter_ns
    for j in range(arrivals):
        inp, now = stream.step()
        start = clock()
        result = engine.update(inp, now)
        times[j] = clock() - start
        assert result.output is not None and result.output.valid
    return times / 1e3


def interleaved_us(cases, arrivals, block=25):
    """
    Per-arrival times (us) of several engines, measured in interleaved rounds.

    cases: {key: (engine, stream)}. Each round times `block` updates of every engine in
    turn, so that the machine's noise falls on all of them alike and their ratio (the
    flatness over the number of modalities) means something on a shared machine. Returns
    {key: [times of round 0, times of round 1, ...]}.
    """
    times = {key: [] for key in cases}
    for engine, stream in cases.values():
        per_arrival_us(engine, stream, 1)  # warm-up
    for _ in range(max(1, arrivals // block)):
        for key, (engine, stream) in cases.items():
            times[key].append(per_arrival_us(engine, stream, block))
    return times


def paired_ratio(rounds, base_rounds) -> float:
    """Median over rounds of the ratio of two cells' per-round medians (drift cancels)."""
    return float(np.median([np.median(a) / np.median(b) for a, b in zip(rounds, base_rounds)]))


def cost_table(args, folder):
    """Print the delta vs full table, the delta cost's flatness over M, and a summary."""
    first = args.modalities[0]
    print(f'{"strategy":<18}{"M":>3}{"dim":>6}  {"delta med":>10}{"p99":>9}  '
          f'{"full med":>10}{"p99":>9}  {"full/delta":>10}  {"delta vs M=" + str(first):>12}')
    worst = {}
    for strategy in args.strategies:
        for dim in args.dims:
            cases = {}
            for n in args.modalities:
                params, labels = setup(strategy, n, dim, args, folder)
                for full in (False, True):
                    cases[(n, full)] = (make_engine(strategy, n, dim, params, full),
                                        Arrivals(n, dim, labels))
            rounds = interleaved_us(cases, args.arrivals)
            t = {key: np.concatenate(r) for key, r in rounds.items()}
            for n in args.modalities:
                d, f = t[(n, False)], t[(n, True)]
                ratio = paired_ratio(rounds[(n, False)], rounds[(first, False)])
                worst[(strategy, dim)] = max(worst.get((strategy, dim), 0.0), ratio)
                print(f'{strategy:<18}{n:>3}{dim:>6}  {np.median(d):>10.1f}'
                      f'{np.percentile(d, 99):>9.1f}  {np.median(f):>10.1f}'
                      f'{np.percentile(f, 99):>9.1f}  {np.median(f) / np.median(d):>10.2f}'
                      f'  {ratio:>12.2f}', flush=True)
    print(f'\nlargest delta cost over M={first}, per strategy (target <= 1.10x; * above)')
    print(f'{"strategy":<18}' + ''.join(f'{"dim " + str(d):>10}' for d in args.dims))
    for strategy in args.strategies:
        print(f'{strategy:<18}' + ''.join(
            f'{worst[(strategy, d)]:>9.2f}{"*" if worst[(strategy, d)] > 1.1 else " "}'
            for d in args.dims))


def attention_growth(args, folder):
    """
    Print where attention's per-arrival cost grows from 2 to 16 modalities.

    'rr' is the benchmark's round-robin: the arriving modality's projection weights were
    last read M arrivals ago, after M - 1 other modalities' weights (dim x d_model float32
    each). 'one': one modality arrives, the others stay fresh (same fusion work over all
    M tokens), its weights always in cache. Engine: FusionEngine.update; project:
    Attention.project alone. Flat 'one' and growing 'rr' mean the growth is memory
    traffic for the weights, not work the engine does per modality.
    """
    small, large = args.modalities[0], args.modalities[-1]
    print(f'\nattention, where the cost grows: median us at M={small} / M={large} and ratio, '
          f'round-robin (rr) against one modality arriving (one); weights {args.d_model} x '
          f'dim float32 per modality')
    print(f'{"dim":>6}{"MiB/mod":>9}{"MiB all":>9}  {"engine rr":>19}  {"engine one":>19}  '
          f'{"project rr":>19}  {"project one":>19}')
    for dim in args.dims:
        cases, strategies = {}, {}
        for n in (small, large):
            params, labels = setup('attention', n, dim, args, folder)
            for only in (None, 0):
                cases[(n, only)] = (make_engine('attention', n, dim, params),
                                    Arrivals(n, dim, labels, only=only))
            mods = [ModalityConfig(f'm{i}', dim=dim) for i in range(n)]
            strategies[n] = (make_strategy('attention', params, mods),
                             [a for a, _ in Arrivals(n, dim, labels).refresh() * 2])
        rounds = interleaved_us(cases, args.arrivals // 2, block=ONE_BLOCK)
        project = {key: [] for key in cases}
        clock = time.perf_counter_ns
        for _ in range(args.arrivals // 2 // ONE_BLOCK):
            for (n, only) in cases:
                strategy, inputs = strategies[n]
                t = np.empty(len(inputs) if only is None else ONE_BLOCK)
                for j in range(t.size):
                    inp = inputs[j] if only is None else inputs[0]
                    start = clock()
                    strategy.project(inp)
                    t[j] = clock() - start
                # Round-robin: the first pass over the modalities warms up, the second counts.
                project[(n, only)].append(t[len(t) // 2:] / 1e3 if only is None else t / 1e3)
        cells = []
        for table in (rounds, project):
            for only in (None, 0):
                a, b = table[(small, only)], table[(large, only)]
                med_a, med_b = np.median(np.concatenate(a)), np.median(np.concatenate(b))
                cells.append(f'{med_a:>6.1f}/{med_b:>6.1f} {paired_ratio(b, a):>4.2f}x')
        mib = dim * args.d_model * 4 / 2**20
        print(f'{dim:>6}{mib:>9.2f}{mib * large:>9.2f}  ' + '  '.join(cells), flush=True)


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
    parser.add_argument('--arrivals', type=int, default=1500, help='timed arrivals per cell')
    parser.add_argument('--modalities', type=int, nargs='+', default=[2, 4, 8, 16])
    parser.add_argument('--dims', type=int, nargs='+', default=[128, 512, 1024, 4096])
    parser.add_argument('--strategies', nargs='+', default=list(STRATEGIES),
                        choices=STRATEGIES)
    parser.add_argument('--d-model', type=int, default=64, help='attention token size')
    parser.add_argument('--meta-hidden', type=int, default=32,
                        help='hidden layer of the meta_learner (0: logistic regression)')
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
        if 'attention' in args.strategies:
            attention_growth(args, folder)
        memory(args, folder)
        throughput(args, folder)
    print(f'\ntotal {time.perf_counter() - began:.1f} s')


if __name__ == '__main__':
    main()
