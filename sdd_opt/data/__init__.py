"""Datasets as whole in-memory tensors, with a validation split and seeded label noise.

Loading is split in two: a registry loader returns the raw, deterministic train/test tensors, and
:func:`load_data` applies everything that depends on the run (subsampling, validation split, label
noise), each from its own seeded stream so changing one knob does not reshuffle the others.
This module imports neither torch nor torchvision at import time: the config validator imports
``DATASETS`` and should stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Callable, Optional, Protocol

from sdd_opt.errors import UserError

if TYPE_CHECKING:
    import torch


class DataSettings(Protocol):
    """What :func:`load_data` reads: the run config's ``data`` section (``config.DataConfig``, whose
    validator imports ``DATASETS`` from here, so this module does not import the config)."""

    name: str
    data_dir: str
    train_size: Optional[int]
    val_fraction: float
    val_labels: str
    noise: float
    noise_kind: str
    augment: Optional[bool]


@dataclass
class RawData:
    """What a registry loader returns: the fixed train/test tensors of a dataset."""

    x_train: "torch.Tensor"
    y_train: "torch.Tensor"
    x_test: "torch.Tensor"
    y_test: "torch.Tensor"
    num_classes: int
    augment_default: bool


@dataclass
class Dataset:
    """A run's data: noisy training split, held-out validation, clean test set."""

    name: str
    x_train: "torch.Tensor"
    y_train: "torch.Tensor"        # noisy labels used for training
    y_train_clean: "torch.Tensor"  # true labels of the same samples
    x_val: "torch.Tensor"
    y_val: "torch.Tensor"          # clean or noisy per cfg.val_labels
    x_test: "torch.Tensor"
    y_test: "torch.Tensor"
    num_classes: int
    input_shape: tuple[int, ...]
    augment: bool
    noise_info: dict

    def to(self, device) -> "Dataset":
        import torch

        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


def _vision(name: str) -> Callable[[str], RawData]:
    def load(data_dir: str) -> RawData:
        from sdd_opt.data.vision import load_vision

        return load_vision(name, data_dir)
    return load


def _mnist1d(data_dir: str) -> RawData:
    from sdd_opt.data.mnist1d import load

    return load(data_dir)


def _synthetic1d(data_dir: str) -> RawData:
    from sdd_opt.data.synthetic import load_synthetic1d

    return load_synthetic1d(data_dir)


def _synthetic_images(data_dir: str) -> RawData:
    from sdd_opt.data.synthetic import load_synthetic_images

    return load_synthetic_images(data_dir)


# name -> loader(data_dir) -> RawData
DATASETS: dict[str, Callable[[str], RawData]] = {
    "mnist1d": _mnist1d,
    "synthetic1d": _synthetic1d,
    "synthetic_images": _synthetic_images,
    **{name: _vision(name) for name in ("mnist", "fashionmnist", "cifar10", "cifar100")},
}

# name -> (shape of one input, number of classes), known without loading or generating the data:
# lets a config be checked against its model (how many weights there are to prune) before any
# file is written. tests/data/test_load.py checks it against the loaders.
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist1d": ((1, 40), 10),
    "synthetic1d": ((1, 40), 10),
    "synthetic_images": ((3, 32, 32), 10),
    "mnist": ((1, 28, 28), 10),
    "fashionmnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}

def load_raw(cfg: "DataSettings") -> RawData:
    """The dataset's fixed train/test tensors: a built-in loader, or a plug-in's (sdd_opt.plugins,
    docs/plugins.md), checked and cached per process."""
    if cfg.name in DATASETS:
        return DATASETS[cfg.name](cfg.data_dir)
    from sdd_opt.plugins import load_fields

    f = load_fields(cfg)
    return RawData(f["x_train"], f["y_train"], f["x_test"], f["y_test"], int(f["num_classes"]), f["augment"])


# Independent random streams derived from the run seed.
_SUBSAMPLE, _SPLIT, _TRAIN_NOISE, _VAL_NOISE = range(4)


def _generator(seed: int, stream: int) -> "torch.Generator":
    import numpy as np
    import torch

    state = np.random.SeedSequence([seed, stream]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def load_data(cfg: DataSettings, seed: int) -> Dataset:
    """Load ``cfg.name`` and apply subsampling, the validation split and label noise, all seeded by ``seed``."""
    import torch

    from sdd_opt.data.noise import corrupt_labels

    raw = load_raw(cfg)
    x, y = raw.x_train.float(), raw.y_train.long()
    n = len(y)
    if cfg.train_size is not None:
        if cfg.train_size > n:
            raise UserError(f"data.train_size: {cfg.name} has only {n} training samples (got {cfg.train_size})")
        keep = torch.randperm(n, generator=_generator(seed, _SUBSAMPLE))[: cfg.train_size]
        x, y, n = x[keep], y[keep], cfg.train_size
    n_val = int(round(cfg.val_fraction * n))
    if n - n_val < 1:
        raise UserError(f"data.val_fraction: {cfg.val_fraction} leaves no training samples out of {n}")
    perm = torch.randperm(n, generator=_generator(seed, _SPLIT))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    try:
        y_noisy, changed = corrupt_labels(y[train_idx], raw.num_classes, cfg.noise, cfg.noise_kind,
                                          _generator(seed, _TRAIN_NOISE))
        y_val = y[val_idx]
        if cfg.val_labels == "noisy":
            y_val, _ = corrupt_labels(y_val, raw.num_classes, cfg.noise, cfg.noise_kind, _generator(seed, _VAL_NOISE))
    except ValueError as exc:
        raise UserError(f"data.noise_kind: {exc}") from None
    augment = raw.augment_default if cfg.augment is None else cfg.augment
    if augment and x.dim() != 4:
        raise UserError(f"data.augment: {cfg.name} is not an image dataset; crop/flip augmentation needs images")
    n_train, n_changed = len(train_idx), int(changed.sum())
    return Dataset(
        name=cfg.name,
        x_train=x[train_idx], y_train=y_noisy, y_train_clean=y[train_idx],
        x_val=x[val_idx], y_val=y_val,
        x_test=raw.x_test.float(), y_test=raw.y_test.long(),
        num_classes=raw.num_classes, input_shape=tuple(x.shape[1:]), augment=augment,
        noise_info={"kind": cfg.noise_kind, "rate": cfg.noise, "n_changed": n_changed, "n_train": n_train,
                    "actual_rate": n_changed / n_train},
    )
