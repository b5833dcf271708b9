"""Standard CIFAR augmentation (4-pixel pad + random crop, horizontal flip) on a whole batch.

Done with one gather on the batch's own device: a per-sample Python loop or a CPU DataLoader
transform would dominate the step time of small models on a GPU.
"""

from __future__ import annotations

import torch

PAD = 4


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly crop (after zero padding by 4) and horizontally flip each image of ``x`` (B, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects a 4D image batch (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    gdev = generator.device if generator is not None else torch.device("cpu")
    off = torch.randint(0, 2 * PAD + 1, (2, b), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(b, generator=generator, device=gdev) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = off[0, :, None] + ar_h                                        # (B, H)
    cols = off[1, :, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (B, W), reversed if flipped
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
