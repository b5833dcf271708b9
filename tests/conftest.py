"""Shared fixtures: tiny configs that train in a fraction of a second on the CPU."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def tiny_overrides(tmp_path):
    """--set overrides for a tiny synthetic run (data cached under tmp_path)."""
    return [
        "data.name=synthetic1d", f"data.data_dir={tmp_path / 'data'}", "model.width=8",
        "train.epochs=2", "train.batch_size=64", "prune.levels=2", "train.threads=1",
        f"distill.teacher.cache_dir={tmp_path / 'teachers'}",
    ]


@pytest.fixture
def tiny_cfg(tiny_overrides):
    from sdd_opt.config import load_config

    return load_config(None, tiny_overrides)


class Interrupted(Exception):
    """Raised by :func:`run_interrupted`'s level callback: an interrupt right after a level."""


def run_interrupted(cfg, out, level: int = 1) -> None:
    """Run ``cfg`` into ``out`` and interrupt it once ``level`` is finished (as Ctrl-C would)."""
    from sdd_opt.imp import run_curve

    def stop(row):
        if row["level"] == level:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_curve(cfg, out, on_level=stop, progress=False, log=lambda *_: None)
