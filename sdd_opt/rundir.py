"""The run directory: its files, what identifies its result, and resuming it.

A run directory holds everything needed to resume a run and to trust it:

    config.yaml            the resolved config, with seed, library versions and machine
    curve.csv              one row per finished level (rewritten atomically after each)
    metrics.json           SDD metrics on validation and test accuracy
    curve.png              the curve in the papers' style
    checkpoints/level_K.pt {"state_dict", "masks", "level", "sparsity"} (pruned weights are exact zeros)
    checkpoints/rewind.pt  the weights that retraining rewinds to
    served.json            instead of the last checkpoint, when every level came from a longer run
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from sdd_opt.checkpoints import check_fits, load_checkpoint, write_text_atomic
from sdd_opt.config import REWINDING, RunConfig, dump_config, load_config
from sdd_opt.curve import CURVE_COLUMNS, sdd_metrics
from sdd_opt.data import load_data
from sdd_opt.errors import UserError
from sdd_opt.models import build_model
from sdd_opt.provenance import provenance
from sdd_opt.prune import full_masks
from sdd_opt.train import resolve_device, steps_per_epoch

# Keys that change where/how fast a run goes but not its result: ignored when matching a resume.
_NON_RESULT_KEYS = {"train": {"device", "threads", "eval_batch_size"}, "data": {"data_dir"}}

# What a run directory served entirely from a longer run holds instead of its last checkpoint.
SERVED_FILE = "served.json"


def result_description(cfg: RunConfig) -> dict:
    d = cfg.describe()
    for section, keys in _NON_RESULT_KEYS.items():
        for k in keys:
            d[section].pop(k, None)
    d["distill"]["teacher"].pop("cache_dir", None)
    from sdd_opt.plugins import hash_fields

    d.update(hash_fields(cfg))  # a plug-in's source: a changed model never reuses a stale run ({} for built-ins)
    return d


def result_hash(cfg: RunConfig) -> str:
    """Hash of what decides the curve (not device, threads or paths): names shared run directories."""
    from sdd_opt.config import stable_hash
    from sdd_opt.renamed import hash_spelling

    return stable_hash(hash_spelling(result_description(cfg)))


def read_curve(path: Path) -> list[dict]:
    """The rows of a run's curve.csv ([] when there is none); a damaged file is a UserError naming it."""
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text, so not a curve.csv written by sdd-opt") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CURVE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)} (not a curve.csv written by sdd-opt)")
    out = []
    for r in reader:
        line = reader.line_num
        if None in r or None in r.values():
            raise UserError(f"{path}: line {line} is truncated or has extra fields")
        try:
            row = {k: (int(v) if k in ("level", "epochs") else float(v)) for k, v in r.items()}
        except ValueError:
            raise UserError(f"{path}: line {line} holds a value that is not a number") from None
        if row["level"] != len(out):
            raise UserError(f"{path}: line {line} is level {row['level']}, expected level {len(out)}")
        out.append(row)
    return out


