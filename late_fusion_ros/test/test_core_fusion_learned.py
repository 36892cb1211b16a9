# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Tests of log_linear, the learned strategies, their files and training, and delta updates.

Expected numbers are worked out by hand in each test, never taken from the code under test.
"""

import math
import pathlib

from late_fusion_ros.core.fusion import (EmbeddingInput, FusionConfig, FusionEngine, make_strategy,
                                         ModalityConfig)
from late_fusion_ros.core.fusion.attention_model import AttentionFusionModel, save_attention_model
from late_fusion_ros.core.fusion.training import train_attention, train_meta_learner
import numpy as np
import pytest
import torch


def inp(modality, seq, stamp, labels=(), scores=(), data=()):
    """Build an EmbeddingInput from plain lists."""
    return EmbeddingInput(modality, seq, stamp, np.asarray(data, np.float32), list(labels),
                          np.asarray(scores, np.float32))


def engine(strategy, params=None, modalities=None, full_recompute=False):
    """Build an engine over audio and vision (defaults) with `strategy`."""
    modalities = modalities or [ModalityConfig('audio'), ModalityConfig('vision')]
    return FusionEngine(FusionConfig(modalities, strategy=strategy,
                                     strategy_params=params or {}),
                        full_recompute=full_recompute)


def sigmoid(z):
    """Logistic function, for the hand computations."""
    return 1.0 / (1.0 + math.exp(-z))


def test_log_linear_bernoulli_hand_computed():
    """Per label, p = sigmoid(sum_m w_m logit p_m), weights prior * confidence * decay."""
    eng = engine('log_linear')
    eng.update(inp('audio', 1, 1.0, ['speech', 'music'], [0.8, 0.3]), 1.0)
    out = eng.update(inp('vision', 1, 1.0, ['speech'], [0.6]), 1.0).output
    # w_a = 0.8, w_v = 0.6. speech: 0.8 ln 4 + 0.6 ln 1.5 = 1.1090355 + 0.2432791 = 1.3523146
    # -> 0.7945078; music: 0.8 ln(0.3 / 0.7) = -0.6778383 -> 0.3367439
    assert out.labels == ['speech', 'music']
    np.testing.assert_allclose(out.scores, [0.7945078, 0.3367439], rtol=1e-6)
    assert out.decision == 'speech' and out.confidence == pytest.approx(0.7945078, rel=1e-6)


def test_log_linear_categorical_hand_computed():
    """categorical: p = softmax over labels of sum_m w_m log p_m."""
    eng = engine('log_linear', {'categorical': True})
    eng.update(inp('audio', 1, 1.0, ['speech', 'music'], [0.8, 0.3]), 1.0)
    out = eng.update(inp('vision', 1, 1.0, ['speech'], [0.6]), 1.0).output
    # speech: 0.8 ln 0.8 + 0.6 ln 0.6 = -0.4850102; music: 0.8 ln 0.3 = -0.9631783
    # p_speech = sigmoid(0.4781681) = 0.6173152
    np.testing.assert_allclose(out.scores, [0.6173152, 0.3826848], rtol=1e-6)


def test_log_linear_clips_certain_scores():
    """A score of exactly 1 is clipped to 1 - eps instead of giving an infinite logit."""
    eng = engine('log_linear', {'eps': 0.01})
    out = eng.update(inp('audio', 1, 1.0, ['speech'], [1.0]), 1.0).output
    # weight 1: sigmoid(logit(0.99)) = 0.99
    np.testing.assert_allclose(out.scores, [0.99], rtol=1e-6)


@pytest.fixture
def meta_file(tmp_path):
    """Write a hand-made meta-learner: yes-logit 2 s_speech + s_face + 0.5 per present modality."""
    path = str(tmp_path / 'meta.npz')
    np.savez(path, features=np.array(['audio/speech', 'vision/face']),
             modalities=np.array(['audio', 'vision']), labels=np.array(['no', 'yes']),
             weight=np.array([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.5, 0.5]]),
             bias=np.array([0.5, 0.0]))
    return path


def test_meta_learner_hand_computed(meta_file, tmp_path):
    """Logistic regression over scores and presence; same result from .npz and torch files."""
    torch_file = str(tmp_path / 'meta.pt')
    torch.save({'features': ['audio/speech', 'vision/face'], 'modalities': ['audio', 'vision'],
                'labels': ['no', 'yes'],
                'weight': torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.5, 0.5]]),
                'bias': torch.tensor([0.5, 0.0])}, torch_file)
    for path in (meta_file, torch_file):
        eng = engine('meta_learner', {'model_path': path})
        out = eng.update(inp('audio', 1, 1.0, ['speech'], [0.8]), 1.0).output
        # vision absent: z_yes = 1.6 + 0.5 = 2.1, z_no = 0.5 -> sigmoid(1.6) = 0.8320184
        np.testing.assert_allclose(out.scores, [0.1679816, 0.8320184], rtol=1e-5)
        out = eng.update(inp('vision', 1, 1.0, ['face', 'x'], [0.9, 0.2]), 1.0).output
        # z_yes = 1.6 + 0.9 + 0.5 + 0.5 = 3.5, z_no = 0.5 -> sigmoid(3) = 0.9525741
        np.testing.assert_allclose(out.scores, [0.0474259, 0.9525741], rtol=1e-5)
        assert out.decision == 'yes' and out.labels == ['no', 'yes']


class _TouchOnLoad:
    """Unpickling this creates a file: the side effect a hostile model file would have."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_meta_learner_refuses_pickled_code(tmp_path):
    """A complete model file that also holds code is refused (weights_only), never run."""
    marker, path = tmp_path / 'ran', str(tmp_path / 'evil.pt')
    # Everything a meta-learner needs, so only the refusal of pickled code can stop it.
    torch.save({'features': ['audio/speech'], 'modalities': ['audio'], 'labels': ['no', 'yes'],
                'weight': torch.zeros(2, 2), 'bias': torch.zeros(2),
                'payload': _TouchOnLoad(str(marker))}, path)
    with pytest.raises(ValueError, match='cannot load'):
        make_strategy('meta_learner', {'model_path': path})
    assert not marker.exists(), 'the pickled code ran'
    # The file is hostile for real: loading it the unsafe way runs the payload.
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('name', ['meta_learner', 'attention'])
def test_missing_model_file_is_value_error(name, tmp_path):
    """A missing model file is a configuration error."""
    with pytest.raises(ValueError, match='model file not found'):
        make_strategy(name, {'model_path': str(tmp_path / 'nope.pt')})


