"""The GRU-style gate shared by the sensory-memory (hidden state) updaters."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from model.xmem.group import GConv2d


def gate_transform(in_dim: int, hidden_dim: int) -> GConv2d:
    """The 3×3 conv cat[input, h] (in_dim + CH) → 3·CH that feeds `gru_update`."""
    transform = GConv2d(in_dim + hidden_dim, hidden_dim * 3, 3, padding=1)
    nn.init.xavier_normal_(transform.weight)
    return transform


def gru_update(values: Tensor, h: Tensor) -> Tensor:
    """h' = f·h·(1−u) + u·n from the transform output split into (f, u, n) along channels.

    Deliberately non-standard (the candidate n is not reset-gated): it reproduces the
    original network so that its weights behave identically.
    """
    forget_gate, update_gate, candidate = values.split(h.shape[2], dim=2)
    forget_gate = torch.sigmoid(forget_gate)
    update_gate = torch.sigmoid(update_gate)
    return forget_gate * h * (1 - update_gate) + update_gate * torch.tanh(candidate)
