# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Tests of the delta-state update against full recomputation, for every strategy.

The engine under test updates only the arriving modality's term and, for meta_learner and
attention, its running sums; the reference re-projects every modality and fuses from scratch
(full_recompute=True, fuse_from_scratch=True). Random arrival orders over random numbers of
modalities with random decay settings, including stale modalities (long gaps, old stamps),
stamps slightly ahead of `now`, rejected inputs, timer evaluations, reconfiguration, resets
and clock resets: the outputs must agree within 1e-5 (the running sums are built to keep
~1e-9), and the engine that only re-projects everything (full_recompute alone) exactly.
"""

import math

from late_fusion_ros.core.fusion import (EmbeddingInput, FusionConfig, FusionEngine,
                                         ModalityConfig)
from late_fusion_ros.core.fusion.attention_model import AttentionFusionModel, save_attention_model
from late_fusion_ros.core.fusion.delta import DecayedSoftmaxSum, RunningSum
from late_fusion_ros.core.fusion.learned import AttentionWeights
import numpy as np
import pytest
import torch

STRATEGIES = ['weighted_average', 'log_linear', 'speaking_to_robot', 'meta_learner',
              'attention']
VOCAB = ['speech', 'face', 'mouth_moving', 'music', 'addressed_to_robot']
TOLERANCE = 1e-5


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


class Scenario:
    """Random modalities, model files and arrivals for one strategy and seed."""

    def __init__(self, strategy, seed, folder):
        self.rng = rng = np.random.default_rng(seed)
        self.strategy = strategy
        n = int(rng.integers(1, 8))
        self.names = [f'mod{i}' for i in range(n)]
        self.dims = {name: int(rng.integers(2, 7)) for name in self.names}
        # Epoch-sized stamps for half the seeds: the sums' time origins must cope.
        self.origin = 1.7e9 if seed % 2 else 0.0
        self.params = {}
        # Learned models know all but (sometimes) the last modality, which then has no term.
        known = self.names[:-1] if n > 1 and rng.uniform() < 0.5 else self.names
        if strategy == 'attention':
            torch.manual_seed(seed)
            model = AttentionFusionModel({m: self.dims[m] for m in known}, 8, 3)
            with torch.no_grad():  # scores spread over several units, as trained ones do
                model.query.mul_(float(rng.uniform(1.0, 20.0)))
            self.params = {'model_path': save_attention_model(model, ['x', 'y', 'z'],
                                                              str(folder / f'a{seed}.pt'))}
        elif strategy == 'meta_learner':
            features = [f'{m}/{label}' for m in known for label in VOCAB]
            size = len(features) + len(known)
            hidden = int(rng.integers(0, 2)) * 6
            arrays = {'features': np.array(features), 'modalities': np.array(known),
                      'labels': np.array(['a', 'b', 'c'])}
            if hidden:
                arrays.update(hidden_weight=rng.normal(size=(hidden, size)),
                              hidden_bias=rng.normal(size=hidden))
                size = hidden
            arrays.update(weight=3 * rng.normal(size=(3, size)), bias=rng.normal(size=3))
            path = str(folder / f'm{seed}.npz')
            np.savez(path, **arrays)
            self.params = {'model_path': path}
        elif strategy == 'speaking_to_robot':
            cues = list(rng.permutation(self.names))
            for key, cue in zip(('audio', 'vision', 'speech_modality'), cues):
                self.params[key] = str(cue)
        elif strategy == 'log_linear':
            self.params = {'categorical': bool(seed % 3 == 0)}
        self.seqs = dict.fromkeys(self.names, 0)
        self.now = self.origin

    def modality(self, name):
        """Return a random configuration of modality `name`."""
        rng = self.rng
        decay = ['exponential', 'linear', 'none'][rng.integers(3)]
        # A few shared time constants, so that several modalities share a decay group.
        tau = float(rng.choice([0.01, 0.3, 1.0, 1.0, 5.0]))
        prior = float(rng.choice([0.0, 0.5, 1.0, 2.0, 1000.0], p=[0.05, 0.3, 0.4, 0.2, 0.05]))
        max_age = float(rng.choice([0.2, 0.5, 2.0]))
        return ModalityConfig(name, prior=prior, max_age=max_age, decay=decay,
                              time_constant=tau, dim=self.dims[name] * int(rng.integers(0, 2)))

    def config(self):
        """Return a random configuration of a random non-empty subset of the modalities."""
        keep = [m for m in self.names if self.rng.uniform() < 0.85] or [self.names[0]]
        return FusionConfig([self.modality(m) for m in keep], strategy=self.strategy,
                            strategy_params=dict(self.params))

    def arrival(self):
        """Return (input, now): mostly valid, sometimes late, stale, skewed or malformed."""
        rng = self.rng
        kind = rng.uniform()
        # Usually ~20 ms apart; sometimes a gap that leaves everything stale.
        self.now += rng.exponential(0.02) if kind > 0.03 else rng.uniform(1.0, 6.0)
        name = self.names[rng.integers(len(self.names))]
        self.seqs[name] += 1
        # Now and then a label given twice.
        labels = list(rng.choice(VOCAB, int(rng.integers(1, 4)), replace=rng.uniform() < 0.1))
        scores = rng.uniform(0, 1, len(labels))
        if rng.uniform() < 0.05:
            scores[:] = 0.0  # confidence 0 for several labels: weight 0, masked out
        data = rng.normal(size=self.dims[name])
        stamp = self.now - rng.uniform(0, 0.06)
        roll = rng.uniform()
        if roll < 0.04:
            stamp = self.now + rng.uniform(0.0, 0.3)  # clock skew: ahead of `now`, no decay
        elif roll < 0.06:
            stamp = self.now - rng.uniform(0.3, 3.0)  # late: stale on arrival, or dropped
        elif roll < 0.08:
            data = rng.normal(size=self.dims[name] + 1)  # wrong dimension where configured
        elif roll < 0.10:
            data[0] = np.nan
        elif roll < 0.11:
            scores[0] = np.inf
        elif roll < 0.12:
            name = 'nobody'  # unknown modality
        elif roll < 0.13:
            stamp = self.now + 50.0  # from the future: rejected
        elif roll < 0.14:
            self.seqs[name] -= 1  # repeated sequence number: dropped
        return EmbeddingInput(name, self.seqs.get(name, 1), stamp, data.astype(np.float32),
                              labels, scores.astype(np.float32)), self.now


def _close(a, b):
    return a == b or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def assert_agree(out, ref):
    """Assert that two FusionResults agree: equal fields, numbers within TOLERANCE."""
    assert (out is None) == (ref is None)
    if out is None:
        return
    assert (out.trigger_modality, out.trigger_seq, out.stamp, out.strategy, out.valid) == \
        (ref.trigger_modality, ref.trigger_seq, ref.stamp, ref.strategy, ref.valid)
    assert out.labels == ref.labels and out.decision == ref.decision
    np.testing.assert_allclose(out.scores, ref.scores, rtol=TOLERANCE, atol=TOLERANCE)
    assert _close(out.confidence, ref.confidence)
    # The confidence is the float64 score (the scores are float32): the sums keep ~1e-10.
    assert math.isclose(out.confidence, ref.confidence, rel_tol=1e-9, abs_tol=1e-12)
    assert list(out.attention) == list(ref.attention)
    for name, weight in out.attention.items():
        assert _close(weight, ref.attention[name]), name
    assert list(out.modalities) == list(ref.modalities)


def snapshot(result):
    """Everything of an UpdateResult, as exact values."""
    out = result.output
    fused = None if out is None else (
        out.trigger_modality, out.trigger_seq, out.stamp, out.labels, out.scores.tolist(),
        out.decision, out.confidence, out.valid, list(out.modalities), dict(out.attention))
    return result.accepted, result.reason, result.reset, fused


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('strategy', STRATEGIES)
def test_delta_update_agrees_with_full_recomputation(strategy, seed, tmp_path):
    """Random arrivals: delta engine == re-projecting engine, and ~= full recomputation."""
    scene = Scenario(strategy, seed, tmp_path)
    config = scene.config()
    delta = FusionEngine(config)
    terms = FusionEngine(config, full_recompute=True)
    full = FusionEngine(config, full_recompute=True, fuse_from_scratch=True)
    engines = (delta, terms, full)
    rng = scene.rng
    outputs = 0
    for _ in range(400):
        event = rng.uniform()
        if event < 0.02:
            config = scene.config()
            for eng in engines:
                eng.reconfigure(config)
            continue
        if event < 0.025:
            for eng in engines:
                eng.reset()
            continue
        if event < 0.03:
            scene.now -= rng.uniform(1.5, 3.0)  # the clock went back: every engine resets
        if event < 0.08:
            # A timer's evaluation, sometimes slightly in the past (no reset below 1 s):
            # modalities that went stale since can be fresh again.
            now = scene.now - (rng.uniform(0.0, 0.8) if rng.uniform() < 0.5 else 0.0)
            results = [eng.evaluate(now) for eng in engines]
            assert_agree(results[0], results[2])
            assert snapshot_result(results[0]) == snapshot_result(results[1])
            continue
        arrival, now = scene.arrival()
        results = [eng.update(arrival, now) for eng in engines]
        assert snapshot(results[0]) == snapshot(results[1])
        a, ref = results[0], results[2]
        assert (a.accepted, a.reason, a.reset) == (ref.accepted, ref.reason, ref.reset)
        assert_agree(a.output, ref.output)
        outputs += a.output is not None and a.output.valid
    assert delta.counters() == full.counters()
    assert outputs > 20  # the scenario fused for real, not only rejected


def snapshot_result(out):
    """Return a FusionResult as exact values."""
    return (out.labels, out.scores.tolist(), out.decision, out.confidence, out.valid,
            list(out.modalities), dict(out.attention))


def _expected(configs, bases, stamps, values, now):
    """Return the weighted mean from scratch: weights exp(base) * decay(now - stamp)."""
    age = np.maximum(now - np.asarray(stamps), 0.0)
    decay = np.array([math.exp(-a / c.time_constant) if c.decay == 'exponential'
                      else 1 - a / c.max_age if c.decay == 'linear' else 1.0
                      for a, c in zip(age, configs)])
    return _softmax(np.asarray(bases) + np.log(decay)) @ values


@pytest.mark.parametrize('dominance', [30.0, 40.0])
@pytest.mark.parametrize('decay', ['exponential', 'linear', 'none'])
def test_removing_a_dominant_term_rebuilds_the_sum(decay, dominance):
    """Dropping a term that held nearly all the weight leaves the others exactly weighed."""
    configs = [ModalityConfig(f'm{i}', decay=decay, max_age=5.0) for i in range(4)]
    total = DecayedSoftmaxSum(configs, 3)
    values = np.random.default_rng(0).normal(size=(4, 3))
    now = 100.0
    bases, stamps = [dominance, 0.1, -0.2, 0.3], now - 0.1 * np.arange(4)
    for i in range(4):
        total.put(i, bases[i], stamps[i], values[i])
    want = np.ones(4, bool)
    np.testing.assert_allclose(total.combine(now, want),
                               _expected(configs, bases, stamps, values, now), rtol=1e-12)
    want[0] = False
    # Subtracted from the sum, m0's e^30 (e^40) leaves the others' ~3 with a rounding error
    # of ~1e-3 (~50, or nothing at all): only a rebuild gives them back.
    np.testing.assert_allclose(total.combine(now + 0.05, want),
                               _expected(configs[1:], bases[1:], stamps[1:], values[1:],
                                         now + 0.05), rtol=1e-12)


@pytest.mark.parametrize('decay', ['exponential', 'linear', 'none'])
def test_logits_far_beyond_exp_range(decay):
    """Terms e^800 apart neither overflow nor vanish wrongly (running maximum reference)."""
    configs = [ModalityConfig(f'm{i}', decay=decay, max_age=5.0) for i in range(3)]
    total = DecayedSoftmaxSum(configs, 2)
    values = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    bases, stamps = [0.0, 800.0, 799.0], [10.0, 10.0, 10.0]
    want = np.ones(3, bool)
    for i in range(3):
        total.put(i, bases[i], stamps[i], values[i])
        got = total.combine(10.5, np.arange(3) <= i)
        np.testing.assert_allclose(got, _expected(configs[:i + 1], bases[:i + 1],
                                                  stamps[:i + 1], values[:i + 1], 10.5),
                                   rtol=1e-12)
    want[1] = False  # the largest term leaves: m2 (e^799) against m0 (e^0)
    np.testing.assert_allclose(total.combine(10.6, want), _expected(
        configs[::2], bases[::2], stamps[::2], values[::2], 10.6), rtol=1e-12)


def test_time_origin_follows_a_long_running_stream():
    """After 1e7 s at tau 1 ms the exponents are rebased, not ~1e10 with 1e-6 rounding."""
    configs = [ModalityConfig(f'm{i}', max_age=1e12, time_constant=1e-3) for i in range(2)]
    total = DecayedSoftmaxSum(configs, 2)
    values = np.array([[1.0, 0.0], [0.0, 1.0]])
    now = 0.0
    for _ in range(10):
        now += 1e6
        stamps = [now, now - 1e-3]
        total.put(0, 0.0, stamps[0], values[0])
        total.combine(now, np.array([True, False]))  # m1, 1e6 s old, weighs 0
        total.put(1, 0.0, stamps[1], values[1])
        np.testing.assert_allclose(total.combine(now, np.ones(2, bool)),
                                   _expected(configs, [0.0, 0.0], stamps, values, now),
                                   rtol=1e-12)


def test_long_streams_keep_their_precision():
    """A hundred thousand replacements, time origins moving on: still within 1e-9."""
    rng = np.random.default_rng(3)
    decays = ['exponential', 'exponential', 'linear', 'none', 'exponential', 'linear']
    configs = [ModalityConfig(f'm{i}', decay=d, max_age=1.0, time_constant=0.05 + 0.1 * i)
               for i, d in enumerate(decays)]
    n = len(configs)
    total = DecayedSoftmaxSum(configs, 4)
    plain = RunningSum(n, 4)
    base, stamp, values = np.zeros(n), np.zeros(n), np.zeros((n, 4))
    now = 1.7e9
    for step in range(100_000):
        now += 0.002
        i = step % n
        base[i], stamp[i], values[i] = rng.normal(0, 5), now, rng.normal(size=4)
        total.put(i, base[i], stamp[i], values[i])
        plain.put(i, values[i] * 1e3)
        plain.total(np.arange(n) <= step)  # every step: past OPS_LIMIT replacements
        if step >= n and (step % 997 == 0 or step == 99_999):
            want = np.ones(n, bool)
            np.testing.assert_allclose(total.combine(now, want),
                                       _expected(configs, base, stamp, values, now),
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(plain.total(want), values.sum(0) * 1e3, rtol=0,
                                       atol=1e-9)


def test_attention_weights_read_like_a_dict():
    """FusionResult.attention is computed when read, and behaves as a read-only dict."""
    weights = AttentionWeights(['a', 'b', 'c'], [0, 2, 3], np.array([1.0, 9.0, 0.0, 0.0]),
                               np.array([1.0, 1.0, 0.5, 0.0]), np.array([1, 0, 1, 0], bool))
    # Used rows 0 and 2: softmax(1 + log 1, 0 + log 0.5) = 2e / (2e + 1) and 1 / (2e + 1).
    e = math.e
    assert weights == pytest.approx({'a': 2 * e / (2 * e + 1), 'b': 1 / (2 * e + 1), 'c': 0.0})
    assert list(weights) == ['a', 'b', 'c'] and len(weights) == 3
    assert weights.get('c') == 0.0 and weights.get('z', -1.0) == -1.0 and 'b' in weights
    assert dict(weights) == {'a': weights['a'], 'b': weights['b'], 'c': 0.0}
    assert repr(weights) == repr(dict(weights))
    with pytest.raises(TypeError):
        weights['a'] = 1.0
