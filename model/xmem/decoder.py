"""Decoder: memory readout + sensory memory + skip features → per-object logits (spec 1.6)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.xmem.fusion import FeatureFusionBlock
from model.xmem.gates import gate_transform, gru_update
from model.xmem.group import (
    GConv2d,
    GroupResBlock,
    distribute_add,
    downsample_groups,
    upsample_groups,
)
from model.xmem.resnet import F4_DIM, F8_DIM, F16_DIM


class HiddenUpdater(nn.Module):
    """Normal update of the sensory memory from the decoder features at 1/16, 1/8 and 1/4."""

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.g16_conv = GConv2d(g_dims[0], mid_dim, 1)
        self.g8_conv = GConv2d(g_dims[1], mid_dim, 1)
        self.g4_conv = GConv2d(g_dims[2], mid_dim, 1)
        self.transform = gate_transform(mid_dim, hidden_dim)

    def forward(self, g16: Tensor, g8: Tensor, g4: Tensor, h: Tensor) -> Tensor:
        g = (
            self.g16_conv(g16)
            + self.g8_conv(downsample_groups(g8, 1 / 2))
            + self.g4_conv(downsample_groups(g4, 1 / 4))
        )
        return gru_update(self.transform(torch.cat([g, h], dim=2)), h)


class UpsampleBlock(nn.Module):
    """g ×2 (bilinear) + conv(skip feature), then a GroupResBlock."""

    def __init__(self, skip_dim: int, g_up_dim: int, g_out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, g_up_dim, 3, padding=1)
        self.out_conv = GroupResBlock(g_up_dim, g_out_dim)

    def forward(self, skip: Tensor, g: Tensor) -> Tensor:
        return self.out_conv(distribute_add(self.skip_conv(skip), upsample_groups(g, 2)))


class Decoder(nn.Module):
    """f16 fused with cat[readout, hidden], upsampled with f8 and f4 skips, one logit per object."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fuser = FeatureFusionBlock(F16_DIM, value_dim + hidden_dim, 512, 512)
        # +1: the 1/4-scale logits are appended to g4 before the hidden update.
        self.hidden_update = HiddenUpdater((512, 256, 256 + 1), 256, hidden_dim) if hidden_dim > 0 else None
        self.up_16_8 = UpsampleBlock(F8_DIM, 512, 256)
        self.up_8_4 = UpsampleBlock(F4_DIM, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, padding=1)

    def forward(
        self,
        f16: Tensor,
        f8: Tensor,
        f4: Tensor,
        memory_readout: Tensor,
        h: Tensor | None,
        h_out: bool = True,
    ) -> tuple[Tensor | None, Tensor]:
        """→ (hidden: new if h_out and sensory memory exists, else the input; logits B×N×H×W)."""
        b, n = memory_readout.shape[:2]
        g = memory_readout if self.hidden_update is None else torch.cat([memory_readout, h], dim=2)
        g16 = self.fuser(f16, g)
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits = self.pred(F.relu(g4.flatten(0, 1)))  # (B·N)×1×H/4×W/4

        if h_out and self.hidden_update is not None:
            g4 = torch.cat([g4, logits.unflatten(0, (b, n))], dim=2)
            h = self.hidden_update(g16, g8, g4, h)

        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return h, logits.view(b, n, *logits.shape[-2:])
