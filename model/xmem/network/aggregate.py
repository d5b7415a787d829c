"""Soft aggregation of independent per-object probabilities into N+1 classes (docs/network.md, "Soft aggregation")."""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-7


def aggregate(prob: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Per-object probabilities → (logits with the background channel first, softmax probs).

    Background = Π(1 − p_i). Computed in float32 with autocast off: in fp16 the 1e-7 clamp
    rounds to 0/1 and the logit becomes ±inf.
    """
    with torch.autocast(device_type=prob.device.type, enabled=False):
        prob = prob.float()
        background = torch.prod(1 - prob, dim=dim, keepdim=True)
        new_prob = torch.cat([background, prob], dim=dim).clamp(_EPS, 1 - _EPS)
        logits = torch.log(new_prob / (1 - new_prob))
        return logits, torch.softmax(logits, dim=dim)
