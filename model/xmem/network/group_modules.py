"""Group tensors (B×N×C×h×w: one copy of a feature map per object) and the layers acting on them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GConv2d(nn.Conv2d):
    """A plain Conv2d applied to every object of a group tensor (B and N flattened together)."""

    def forward(self, g: Tensor) -> Tensor:
        b, n = g.shape[:2]
        return super().forward(g.flatten(0, 1)).unflatten(0, (b, n))


class GroupResBlock(nn.Module):
    """Pre-activation residual block without normalisation; the projection skip is a 3×3 conv."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        # Registration order (downsample, conv1, conv2) fixes the checkpoint key order.
        self.downsample = GConv2d(in_dim, out_dim, 3, padding=1) if in_dim != out_dim else None
        self.conv1 = GConv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = GConv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, g: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        skip = g if self.downsample is None else self.downsample(g)
        return out + skip


def distribute_cat(x: Tensor, g: Tensor) -> Tensor:
    """Concatenate a per-image feature x (B×C×h×w) in front of every object's channels of g."""
    x = x.unsqueeze(1).expand(-1, g.shape[1], -1, -1, -1)
    return torch.cat([x, g], dim=2)


def distribute_add(x: Tensor, g: Tensor) -> Tensor:
    """Add a per-image feature x (B×C×h×w) to every object of g."""
    return x.unsqueeze(1) + g


def upsample_groups(g: Tensor, ratio: int = 2) -> Tensor:
    """Bilinear (align_corners=False) upsampling of a group tensor."""
    b, n = g.shape[:2]
    out = F.interpolate(g.flatten(0, 1), scale_factor=ratio, mode="bilinear", align_corners=False)
    return out.unflatten(0, (b, n))


def downsample_groups(g: Tensor, ratio: float) -> Tensor:
    """Area downsampling of a group tensor (exact average pooling for sizes divisible by 1/ratio)."""
    b, n = g.shape[:2]
    return F.interpolate(g.flatten(0, 1), scale_factor=ratio, mode="area").unflatten(0, (b, n))
