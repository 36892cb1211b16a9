# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""Tests of the sync baseline (ApproximateSync), rate limiting and atomic reconfiguration."""

import dataclasses

from late_fusion_ros.core.fusion import (ApproximateSync, EmbeddingInput, FusionConfig,
                                         FusionEngine, ModalityConfig)
import numpy as np
import pytest


def inp(modality, seq, stamp, labels=('speech',), scores=(0.5,), data=()):
    """Build an EmbeddingInput from plain lists."""
    return EmbeddingInput(modality, seq, stamp, np.asarray(data, np.float32), list(labels),
                          np.asarray(scores, np.float32))


def config(**kwargs):
    """Return a FusionConfig over audio and vision with `kwargs` overriding fields."""
    return FusionConfig([ModalityConfig('audio'), ModalityConfig('vision')], **kwargs)


def snapshot(result):
    """Everything of a FusionResult, counters included."""
    return (result.labels, result.scores.tolist(), result.decision, result.confidence,
            result.valid, [dataclasses.astuple(m) for m in result.modalities])


def test_sync_matches_within_slop_and_consumes_the_set():
    """A set is emitted once every queue has an item within slop; emitted items are removed."""
    sync = ApproximateSync(2, 10, 0.1)
    assert sync.add(0, 1.0, 'a1') is None
    assert sync.add(1, 1.05, 'b1') == ('a1', 'b1')
    assert sync.add(1, 1.06, 'b2') is None  # a1 was consumed


def test_sync_prefers_nearest_and_keeps_older_items():
    """The pivot pairs with the nearest candidate; older unmatched items stay queued."""
    sync = ApproximateSync(2, 10, 0.1)
    sync.add(0, 1.0, 'a1')
    sync.add(0, 1.08, 'a2')
    assert sync.add(1, 1.07, 'b1') == ('a2', 'b1')
    assert sync.add(1, 1.02, 'b2') == ('a1', 'b2')


def test_sync_span_must_be_strictly_below_slop():
    """As in message_filters: a span equal to slop does not match, beyond slop neither."""
    sync = ApproximateSync(2, 10, 0.1)
    sync.add(0, 1.0, 'a')
    assert sync.add(1, 1.1, 'b') is None
    assert sync.add(1, 1.3, 'c') is None


def test_sync_needs_every_queue_and_evicts_oldest():
    """Three queues must all contribute; a full queue drops its oldest item."""
    sync = ApproximateSync(3, 2, 0.1)
    sync.add(0, 1.0, 'a1')
    sync.add(0, 2.0, 'a2')
    sync.add(0, 3.0, 'a3')  # evicts a1
    assert sync.add(1, 1.0, 'b1') is None
    assert sync.add(2, 1.01, 'c1') is None  # a1 is gone
    assert sync.add(1, 2.02, 'b2') is None
    assert sync.add(2, 2.01, 'c2') == ('a2', 'b2', 'c2')


def test_sync_equal_stamp_replaces():
    """A second item with the same stamp on one queue replaces the first."""
    sync = ApproximateSync(2, 10, 0.1)
    sync.add(0, 1.0, 'old')
    sync.add(0, 1.0, 'new')
    assert sync.add(1, 1.0, 'b') == ('new', 'b')


def test_engine_sync_policy_waits_for_a_matching_set():
    """Under 'sync' nothing is published until all modalities match within slop."""
    eng = FusionEngine(config(policy='sync', sync_slop=0.1))
    res = eng.update(inp('audio', 1, 10.0, scores=[0.2]), 10.0)
    assert res.accepted and res.reason == 'waiting_for_sync' and res.output is None
    assert not eng.evaluate(10.0).valid  # the unmatched input is not fused state
    assert eng.update(inp('vision', 1, 9.5, scores=[0.9]), 10.5).output is None
    res = eng.update(inp('vision', 2, 10.04, scores=[0.6]), 10.6)
    assert res.accepted and res.reason == '' and res.output.valid
    # Matched set audio 0.2 (one score: confidence max(0.2, 0.8) = 0.8; age 0.6,
    # w = 0.8 e^-0.6 = 0.4390493) and vision 0.6 (confidence 0.6, age 0.56,
    # w = 0.6 e^-0.56 = 0.3427255): (0.4390493 * 0.2 + 0.3427255 * 0.6) / 0.7817748
    assert res.output.scores[0] == pytest.approx(0.3753577, rel=1e-5)
    assert [m.seq for m in res.output.modalities] == [1, 2]


