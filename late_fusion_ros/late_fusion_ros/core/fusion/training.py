# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
Training of the learned strategies: pure functions from arrays to the files they load.

Samples describe one moment of fused state each: for the meta-learner, the fresh
modalities' named scores; for attention, the fresh modalities' embeddings. A modality left
out of a sample is absent (or stale) at that moment. Training is full-batch Adam with a
fixed seed, so the same data gives the same file.
"""

from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .attention_model import AttentionFusionModel, save_attention_model
from .learned import meta_feature_vector


def _classes(labels: Sequence[str]) -> List[str]:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f'need at least two classes to train, got {classes}')
    return classes


def _fit(model: nn.Module, forward, targets: torch.Tensor, epochs: int, lr: float,
         weight_decay: float) -> None:
    """Minimise cross-entropy of forward() against targets."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(forward(), targets)
        loss.backward()
        optimiser.step()
    model.eval()


def train_meta_learner(samples: Sequence[Mapping[str, Mapping[str, float]]],
                       labels: Sequence[str], path: str, hidden: int = 0, epochs: int = 500,
                       lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0) -> str:
    """
    Train the meta_learner strategy and write its weights to `path`; return `path`.

    samples[i] maps each fresh modality to {label: score}; labels[i] is the class to
    predict. Features are every (modality, label) seen, sorted, plus one presence indicator
    per modality. `hidden` > 0 adds a ReLU layer. A `path` ending in .npz is written with
    numpy (plain arrays), any other with torch.save (tensors and string lists).
    """
    if len(samples) != len(labels) or not samples:
        raise ValueError('need as many labels as samples, and at least one sample')
    classes = _classes(labels)
    modalities = sorted({m for s in samples for m in s})
    features = sorted({f'{m}/{label}' for s in samples for m, scores in s.items()
                       for label in scores})
    x = torch.tensor(np.stack([meta_feature_vector(features, modalities, s) for s in samples]),
                     dtype=torch.float32)
    y = torch.tensor([classes.index(label) for label in labels])
    torch.manual_seed(seed)
    layers = [nn.Linear(x.shape[1], hidden), nn.ReLU()] if hidden else []
    layers.append(nn.Linear(hidden or x.shape[1], len(classes)))
    net = nn.Sequential(*layers)
    _fit(net, lambda: net(x), y, epochs, lr, weight_decay)
    arrays: Dict[str, object] = {
        'features': features, 'modalities': modalities, 'labels': classes,
        'weight': net[-1].weight.detach(), 'bias': net[-1].bias.detach()}
    if hidden:
        arrays.update(hidden_weight=net[0].weight.detach(), hidden_bias=net[0].bias.detach())
    if path.endswith('.npz'):
        np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    else:
        torch.save(arrays, path)
    return path


def train_attention(samples: Sequence[Mapping[str, np.ndarray]], labels: Sequence[str],
                    path: str, d_model: int = 32, epochs: int = 300, lr: float = 0.01,
                    weight_decay: float = 1e-4, modality_dropout: float = 0.2,
                    seed: int = 0) -> str:
    """
    Train the attention strategy and write its model file to `path`; return `path`.

    samples[i] maps each fresh modality to its embedding (1-D; one length per modality);
    labels[i] is the class. During training each present modality is also hidden with
    probability `modality_dropout` (never all of them), so the model learns to decide from
    whatever subset of modalities is fresh at run time.
    """
    if len(samples) != len(labels) or not samples:
        raise ValueError('need as many labels as samples, and at least one sample')
    if not all(samples):
        raise ValueError('every sample needs at least one modality')
    classes = _classes(labels)
    dims: Dict[str, int] = {}
    for sample in samples:
        for modality, data in sample.items():
            if dims.setdefault(modality, int(np.size(data))) != np.size(data):
                raise ValueError(f'{modality}: embeddings of different lengths')
    names = sorted(dims)
    inputs = {m: torch.tensor(np.stack([np.asarray(s.get(m, np.zeros(dims[m])), np.float32)
                                        .reshape(-1) for s in samples])) for m in names}
    present = torch.tensor([[m in s for m in names] for s in samples])
    y = torch.tensor([classes.index(label) for label in labels])
    torch.manual_seed(seed)
    model = AttentionFusionModel({m: dims[m] for m in names}, d_model, len(classes))

    def forward():
        keep = present & (torch.rand(present.shape) >= modality_dropout)
        # Rows that lost every modality keep their original presence.
        keep = torch.where(keep.any(1, keepdim=True), keep, present)
        bias = torch.zeros(keep.shape).masked_fill(~keep, float('-inf'))
        return model(inputs, bias)[0]

    _fit(model, forward, y, epochs, lr, weight_decay)
    return save_attention_model(model, classes, path)
