"""The XMem blocks that are neither backbone nor group primitives (reference: model/modules.py).

The GRU-style gates of the sensory memory, the feature fusion block, the key projection, the value
encoder and the decoder, in dependency order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.xmem.network.cbam import CBAM
from model.xmem.network.group_modules import (
    GConv2d,
    GroupResBlock,
    distribute_add,
    distribute_cat,
    downsample_groups,
    upsample_groups,
)
from model.xmem.network.resnet import F4_DIM, F8_DIM, F16_DIM, BasicBlock, make_layer

# --- The GRU-style gate shared by the sensory-memory (hidden state) updaters.


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


# --- Feature fusion block: merges a per-image feature into per-object group features.


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


# --- Key projection: f16 → key, shrinkage and selection (docs/network.md, "Key projection").


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


# --- Value encoder: (image, object masks, f16, hidden) → per-object value and new hidden
# (docs/network.md, "Value encoder").


class HiddenReinforcer(nn.Module):
    """Deep update of the sensory memory from the freshly encoded value."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.transform = gate_transform(value_dim, hidden_dim)

    def forward(self, value: Tensor, h: Tensor) -> Tensor:
        return gru_update(self.transform(torch.cat([value, h], dim=2)), h)


def other_objects(masks: Tensor) -> Tensor:
    """others_i = Σ_{j≠i} mask_j for B×N×H×W masks (zeros when N = 1)."""
    n = masks.shape[1]
    if n == 1:
        return torch.zeros_like(masks)
    # Summed explicitly over j ≠ i (not total − mask_i) so the float result matches the reference.
    return torch.stack([masks[:, [j for j in range(n) if j != i]].sum(dim=1) for i in range(n)], dim=1)


class ValueEncoder(nn.Module):
    """ResNet-18 trunk up to layer3 on (R, G, B, mask, others), fused with f16."""

    def __init__(self, value_dim: int, hidden_dim: int, single_object: bool = False) -> None:
        super().__init__()
        self.single_object = single_object
        in_channels = 4 if single_object else 5
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(BasicBlock, 64, 64, 2, stride=1)
        self.layer2 = make_layer(BasicBlock, 64, 128, 2, stride=2)
        self.layer3 = make_layer(BasicBlock, 128, 256, 2, stride=2)
        self.fuser = FeatureFusionBlock(F16_DIM, 256, value_dim, value_dim)
        self.hidden_reinforce = HiddenReinforcer(value_dim, hidden_dim) if hidden_dim > 0 else None

    def forward(
        self, image: Tensor, f16: Tensor, h: Tensor | None, masks: Tensor, deep_update: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        b, n = masks.shape[:2]
        if self.single_object:
            g = masks.unsqueeze(2)
        else:
            g = torch.stack([masks, other_objects(masks)], dim=2)
        g = distribute_cat(image, g).flatten(0, 1)  # (B·N)×(3+1|2)×H×W

        g = self.maxpool(self.relu(self.bn1(self.conv1(g))))
        g = self.layer3(self.layer2(self.layer1(g)))
        value = self.fuser(f16, g.unflatten(0, (b, n)))

        if deep_update and self.hidden_reinforce is not None:
            h = self.hidden_reinforce(value, h)
        return value, h


# --- Decoder: memory readout + sensory memory + skip features → per-object logits (docs/network.md, "Decoder").


class HiddenUpdater(nn.Module):
    """Normal update of the sensory memory from the decoder features at 1/16, 1/8 and 1/4."""

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.g16_conv = GConv2d(g_dims[0], mid_dim, 1)
        self.g8_conv = GConv2d(g_dims[1], mid_dim, 1)
        self.g4_conv = GConv2d(g_dims[2], mid_dim, 1)
        self.transform = gate_transform(mid_dim, hidden_dim)

    def forward(self, g16: Tensor, g8: Tensor, g4: Tensor, h: Tensor) -> Tensor:
        g = self.g16_conv(g16) + self.g8_conv(downsample_groups(g8, 1 / 2)) + self.g4_conv(downsample_groups(g4, 1 / 4))
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
