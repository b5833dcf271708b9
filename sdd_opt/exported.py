"""An exported front point as a model: ``sdd_opt.load_model(folder)`` and ``sdd_opt.evaluate_model``.

``sdd-opt study export NAME --weights`` writes one folder per point of a study's front:
``config.yaml`` (re-runs to this level), ``model.pt`` (``{"state_dict", "masks", "level",
"sparsity"}``, loadable with ``weights_only=True``), ``metrics.json`` and ``provenance.json``.
This module turns such a folder back into the pruned ``nn.Module`` -- it needs no study, no
storage and no run directory, only the folder (and the dataset, to evaluate).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sdd_opt.errors import UserError

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
PROVENANCE_FILE = "provenance.json"


def _folder(folder: str | Path) -> Path:
    path = Path(folder)
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise UserError(f"{path}: no {name} (not a folder written by 'sdd-opt study export --weights')")
    return path


def folder_config(folder: str | Path):
    """The run config stored in an exported folder."""
    from sdd_opt.config import load_config

    return load_config(_folder(folder) / CONFIG_FILE, stored=True)


def _shape(cfg) -> tuple[tuple[int, ...], int]:
    from sdd_opt.data import SHAPES, load_data

    if cfg.data.name in SHAPES:
        return SHAPES[cfg.data.name]
    data = load_data(cfg.data, cfg.seed)  # a dataset without a known shape: read it from the data
    return tuple(data.input_shape), data.num_classes


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The pruned model of an exported front point, in eval mode (pruned weights are exact zeros).

    Its masks are the ``sdd_masks`` attribute (parameter name -> 0/1 tensor), for fine-tuning
    with the same sparsity.
    """
    from sdd_opt.checkpoints import check_fits, load_checkpoint
    from sdd_opt.models import build_model
    from sdd_opt.prune import apply_masks

    path = _folder(folder)
    cfg = folder_config(path)
    input_shape, num_classes = _shape(cfg)
    model = build_model(cfg.model, input_shape, num_classes)
    ckpt = load_checkpoint(path / MODEL_FILE)
    check_fits(model, ckpt["state_dict"], f"{path / MODEL_FILE}")
    masks = ckpt.get("masks") or {}
    check_fits(model, masks, f"{path / MODEL_FILE} (masks)", partial=True)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device)
    masks = {k: v.to(device) for k, v in masks.items()}
    if masks:
        apply_masks(model, masks)
    model.sdd_masks = masks
    return model.eval()


def evaluate_model(folder: str | Path, split: str = "test", device: str = "cpu",
                   model: torch.nn.Module | None = None) -> float:
    """Accuracy of an exported point's model on its dataset's ``split`` (train, val or test), loaded
    with the folder's config and seed: the same split the study measured."""
    from sdd_opt.data import load_data
    from sdd_opt.train import autocast_dtype, evaluate

    if split not in ("train", "val", "test"):
        raise UserError(f"split: must be train, val or test (got {split!r})")
    cfg = folder_config(folder)
    model = model if model is not None else load_model(folder, device)
    data = load_data(cfg.data, cfg.seed).to(torch.device(device))
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    acc, _ = evaluate(model, x, y, cfg.train.eval_batch_size, autocast_dtype(cfg.train.precision, torch.device(device)))
    return acc


def folder_metrics(folder: str | Path) -> dict:
    """The exported point's ``metrics.json``: the seed's recorded accuracies and the trial's means."""
    return json.loads((_folder(folder) / METRICS_FILE).read_text())
