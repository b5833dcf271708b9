"""torchvision image datasets, decoded once into normalized in-memory float tensors.

Whole-tensor datasets let the trainer index batches directly on the device (no DataLoader workers),
which is what makes many small pruning runs fast. torchvision is imported here only, lazily: it is
slow to import and the config validator imports ``sdd_opt.data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sdd_opt.errors import UserError

# name -> (torchvision class, per-channel mean, per-channel std, num_classes); the usual constants.
SPECS = {
    "mnist": ("MNIST", (0.1307,), (0.3081,), 10),
    "fashionmnist": ("FashionMNIST", (0.2860,), (0.3530,), 10),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100),
}


def _to_tensor(data, mean, std) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(data)).float().div_(255.0)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()  # MNIST (N,H,W); CIFAR (N,H,W,C)
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def load_vision(name: str, data_dir: str):
    import torchvision

    from sdd_opt.data import RawData

    cls_name, mean, std, num_classes = SPECS[name]
    cls = getattr(torchvision.datasets, cls_name)
    existing = _directories(data_dir)
    try:
        train = cls(root=data_dir, train=True, download=True)
        test = cls(root=data_dir, train=False, download=True)
    except Exception as exc:  # URLError, RuntimeError, OSError...: all mean "no usable files here"
        _remove_new_empty_directories(data_dir, existing)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"could not download {name} into {data_dir}: {reason}; "
                        "place the files there or run with network") from None
    return RawData(_to_tensor(train.data, mean, std), torch.as_tensor(np.asarray(train.targets), dtype=torch.long),
                   _to_tensor(test.data, mean, std), torch.as_tensor(np.asarray(test.targets), dtype=torch.long),
                   num_classes=num_classes, augment_default=name.startswith("cifar"))


def _directories(data_dir: str) -> set[Path]:
    """The directories that exist now on the way to and under ``data_dir``."""
    root = Path(data_dir).absolute()
    found = {p for p in (root, *root.parents) if p.is_dir()}
    if root.is_dir():
        found.update(Path(d) for d, _, _ in os.walk(root))
    return found


def _remove_new_empty_directories(data_dir: str, existing: set[Path]) -> None:
    """Undo the folders a failed download made (torchvision creates them first): an error writes nothing.

    Only directories that did not exist before and are empty are removed -- never a file.
    """
    root = Path(data_dir).absolute()
    created = [Path(d) for d, _, _ in os.walk(root, topdown=False)] if root.is_dir() else []
    created += [p for p in (root, *root.parents)]
    for d in created:
        if d not in existing and d.is_dir():
            try:
                d.rmdir()
            except OSError:  # not empty (or not ours to remove): leave it
                pass
