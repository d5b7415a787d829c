"""Key projection: f16 → key, shrinkage and selection (spec 1.4)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class KeyProjection(nn.Module):
    """Three 3×3 convs on f16: key (CK), shrinkage s = d² + 1 ≥ 1, selection e = σ(·) ∈ (0, 1)."""

    def __init__(self, in_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(self.key_proj.bias)

    def forward(
        self, x: Tensor, need_shrinkage: bool, need_selection: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        # d² is squared in float32: under fp16 autocast |d| > 255 would overflow to inf.
        shrinkage = self.d_proj(x).float() ** 2 + 1 if need_shrinkage else None
        selection = torch.sigmoid(self.e_proj(x)) if need_selection else None
        return self.key_proj(x), shrinkage, selection
