"""Tiny generated datasets for fast tests and smoke runs without any download.

Fixed seeds: the data are the same on every machine, like a downloaded set would be.
"""

from __future__ import annotations

import torch


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor):
    dims = [0] + list(range(2, x_train.dim()))  # per channel
    mean, std = x_train.mean(dims, keepdim=True), x_train.std(dims, keepdim=True)
    return (x_train - mean) / std, (x_test - mean) / std


def make_synthetic1d(n_train: int = 1200, n_test: int = 300, length: int = 40, num_classes: int = 10,
                     noise: float = 0.6, seed: int = 1234):
    """Smooth random class templates, randomly shifted by up to 3 steps, plus Gaussian noise (shape (1, 40))."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(num_classes, 1, 10, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=length, mode="linear", align_corners=True)
    n = n_train + n_test
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    shifts = torch.randint(-3, 4, (n,), generator=g)
    idx = (torch.arange(length)[None, :] - shifts[:, None]) % length
    x = templates[y, 0].gather(1, idx) + noise * torch.randn(n, length, generator=g)
    x = x.unsqueeze(1)
    x_train, x_test = _standardize(x[:n_train], x[n_train:])
    return x_train, y[:n_train], x_test, y[n_train:]


def make_synthetic_images(n_train: int = 600, n_test: int = 200, size: int = 32, num_classes: int = 10,
                          noise: float = 0.5, seed: int = 4321):
    """Per-class colour and stripe pattern, randomly translated, plus noise (shape (3, 32, 32)).

    Colour and stripe frequency survive crops and horizontal flips, so augmentation keeps labels valid.
    """
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(num_classes, 3, generator=g) * 2 - 1
    freq = torch.arange(num_classes) % 5 + 1                 # stripe frequency
    vertical = (torch.arange(num_classes) // 5) % 2 == 1     # stripe orientation
    n = n_train + n_test
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    pos = torch.arange(size, dtype=torch.float32)
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    wave = torch.sin(2 * torch.pi * freq[y, None] * pos[None, :] / size + phase[:, None])  # (n, size)
    pattern = torch.where(vertical[y, None, None], wave[:, None, :].expand(n, size, size),
                          wave[:, :, None].expand(n, size, size))
    x = 0.7 * colours[y][:, :, None, None] + 0.5 * pattern[:, None] + noise * torch.randn(n, 3, size, size, generator=g)
    x_train, x_test = _standardize(x[:n_train], x[n_train:])
    return x_train, y[:n_train], x_test, y[n_train:]


def load_synthetic1d(data_dir: str):
    from sdd_opt.data import RawData

    return RawData(*make_synthetic1d(), num_classes=10, augment_default=False)


def load_synthetic_images(data_dir: str):
    from sdd_opt.data import RawData

    return RawData(*make_synthetic_images(), num_classes=10, augment_default=False)
