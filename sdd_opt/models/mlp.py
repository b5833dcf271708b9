"""A two-hidden-layer fully connected network of adjustable width (the model-wise double-descent
baseline of Nakkiran et al. 2019 style width sweeps): flatten -> w -> w -> C with ReLU."""

from __future__ import annotations

import math

import torch
from torch import nn

from sdd_opt.models import register


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            prev = h
        layers.append(nn.Linear(prev, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.flatten(x, 1))


@register("mlp")
def build_mlp(width: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(math.prod(input_shape), (width, width), num_classes)
