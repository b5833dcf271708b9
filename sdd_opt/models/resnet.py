"""CIFAR ResNet-18 as used by He et al. 2022 (sparse double descent), from Kuang Liu's
``pytorch-cifar``: 3x3 stride-1 stem and no max-pool (32x32 inputs keep their resolution),
BasicBlocks [2, 2, 2, 2] with widths w, 2w, 4w, 8w (w=64 is the standard model), BatchNorm,
global average pooling and one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from sdd_opt.models import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_blocks: tuple[int, ...], width: int = 64, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        in_planes = width
        stages = []
        for i, n in enumerate(num_blocks):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride=(1 if i == 0 or j > 0 else 2)))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


@register("resnet18")
def build_resnet18(width: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``input_shape`` is ``(C, H, W)``; ``width`` is the stem/first-stage channel count (64 standard)."""
    if len(input_shape) != 3:
        raise ValueError(f"resnet18 expects inputs of shape (C, H, W), got {tuple(input_shape)}")
    return ResNet((2, 2, 2, 2), width=width, in_channels=input_shape[0], num_classes=num_classes)
