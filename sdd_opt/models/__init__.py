"""Model registry: architecture name -> builder ``(width, input_shape, num_classes) -> nn.Module``.

The five architectures are the ones used in the sparse-double-descent literature (He et al. 2022,
"Sparse Double Descent: Where Network Pruning Aggravates Overfitting"; Quétu & Tartaglione 2023)
plus the MNIST-1D reference CNN. Models contain no pruning logic: the pruning code masks the
``.weight`` of every ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear``; biases and norm layers are left alone.
All layers use PyTorch's default initialization, so a model is reproducible under ``torch.manual_seed``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``f(width, input_shape, num_classes)`` to :data:`MODELS` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = fn
        return fn

    return deco


def build_model(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``cfg.name`` (a :class:`~sdd_opt.config.ModelConfig`) for inputs of shape ``(B, *input_shape)``.

    Returns a module mapping a float batch to logits of shape ``(B, num_classes)``. Initialization
    draws from torch's global RNG: seed it before calling for reproducible weights.
    """
    if cfg.name not in MODELS:  # an import path or entry point (sdd_opt.plugins, docs/plugins.md)
        from sdd_opt.errors import UserError
        from sdd_opt.plugins import build_model as build_plugin
        from sdd_opt.plugins import is_plugin

        if not is_plugin("model", cfg.name):
            raise UserError(f"unknown model {cfg.name!r}; choose one of {', '.join(sorted(MODELS))}")
        return build_plugin(cfg.name, dict(cfg.model_extra or {}), int(cfg.width),
                            tuple(int(s) for s in input_shape), int(num_classes))
    return MODELS[cfg.name](width=int(cfg.width), input_shape=tuple(int(s) for s in input_shape),
                            num_classes=int(num_classes))


# Import the architectures so that they register themselves (they depend on torch only).
from sdd_opt.models import cnn1d, lenet, mlp, resnet, vgg  # noqa: E402,F401

__all__ = ["MODELS", "register", "build_model"]
