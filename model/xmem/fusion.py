"""Feature fusion block: merges a per-image feature into per-object group features."""
from __future__ import annotations

from torch import Tensor, nn

from model.xmem.cbam import CBAM
from model.xmem.group import GroupResBlock, distribute_cat


class FeatureFusionBlock(nn.Module):
    """cat[x, g] → GroupResBlock → (+ CBAM residual) → GroupResBlock."""

    def __init__(self, x_in_dim: int, g_in_dim: int, g_mid_dim: int, g_out_dim: int) -> None:
        super().__init__()
        self.block1 = GroupResBlock(x_in_dim + g_in_dim, g_mid_dim)
        self.attention = CBAM(g_mid_dim)
        self.block2 = GroupResBlock(g_mid_dim, g_out_dim)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        g = self.block1(distribute_cat(x, g))
        r = self.attention(g.flatten(0, 1)).view_as(g)
        return self.block2(g + r)
