"""torchvision-style ResNet blocks and the ResNet-50 key-encoder trunk (docs/network.md, "Key encoder").

Only the architecture: no ImageNet weights are downloaded (the XMem checkpoint holds them).
"""

from __future__ import annotations

from torch import Tensor, nn

F16_DIM, F8_DIM, F4_DIM = 1024, 512, 256  # channels of the key encoder's outputs


def _downsample(in_dim: int, out_dim: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, stride=stride, bias=False), nn.BatchNorm2d(out_dim))


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3×3 convs."""

    expansion = 1

    def __init__(self, in_dim: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_dim != planes
        self.downsample = _downsample(in_dim, planes, stride) if needs_projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """ResNet-50 v1.5 block: 1×1 → 3×3 (carries the stride) → 1×1 expanding ×4."""

    expansion = 4

    def __init__(self, in_dim: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_dim = planes * self.expansion
        self.conv1 = nn.Conv2d(in_dim, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_dim, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_dim)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_dim != out_dim
        self.downsample = _downsample(in_dim, out_dim, stride) if needs_projection else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


def make_layer(
    block: type[BasicBlock] | type[Bottleneck], in_dim: int, planes: int, blocks: int, stride: int
) -> nn.Sequential:
    """A ResNet stage: the first block carries the stride (and the projection skip)."""
    layers = [block(in_dim, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class KeyEncoder(nn.Module):
    """ResNet-50 up to layer3: RGB (ImageNet-normalised) → f16 (1024), f8 (512), f4 (256)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res2 = make_layer(Bottleneck, 64, 64, 3, stride=1)  # torchvision's layer1
        self.layer2 = make_layer(Bottleneck, 256, 128, 4, stride=2)
        self.layer3 = make_layer(Bottleneck, 512, 256, 6, stride=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4