def write_curve(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CURVE_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    write_text_atomic(buf.getvalue(), path)


def curve_metrics(rows: list[dict], cfg: RunConfig) -> dict:
    sp = [r["sparsity"] for r in rows]
    out = {}
    for split in ("val", "test"):
        acc = [r[f"{split}_acc"] for r in rows]
        if rows and not any(math.isnan(a) for a in acc):
            out[split] = sdd_metrics(sp, acc, cfg.analysis.sdd_threshold, cfg.analysis.epsilon).as_dict()
    return out


def served(out: Path, rows: list[dict]) -> bool:
    try:
        return json.loads((out / SERVED_FILE).read_text()).get("levels") == len(rows)
    except (OSError, ValueError, AttributeError):
        return False


# Torch threads when train.threads is null: one. Measured best once anything else shares the CPU
# (docs/performance.md, "threads"; python -m benchmarks.contention), and not chosen from the load,
# since the thread count changes a run's numbers.
DEFAULT_THREADS = 1


def set_threads(cfg: RunConfig) -> int:
    torch.set_num_threads(cfg.train.threads or DEFAULT_THREADS)
    return torch.get_num_threads()


@dataclass
class Run:
    """A run in progress: its directory, data, the model being pruned and how to build a fresh one."""

    cfg: RunConfig
    out: Path
    device: torch.device
    data: object
    build: Callable[[], torch.nn.Module]
    model: torch.nn.Module
    masks: dict
    rewind_step: int
    rewind_state: Optional[dict]
    share_dir: Optional[Path] = None

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"


def stored_rows(cfg: RunConfig, out: Path, resume: bool) -> list[dict]:
    """The run directory's finished levels, after checking that it may be continued with ``cfg``."""
    rows = read_curve(out / "curve.csv") if out.exists() else []
    if rows and not resume:
        raise UserError(f"{out}: already holds a curve ({len(rows)} levels); pass --resume to continue it or choose "
                        "another --out")
    if rows and resume:
        stored = load_config(out / "config.yaml", stored=True)
        if result_description(stored) != result_description(cfg):
            raise UserError(f"{out}: --resume with a different config than the stored config.yaml")
    return rows


def stored_state(cfg: RunConfig, out: Path, rows: list[dict]) -> Optional[tuple[dict, Optional[dict]]]:
    """The last finished level's checkpoint and the rewind weights, loaded and checked against
    ``cfg``'s model (built on the meta device) before anything in ``out`` is rewritten."""
    if not rows:
        return None
    from sdd_opt.preflight import meta_model

    path = out / "checkpoints" / f"level_{rows[-1]['level']}.pt"
    if not path.exists() and served(out, rows):
        return None  # finished from a longer run's levels: nothing left to train, no weights needed
    state = load_checkpoint(path)
    if not isinstance(state.get("masks"), dict):
        raise UserError(f"checkpoint {path}: no masks (not a level checkpoint written by sdd-opt)")
    rewind_path = out / "checkpoints" / "rewind.pt"
    rewind = load_checkpoint(rewind_path)["state_dict"] if cfg.prune.retrain == "rewind" else None
    model = meta_model(cfg)
    if model is not None:
        check_fits(model, state["state_dict"], f"checkpoint {path}")
        check_fits(model, state["masks"], f"checkpoint {path} (masks)", partial=True)
        if rewind is not None:
            check_fits(model, rewind, f"checkpoint {rewind_path}")
    return state, rewind


def start_run(cfg: RunConfig, out: Path) -> Run:
    """Load the data, check the rewind point, build the seeded dense model and write config.yaml."""
    threads = set_threads(cfg)
    device = resolve_device(cfg.train.device)
    data = load_data(cfg.data, cfg.seed).to(device)
    spe = steps_per_epoch(len(data.x_train), cfg.train.batch_size)
    total_steps = spe * cfg.train.epochs
    p = cfg.prune
    rewind_step = 0
    if p.retrain in REWINDING:  # lr_rewind restarts the schedule there too (keeping the weights)
        rewind_step = p.rewind_to * (spe if p.rewind_unit == "epoch" else 1)
        if rewind_step >= total_steps:
            raise UserError(f"prune.rewind_to: {p.rewind_to} {p.rewind_unit}s is past the end of training "
                            f"({total_steps} iterations)")

    def build():
        return build_model(cfg.model, data.input_shape, data.num_classes).to(device)

    torch.manual_seed(cfg.seed)
    model = build()
    run = Run(cfg, out, device, data, build, model, full_masks(model), rewind_step,
               copy.deepcopy(model.state_dict()) if rewind_step == 0 else None)
    out.mkdir(parents=True, exist_ok=True)
    run.ckpt_dir.mkdir(exist_ok=True)
    from sdd_opt.plugins import provenance_of

    dump_config(cfg, out / "config.yaml", provenance={**provenance(device=str(device), threads=threads),
                                                      **provenance_of(cfg)})
    return run


def resume_run(run: Run, rows: list[dict], stored: Optional[tuple[dict, Optional[dict]]],
            log: Callable[[str], None]) -> int:
    """Load the last finished level's weights (and the rewind point, see :func:`stored_state`); returns
    the next level."""
    if not rows:
        return 0
    last = rows[-1]["level"]
    if stored is None:  # served from a longer run (see adopt_prefix): finished
        log(f"reusing the finished run {run.out} (levels 0-{last}, served from a longer run)")
        return last + 1
    state, rewind = stored
    run.model.load_state_dict(state["state_dict"])
    run.masks = {k: v.to(run.device) for k, v in state["masks"].items()}
    if run.cfg.prune.retrain == "rewind":
        run.rewind_state = rewind
    n_levels = run.cfg.prune.n_levels
    log(f"resuming {run.out} at level {last + 1}/{n_levels}" if last + 1 <= n_levels
        else f"reusing the finished run {run.out} (levels 0-{n_levels})")
    return last + 1
