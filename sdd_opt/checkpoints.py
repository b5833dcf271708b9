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
        raise UserError(f"{what}: cannot load {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"{what}: {path} does not hold a state_dict")
    return obj
