"""LeNet-300-100 (LeCun et al. 1998), the fully connected MNIST network of the lottery-ticket
(Frankle & Carbin 2019) and sparse-double-descent (He et al. 2022) papers: flatten -> 300 -> 100 -> C.

Its hidden sizes are fixed by definition, so ``width`` is ignored.
"""

from __future__ import annotations

import math

from torch import nn

from sdd_opt.models import register
from sdd_opt.models.mlp import MLP


@register("lenet300")
def build_lenet300(width: int, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``width`` is ignored: LeNet-300-100 always has hidden layers of 300 and 100 units."""
    del width
    return MLP(math.prod(input_shape), (300, 100), num_classes)
