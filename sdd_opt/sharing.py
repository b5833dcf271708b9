"""Levels shared between the runs of a study (``run_curve(share_dir=...)``).

Runs that differ only in where they stop (target sparsity, levels, collapse floor) share their
common first levels (a prefix); runs that differ only in the pruning schedule share the dense
level 0 and its rewind point. ``share_dir`` holds ``prefix/<key>/<result hash>`` (the path of a
run directory) and ``dense/<key>/`` (level_0.pt, rewind.pt, row.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

from sdd_opt.checkpoints import load_checkpoint, save_atomic, write_text_atomic
from sdd_opt.config import RunConfig
from sdd_opt.curve import is_collapsed
from sdd_opt.errors import UserError
from sdd_opt.rundir import SERVED_FILE, Run, read_curve, result_description, result_hash, write_curve

# Prune keys that do not change level 0 (the dense training): runs that differ only in these share it.
_SCHEDULE_KEYS = ("rate", "levels", "target_sparsity", "scope", "collapse_floor")
# Prune keys that only say where a run stops (level k's density is (1 - rate)^k whatever the target):
# runs that differ only in these share their common first levels.
_STOP_KEYS = ("levels", "target_sparsity", "collapse_floor")

def dense_key(cfg: RunConfig) -> str:
    """Hash of what decides a run's dense level 0 and its rewind point (not the pruning schedule)."""
    from sdd_opt.config import stable_hash

    d = result_description(cfg)
    d["prune"] = {k: v for k, v in d["prune"].items() if k not in _SCHEDULE_KEYS}
    return stable_hash(d)


def prefix_key(cfg: RunConfig) -> str:
    """Hash of what decides a run's levels up to its stop: runs with the same key share a prefix."""
    from sdd_opt.config import stable_hash

    d = result_description(cfg)
    d["prune"] = {k: v for k, v in d["prune"].items() if k not in _STOP_KEYS}
    return stable_hash(d)


def _dense_dir(run: Run) -> Path:
    return run.share_dir / "dense" / dense_key(run.cfg)


def _prefix_index(run: Run) -> Path:
    return run.share_dir / "prefix" / prefix_key(run.cfg)


def register_prefix(run: Run) -> None:
    """List this run among the runs whose levels other stops may reuse."""
    index = _prefix_index(run)
    index.mkdir(parents=True, exist_ok=True)
    entry = index / result_hash(run.cfg)
    if not entry.exists():
        write_text_atomic(str(run.out.resolve()), entry)


def _longest_prefix(run: Run) -> tuple[Optional[Path], list[dict]]:
    """The run of the same prefix key (another stop) with the most finished levels, and its rows."""
    best: tuple[Optional[Path], list[dict]] = (None, [])
    index = _prefix_index(run)
    for entry in sorted(index.iterdir()) if index.is_dir() else []:
        if entry.name == result_hash(run.cfg):
            continue
        try:
            src = Path(entry.read_text().strip())
            rows = read_curve(src / "curve.csv")
        except (OSError, UserError):
            continue  # a run being written or removed: not a source
        if len(rows) > len(best[1]):
            best = (src, rows)
    return best


def adopt_prefix(run: Run, log: Callable[[str], None]) -> list[dict]:
    """Levels 0..k from a run that differs only in where it stops (target sparsity, levels, collapse
    floor), up to this run's own stop; else []. Levels are identical prefixes, so nothing changes."""
    src, rows = _longest_prefix(run)
    p = run.cfg.prune
    rows = rows[:p.n_levels + 1]
    collapsed = next((k for k, r in enumerate(rows) if p.collapse_floor is not None
                      and is_collapsed(r["val_acc"], p.collapse_floor)), None)
    if collapsed is not None:
        rows = rows[:collapsed + 1]  # this run would have stopped here
    if not rows:
        return []
    last = rows[-1]["level"]
    finished = collapsed is not None or len(rows) == p.n_levels + 1
    try:
        ckpt = src / "checkpoints" / f"level_{last}.pt"
        if ckpt.exists():
            save_atomic(load_checkpoint(ckpt), run.ckpt_dir / ckpt.name)
        elif not finished:
            return []  # cannot continue from a level whose weights are gone
        if (src / "checkpoints" / "rewind.pt").exists():
            save_atomic(load_checkpoint(src / "checkpoints" / "rewind.pt"), run.ckpt_dir / "rewind.pt")
    except Exception as exc:  # a source being rewritten costs the reuse, never the run
        log(f"warning: not reusing the levels of {src} ({exc})")
        return []
    if not (run.ckpt_dir / f"level_{last}.pt").exists():
        write_text_atomic(json.dumps({"from": str(src), "levels": len(rows)}), run.out / SERVED_FILE)
    write_curve(rows, run.out / "curve.csv")
    log(f"levels 0-{last} reused from {src} (the same run with a later stop)")
    return rows


def share_dense(run: Run, row: dict) -> None:
    """Publish this run's level 0 (weights, rewind point, curve row) for runs with another schedule."""
    dest = _dense_dir(run)
    if (dest / "row.json").exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("level_0.pt", "rewind.pt"):
        if (run.ckpt_dir / name).exists():
            save_atomic(load_checkpoint(run.ckpt_dir / name), dest / name)
    write_text_atomic(json.dumps(row), dest / "row.json")  # written last: marks the entry complete


def adopt_dense(run: Run, log: Callable[[str], None]) -> list[dict]:
    """Level 0 from a run that differs only in its pruning schedule, if one was shared; else []."""
    src = _dense_dir(run)
    if not (src / "row.json").exists():
        return []
    try:
        row = json.loads((src / "row.json").read_text())
        for name in ("level_0.pt", "rewind.pt"):
            if (src / name).exists():
                save_atomic(load_checkpoint(src / name), run.ckpt_dir / name)
    except Exception as exc:  # a damaged entry costs one dense training, never the run
        log(f"warning: not reusing the shared dense level in {src} ({exc})")
        return []
    write_curve([row], run.out / "curve.csv")
    log(f"level 0 reused from {src.name} (same dense training, another pruning schedule)")
    return [row]