def _hand_attention_file(path):
    model = AttentionFusionModel({'audio': 2, 'vision': 2}, 2, 2)
    with torch.no_grad():
        for layer in (model.proj['audio'], model.proj['vision'], model.value, model.head):
            layer.weight.copy_(torch.eye(2))
            layer.bias.zero_()
        model.key.weight.copy_(torch.eye(2))
        model.query.copy_(torch.tensor([1.0, 0.0]))
    return save_attention_model(model, ['a', 'b'], str(path))


def test_attention_hand_computed(tmp_path):
    """Identity projections, query e1: attention softmax(score + log weight), head identity."""
    path = _hand_attention_file(tmp_path / 'att.pt')
    eng = engine('attention', {'model_path': path})
    eng.update(inp('audio', 1, 1.0, data=[1.0, 0.0]), 1.0)
    out = eng.update(inp('vision', 1, 1.0, data=[0.0, 1.0]), 1.0).output
    # scores: audio 1/sqrt(2), vision 0; weights 1 (no scores, fresh): attn_a = 0.6697615
    # context = [0.6697615, 0.3302385] -> p_a = sigmoid(0.3395231) = 0.5840747
    assert out.attention == pytest.approx({'audio': 0.6697615, 'vision': 0.3302385}, rel=1e-5)
    np.testing.assert_allclose(out.scores, [0.5840747, 0.4159253], rtol=1e-5)
    assert out.decision == 'a'
    # Audio aged 0.5 s (exp decay, tau 1): bias -0.5 -> attn_a = sigmoid(0.2071068) = 0.5515924
    # p_a = sigmoid(2 * 0.5515924 - 1) = 0.5257733
    out = eng.update(inp('vision', 2, 1.5, data=[0.0, 1.0]), 1.5).output
    assert out.attention['audio'] == pytest.approx(0.5515924, rel=1e-5)
    np.testing.assert_allclose(out.scores[0], 0.5257733, rtol=1e-5)
    # Audio stale: masked out entirely.
    out = eng.update(inp('vision', 3, 4.0, data=[0.0, 1.0]), 4.0).output
    assert out.attention == {'audio': 0.0, 'vision': 1.0}


def test_attention_rejects_wrong_embedding_length(tmp_path):
    """An embedding whose length does not fit the model is rejected, not crashed on."""
    eng = engine('attention', {'model_path': _hand_attention_file(tmp_path / 'att.pt')})
    assert eng.update(inp('audio', 1, 1.0, data=[1.0, 2.0, 3.0]), 1.0).reason == 'wrong_dimension'
    with pytest.raises(ValueError, match='model expects 2 values for audio'):
        engine('attention', {'model_path': _hand_attention_file(tmp_path / 'att.pt')},
               [ModalityConfig('audio', dim=3), ModalityConfig('vision')])


def _random_attention_file(path, dims, d_model=8):
    torch.manual_seed(3)
    return save_attention_model(AttentionFusionModel(dims, d_model, 3), ['x', 'y', 'z'],
                                str(path))


