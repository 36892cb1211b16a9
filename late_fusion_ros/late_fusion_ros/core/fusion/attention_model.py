# Copyright 2026 late_fusion_ros maintainers
# Licensed under the Apache License, Version 2.0
"""
The attention fusion network (torch), and its file format.

Kept apart from the strategies so that torch is imported only when attention is used. A
model file is one torch.save'd dict {'meta': {'dims': {modality: embedding length},
'd_model': int, 'labels': [str]}, 'state_dict': {...}} of tensors, strings and numbers only,
read with torch.load(weights_only=True): loading never runs code from the file.
"""

import math
import os
import pickle
from typing import Dict, Sequence, Tuple

import torch
from torch import nn


class AttentionFusionModel(nn.Module):
    """
    Attention pooling of one token per modality, then a linear head over the labels.

    token_m = proj_m(x_m) (per-modality Linear, the dominant cost and the cached term);
    score_m = <key(token_m), query> / sqrt(d_model) with a learned query; value_m =
    value(token_m). Attention a = softmax_m(score_m + bias_m) over present tokens, where bias
    is log(weight) of the modality (staleness as an additive log-weight) and -inf for absent
    or stale ones; logits = head(sum_m a_m value_m).
    """

    def __init__(self, dims: Dict[str, int], d_model: int, n_labels: int):
        """Create projections for `dims` (modality -> embedding length) into `d_model`."""
        super().__init__()
        self.names = list(dims)
        self.dims = dict(dims)
        self.proj = nn.ModuleDict({name: nn.Linear(dim, d_model) for name, dim in dims.items()})
        self.query = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)
        self.head = nn.Linear(d_model, n_labels)
        self.scale = 1.0 / math.sqrt(d_model)

    def token(self, name: str, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (attention score, value) of modality `name` for embeddings x (..., dim)."""
        tok = self.proj[name](x)
        return self.key(tok) @ self.query * self.scale, self.value(tok)

    def combine(self, scores: torch.Tensor, values: torch.Tensor,
                bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pool values (..., M, d) by softmax(scores + bias) (..., M); return (logits, attn)."""
        attn = torch.softmax(scores + bias, dim=-1)
        return self.head((attn.unsqueeze(-1) * values).sum(-2)), attn

    def forward(self, inputs: Dict[str, torch.Tensor],
                bias: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Batch form for training: inputs[name] is (B, dim), bias (B, M) in `names` order."""
        scores, values = zip(*(self.token(name, inputs[name]) for name in self.names))
        return self.combine(torch.stack(scores, -1), torch.stack(values, -2), bias)


def _check_meta(meta) -> Tuple[Dict[str, int], int, Sequence[str]]:
    try:
        dims = {str(k): int(v) for k, v in dict(meta['dims']).items()}
        d_model, labels = int(meta['d_model']), [str(x) for x in meta['labels']]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'attention model metadata is malformed: {exc}') from exc
    # ModuleDict keys may not be empty or dotted.
    if not dims or any(not k or '.' in k or v < 1 for k, v in dims.items()):
        raise ValueError(f'attention model dims are malformed: {dims}')
    if d_model < 1 or len(labels) < 2:
        raise ValueError('attention model needs d_model >= 1 and at least two labels')
    return dims, d_model, labels


def save_attention_model(model: AttentionFusionModel, labels: Sequence[str], path: str) -> str:
    """Write `model` and its metadata to `path` in the format load_attention_model reads."""
    d_model = model.query.numel()
    meta = {'dims': dict(model.dims), 'd_model': d_model, 'labels': list(labels)}
    torch.save({'meta': meta, 'state_dict': model.state_dict()}, path)
    return path


def load_attention_model(path: str) -> Tuple[AttentionFusionModel, Sequence[str]]:
    """Load a model file safely (weights_only); return (model in eval mode, labels)."""
    if not os.path.isfile(path):
        raise ValueError(f'attention model file not found: {path!r}')
    try:
        blob = torch.load(path, map_location='cpu', weights_only=True)
        dims, d_model, labels = _check_meta(blob['meta'])
        model = AttentionFusionModel(dims, d_model, len(labels))
        model.load_state_dict(blob['state_dict'])
    except (KeyError, TypeError, RuntimeError, OSError, EOFError,
            pickle.UnpicklingError) as exc:
        # A pickle that is not plain weights lands here too (weights_only refuses it).
        raise ValueError(f'cannot load attention model {path!r}: {exc}') from exc
    return model.eval(), labels
