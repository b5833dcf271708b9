"""Files that concurrent workers share: atomic writes, and checkpoints loaded safely.

Run directories and the teacher cache are read by one worker while another writes them, so
every write goes through a temporary file and ``os.replace`` (a reader sees the old file or the
new one, never half of one), and every load uses ``weights_only=True`` with a one-line error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from sdd_opt.errors import UserError


def save_atomic(obj: object, path: Path) -> None:
    """torch.save through a temporary file and os.replace: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(text: str, path: Path, suffix: str = ".tmp") -> None:
    """Write ``text`` to ``path`` through ``path`` + ``suffix`` and os.replace."""
    tmp = path.with_suffix(path.suffix + suffix)
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load a level checkpoint safely (``weights_only=True``); corrupt files give a UserError."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path}: no such file") from None
    except Exception as exc:
        raise UserError(f"checkpoint {path}: corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"checkpoint {path}: not an sdd-opt checkpoint (no state_dict)")
    return ckpt


def load_state_dict(path: Path, what: str) -> dict:
    """A model's state_dict from a bare state_dict file or an sdd-opt checkpoint; ``what`` names the field."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what}: no such file {path}") from None
    except Exception as exc:  # corrupt or foreign file
        raise UserError(f"{what}: cannot load {path}: corrupt, truncated or not a PyTorch file "
                        f"({type(exc).__name__})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"{what}: {path} does not hold a state_dict")
    return obj


def check_fits(model: torch.nn.Module, state_dict: dict, where: str, *, partial: bool = False) -> None:
    """``state_dict`` has ``model``'s keys with ``model``'s shapes (``partial``: a subset of its keys,
    as a mask dict); otherwise a UserError naming ``where``. ``model`` may live on the meta device."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state_dict.items()}
    problems = [f"unexpected {k}" for k in got if k not in expected]
    if not partial:
        problems += [f"missing {k}" for k in expected if k not in got]
    problems += [f"{k} has shape {list(got[k]) if got[k] is not None else 'none'}, the model needs {list(shape)}"
                 for k, shape in expected.items() if k in got and got[k] != shape]
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise UserError(f"{where}: does not fit the configured {type(model).__name__}: {'; '.join(problems[:2])}{more}")