def _snapshot(result):
    return (result.labels, result.scores.tolist(), result.decision, result.confidence,
            result.valid, [(m.present, m.stale, m.weight) for m in result.modalities],
            result.attention)


@pytest.mark.parametrize('strategy', ['weighted_average', 'log_linear', 'speaking_to_robot',
                                      'meta_learner', 'attention'])
def test_delta_and_full_recompute_agree(strategy, meta_file, tmp_path):
    """Recomputing only the arriving modality gives exactly the outputs of recomputing all."""
    names = ['audio', 'vision', 'imu']
    dims = {'audio': 5, 'vision': 3, 'imu': 4}
    params = {'meta_learner': {'model_path': meta_file},
              'attention': {'model_path': _random_attention_file(tmp_path / 'r.pt', dims)}}
    mods = [ModalityConfig(n, max_age=0.5, decay=d) for n, d in
            zip(names, ['exponential', 'linear', 'none'])]
    delta = engine(strategy, params.get(strategy), mods)
    full = engine(strategy, params.get(strategy), mods, full_recompute=True)
    rng = np.random.default_rng(11)
    vocab = ['speech', 'face', 'mouth_moving', 'music']
    now, seqs = 0.0, dict.fromkeys(names, 0)
    for _ in range(300):
        now += rng.exponential(0.05)
        name = names[rng.integers(3)]
        seqs[name] += 1
        labels = list(rng.choice(vocab, rng.integers(1, 4), replace=False))
        arrival = inp(name, seqs[name], now - rng.uniform(0, 0.05), labels,
                      rng.uniform(0, 1, len(labels)), rng.normal(size=dims[name]))
        a, b = delta.update(arrival, now), full.update(arrival, now)
        assert a.accepted == b.accepted and a.reason == b.reason
        if a.output is not None:
            assert _snapshot(a.output) == _snapshot(b.output)


def _separable_scores(n, rng):
    samples, labels = [], []
    for i in range(n):
        yes = i % 2 == 0
        sample = {'audio': {'speech': np.clip(rng.normal(0.75 if yes else 0.25, 0.12), 0, 1)},
                  'vision': {'face': np.clip(rng.normal(0.7 if yes else 0.3, 0.12), 0, 1)}}
        if rng.uniform() < 0.2:
            del sample[['audio', 'vision'][rng.integers(2)]]
        samples.append(sample)
        labels.append('yes' if yes else 'no')
    return samples, labels


@pytest.mark.parametrize('suffix,hidden', [('.npz', 0), ('.pt', 8)])
def test_trained_meta_learner_classifies(tmp_path, suffix, hidden):
    """A meta-learner trained on separable scores classifies held-out data through the engine."""
    rng = np.random.default_rng(5)
    samples, labels = _separable_scores(400, rng)
    path = train_meta_learner(samples, labels, str(tmp_path / f'm{suffix}'), hidden=hidden)
    eng = engine('meta_learner', {'model_path': path})
    test_samples, test_labels = _separable_scores(200, rng)
    hits = 0
    for sample, label in zip(test_samples, test_labels):
        eng.reset()
        for seq, (modality, scores) in enumerate(sample.items()):
            out = eng.update(inp(modality, seq, 1.0, list(scores), list(scores.values())),
                             1.0).output
        hits += out.decision == label
    assert hits / len(test_labels) > 0.9


def _separable_embeddings(n, rng):
    centres = {'audio': rng.normal(size=(2, 8)), 'vision': rng.normal(size=(2, 6))}
    samples, labels = [], []
    for i in range(n):
        k = i % 2
        sample = {m: c[k] + rng.normal(0, 0.5, c.shape[1]) for m, c in centres.items()}
        if rng.uniform() < 0.3:
            del sample[['audio', 'vision'][rng.integers(2)]]
        samples.append(sample)
        labels.append(['left', 'right'][k])
    return samples, labels


def test_trained_attention_classifies(tmp_path):
    """An attention model trained on separable embeddings classifies held-out data."""
    rng = np.random.default_rng(9)
    samples, labels = _separable_embeddings(600, rng)
    path = train_attention(samples[:400], labels[:400], str(tmp_path / 'att.pt'), d_model=16,
                           epochs=200)
    eng = engine('attention', {'model_path': path})
    hits = 0
    for sample, label in zip(samples[400:], labels[400:]):
        eng.reset()
        for seq, (modality, data) in enumerate(sample.items()):
            out = eng.update(inp(modality, seq, 1.0, data=data), 1.0).output
        hits += out.decision == label
        assert set(out.attention) == {'audio', 'vision'}
        assert sum(out.attention.values()) == pytest.approx(1.0, rel=1e-5)
    assert hits / 200 > 0.9