def test_rate_limit_updates_state_but_holds_output():
    """Within min_interval the state is updated and counted, but nothing is published."""
    eng = FusionEngine(config(min_interval={'audio': 0.5}))
    assert eng.update(inp('audio', 1, 0.0, scores=[0.1]), 0.0).output is not None
    res = eng.update(inp('audio', 2, 0.2, scores=[0.7]), 0.2)
    assert res.accepted and res.reason == 'rate_limited' and res.output is None
    assert eng.evaluate(0.2).scores[0] == pytest.approx(0.7)
    assert eng.update(inp('vision', 1, 0.3), 0.3).output is not None  # vision is not limited
    assert eng.update(inp('audio', 3, 0.6, scores=[0.3]), 0.6).output is not None
    counts = eng.counters()['audio']
    assert (counts['received'], counts['rate_limited'], counts['dropped']) == (3, 1, 1)


def _engine_with_state():
    eng = FusionEngine(config(strategy='speaking_to_robot'))
    eng.update(inp('audio', 1, 1.0, scores=[0.8]), 1.0)
    eng.update(inp('vision', 1, 1.0, ['face', 'mouth_moving'], [0.9, 0.9]), 1.0)
    eng.update(inp('vision', 2, 1.0, ['face'], [0.9], data=[1.0]), 1.0)
    return eng


def _bad_configs(tmp_path):
    """Yield (invalid configuration, the words its ValueError must say)."""
    mods = [ModalityConfig('audio'), ModalityConfig('vision')]
    yield config(strategy='nope'), 'unknown fusion strategy'
    yield config(strategy='speaking_to_robot', strategy_params={'threshold': 2.0}), 'threshold'
    yield config(strategy='speaking_to_robot', strategy_params={'typo': 1}), 'unknown strategy'
    yield (config(strategy='meta_learner', strategy_params={'model_path': str(tmp_path / 'x')}),
           'model file not found')
    yield config(strategy='attention', strategy_params={}), 'model_path is required'
    yield config(policy='later'), 'policy must be one of'
    yield config(min_interval={'lidar': 1.0}), 'unknown modality'
    yield config(min_interval={'audio': -1.0}), 'must be finite and >= 0'
    yield FusionConfig([]), 'at least one modality'
    yield FusionConfig([mods[0], ModalityConfig('audio')]), 'must be unique'
    for change, words in (({'prior': -1.0}, 'prior'), ({'max_age': 0.0}, 'max_age'),
                          ({'decay': 'cubic'}, 'decay'), ({'time_constant': 0.0},
                                                          'time_constant'),
                          ({'dim': -2}, 'dim'), ({'prior': float('nan')}, 'prior')):
        yield FusionConfig([mods[0], dataclasses.replace(mods[1], **change)]), words


def test_reconfigure_rejects_invalid_config_and_changes_nothing(tmp_path):
    """Every invalid configuration raises ValueError and leaves config and state as they were."""
    eng = _engine_with_state()
    before_config, before = eng.config, snapshot(eng.evaluate(1.5))
    for bad, words in _bad_configs(tmp_path):
        with pytest.raises(ValueError, match=words):
            eng.reconfigure(bad)
        assert eng.config is before_config
        assert snapshot(eng.evaluate(1.5)) == before
    with pytest.raises(ValueError, match='unknown fusion strategy'):
        FusionEngine(config(strategy='nope'))


def test_reconfigure_keeps_state_of_remaining_modalities():
    """Modalities that stay keep input and counters; new ones start absent; removed vanish."""
    eng = _engine_with_state()
    eng.reconfigure(FusionConfig([ModalityConfig('vision', prior=0.5), ModalityConfig('imu')],
                                 strategy='weighted_average'))
    out = eng.evaluate(1.0)
    assert [m.modality for m in out.modalities] == ['vision', 'imu']
    assert [m.present for m in out.modalities] == [True, False]
    assert out.modalities[0].received == 2 and out.modalities[0].weight == pytest.approx(0.45)
    assert out.labels == ['face'] and out.strategy == 'weighted_average'
    assert set(eng.counters()) == {'vision', 'imu'}
    # A stored input the new configuration would reject is forgotten.
    eng.reconfigure(FusionConfig([ModalityConfig('vision', dim=4)]))
    assert not eng.evaluate(1.0).modalities[0].present
