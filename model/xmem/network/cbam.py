"""CBAM attention (channel gate, then spatial gate) used inside the feature fusion blocks."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn


class ChannelGate(nn.Module):
    """Scale channels by σ(MLP(avg-pool) + MLP(max-pool)), the MLP shared by both pools."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Index positions 1 and 3 carry the weights: keys mlp.1.* and mlp.3.*.
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        attention = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * torch.sigmoid(attention)[:, :, None, None]


class SpatialGate(nn.Module):
    """Scale pixels by σ(conv7×7([max over C, mean over C]))."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Sequential(OrderedDict(conv=nn.Conv2d(2, 1, 7, padding=3)))

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """CBAM on a plain B×C×h×w tensor (callers flatten group tensors first)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels)  # attribute names are checkpoint keys
        self.SpatialGate = SpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.SpatialGate(self.ChannelGate(x))
