"""The MNIST-1D reference CNN (Greydanus 2020, ``mnist1d`` package, ``ConvBase``).

Kept layer-for-layer identical to the reference so that results compare with the MNIST-1D
literature: three convolutions (k=5 stride 1, then two k=3 stride 2) with ReLU, then one linear
layer. For the standard length-40 input and width 64 this is Conv1d(1,64,5) -> Conv1d(64,64,3,s2)
-> Conv1d(64,64,3,s2) -> Linear(640, 10).
"""

from __future__ import annotations

import torch
from torch import nn

from sdd_opt.models import register


def _conv_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class CNN1D(nn.Module):
    """MNIST-1D ConvBase; accepts ``(B, 1, L)`` or ``(B, L)`` inputs."""

    def __init__(self, width: int = 64, length: int = 40, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, width, kernel_size=5, stride=1, padding=2)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        out_len = _conv_out(_conv_out(_conv_out(length, 5, 1, 2), 3, 2, 1), 3, 2, 1)
        self.linear = nn.Linear(width * out_len, num_classes)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.act(self.conv3(x))
        return self.linear(torch.flatten(x, 1))


@register("cnn1d")
def build_cnn1d(width: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``input_shape`` is ``(L,)`` or ``(C, L)``."""
    if len(input_shape) == 1:
        in_channels, length = 1, input_shape[0]
    elif len(input_shape) == 2:
        in_channels, length = input_shape
    else:
        raise ValueError(f"cnn1d expects inputs of shape (L,) or (C, L), got {tuple(input_shape)}")
    return CNN1D(width=width, length=length, in_channels=in_channels, num_classes=num_classes)
