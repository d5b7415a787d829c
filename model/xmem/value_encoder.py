"""Value encoder: (image, object masks, f16, hidden) → per-object value and new hidden (spec 1.5)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from model.xmem.fusion import FeatureFusionBlock
from model.xmem.gates import gate_transform, gru_update
from model.xmem.group import distribute_cat
from model.xmem.resnet import F16_DIM, BasicBlock, make_layer


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
