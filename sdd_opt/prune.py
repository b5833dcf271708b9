"""Unstructured magnitude pruning with binary masks (the IMP step).

Masks live beside the model as ``{param_name: float tensor of 0/1}``. They are applied in place
after every optimizer step (one fused ``_foreach_mul_``), so pruned weights stay exactly zero
through momentum and weight decay. The benchmark ``benchmarks/mask_overhead.py`` compares this
with ``torch.nn.utils.prune`` forward hooks.

Pruning computes the number of weights to keep from the *schedule* (``round(n·(1-p)^k)``), not
by removing ``p`` of the rest at every level, so rounding errors never accumulate: after k levels
the sparsity is ``1-(1-p)^k`` within one weight. Sparsity reported anywhere is measured by
counting zeros in the weights.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Masks = dict[str, torch.Tensor]

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


# A layer whose attribute of this name is False is left dense (docs/plugins.md): e.g. a model's first
# or last layer, as some pruning papers do.
EXCLUDE_ATTR = "sdd_opt_prune"


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The ``.weight`` of every conv and linear layer (unless ``layer.sdd_opt_prune = False``);
    biases and norm layers are never pruned."""
    return {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES) and getattr(module, EXCLUDE_ATTR, True) is not False
    }


def full_masks(model: nn.Module) -> Masks:
    return {name: torch.ones_like(p, dtype=p.dtype) for name, p in prunable_parameters(model).items()}


class MaskApplier:
    """Re-applies masks in place with one fused kernel call; cheap enough to run after every step."""

    def __init__(self, model: nn.Module, masks: Masks):
        params = prunable_parameters(model)
        self.params = [params[name] for name in masks]
        # empty_like keeps the parameter's device, dtype and memory format (channels_last conv
        # weights), so the fused multiply runs on matching strides.
        self.masks = [torch.empty_like(params[name]).copy_(masks[name]) for name in masks]

    @torch.no_grad()
    def __call__(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.masks)


def apply_masks(model: nn.Module, masks: Masks) -> None:
    MaskApplier(model, masks)()


@torch.no_grad()
def measured_sparsity(model: nn.Module) -> float:
    """Fraction of prunable weights that are exactly zero, counted from the weights themselves."""
    zeros = total = 0
    for p in prunable_parameters(model).values():
        zeros += int((p == 0).sum())
        total += p.numel()
    return zeros / total if total else 0.0


def density_at(level: int, rate: float) -> float:
    """Fraction of weights left after ``level`` rounds removing ``rate`` of the remaining ones."""
    return (1.0 - rate) ** level


def _keep_topk(scores: torch.Tensor, keep: int) -> torch.Tensor:
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if keep > 0:
        mask[torch.topk(scores.flatten(), keep, sorted=False).indices] = True
    return mask


@torch.no_grad()
def magnitude_prune(
    model: nn.Module,
    masks: Masks,
    density: float,
    scope: Literal["global", "layer"] = "global",
) -> Masks:
    """New masks keeping the ``density`` fraction of weights with the largest magnitude.

    Already-pruned weights score -1 so they are never revived; ties are broken by topk.
    """
    params = prunable_parameters(model)
    names = list(masks)
    new: Masks = {}
    if scope == "layer":
        for name in names:
            p, m = params[name], masks[name].to(params[name].device)
            scores = torch.where(m.bool(), p.abs().float(), torch.full_like(p, -1.0, dtype=torch.float32))
            keep = min(int(round(p.numel() * density)), int(m.sum()))
            new[name] = _keep_topk(scores, keep).view_as(p).to(m.dtype)
        return new
    scores = torch.cat([
        torch.where(masks[n].to(params[n].device).bool(), params[n].abs().float(),
                    torch.full_like(params[n], -1.0, dtype=torch.float32)).flatten()
        for n in names
    ])
    total = scores.numel()
    alive = int(sum(int(masks[n].sum()) for n in names))
    keep = min(int(round(total * density)), alive)
    flat = _keep_topk(scores, keep)
    offset = 0
    for n in names:
        numel = params[n].numel()
        new[n] = flat[offset:offset + numel].view_as(params[n]).to(masks[n].dtype)
        offset += numel
    return new


def levels_keeping_weights(n_weights: int, rate: float, limit: int) -> int:
    """The most levels (up to ``limit``) after which the schedule still keeps at least one of ``n_weights``."""
    k = 0
    while k < limit and int(round(n_weights * density_at(k + 1, rate))) >= 1:
        k += 1
    return k

