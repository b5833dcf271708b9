"""VGG-16 with BatchNorm for CIFAR (Simonyan & Zisserman 2015, CIFAR variant of Kuang Liu's
``pytorch-cifar`` used by He et al. 2022): 13 3x3 convolutions with BatchNorm and ReLU, five 2x2
max-pools, one linear classifier. Channel counts are scaled by ``width / 64`` (64: the standard model).

After the features an adaptive average pool to 1x1 is applied: on 32x32 inputs the feature map is
already 1x1 so this is the identity (as Liu's ``AvgPool2d(1)``); it lets other sizes run too.
"""

from __future__ import annotations

import torch
from torch import nn

from sdd_opt.models import register

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    def __init__(self, cfg: tuple[int | str, ...], width: int = 64, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = max(1, int(v) * width // 64)
                layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register("vgg16")
def build_vgg16(width: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``input_shape`` is ``(C, H, W)`` with H, W >= 32 (five halvings)."""
    if len(input_shape) != 3:
        raise ValueError(f"vgg16 expects inputs of shape (C, H, W), got {tuple(input_shape)}")
    return VGG(VGG16_CFG, width=width, in_channels=input_shape[0], num_classes=num_classes)
