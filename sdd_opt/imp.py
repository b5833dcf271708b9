"""Iterative magnitude pruning: train, prune, retrain, level after level -> one SDD curve.

This is the engine behind ``sdd-opt train`` and every Optuna trial. A run directory holds
everything needed to resume it and to trust it:

    config.yaml            the resolved config, with seed, library versions and machine
    curve.csv              one row per finished level (rewritten atomically after each)
    metrics.json           SDD metrics on validation and test accuracy
    curve.png              the curve in the papers' style
    checkpoints/level_K.pt {"state_dict", "masks", "level", "sparsity"} (pruned weights are exact zeros)
    checkpoints/rewind.pt  the weights that retraining rewinds to

``resume=True`` continues from the last finished level; because batch order is seeded per epoch
and the rewind point is on disk, the result equals an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from sdd_opt.checkpoints import check_fits, load_checkpoint, save_atomic, write_text_atomic
from sdd_opt.config import REWINDING, RunConfig, dump_config, load_config
from sdd_opt.curve import CURVE_COLUMNS, is_collapsed, sdd_metrics
from sdd_opt.data import load_data
from sdd_opt.distill import get_teacher
from sdd_opt.errors import UserError
from sdd_opt.models import build_model
from sdd_opt.prune import apply_masks, density_at, full_masks, magnitude_prune, measured_sparsity
from sdd_opt.provenance import provenance
from sdd_opt.train import autocast_dtype, evaluate, resolve_device, steps_per_epoch, train_model

LevelCallback = Callable[[dict], Optional[str]]  # returns a reason to stop the curve here, or None
# Keys that change where/how fast a run goes but not its result: ignored when matching a resume.
_NON_RESULT_KEYS = {"train": {"device", "threads", "eval_batch_size"}, "data": {"data_dir"}}


@dataclass
class RunResult:
    out_dir: Path
    rows: list[dict]
    metrics: dict  # {"val": SDDMetrics dict, "test": SDDMetrics dict}
    stopped_early: bool = False
    stop_reason: str = ""
    teacher: str = ""
    extra: dict = field(default_factory=dict)


def _result_description(cfg: RunConfig) -> dict:
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

    return stable_hash(hash_spelling(_result_description(cfg)))


# Prune keys that do not change level 0 (the dense training): runs that differ only in these share it.
_SCHEDULE_KEYS = ("rate", "levels", "target_sparsity", "scope", "collapse_floor")
# Prune keys that only say where a run stops (level k's density is (1 - rate)^k whatever the target):
# runs that differ only in these share their common first levels.
_STOP_KEYS = ("levels", "target_sparsity", "collapse_floor")
# What a run directory served entirely from a longer run holds instead of its last checkpoint.
SERVED_FILE = "served.json"


def dense_key(cfg: RunConfig) -> str:
    """Hash of what decides a run's dense level 0 and its rewind point (not the pruning schedule)."""
    from sdd_opt.config import stable_hash

    d = _result_description(cfg)
    d["prune"] = {k: v for k, v in d["prune"].items() if k not in _SCHEDULE_KEYS}
    return stable_hash(d)


def prefix_key(cfg: RunConfig) -> str:
    """Hash of what decides a run's levels up to its stop: runs with the same key share a prefix."""
    from sdd_opt.config import stable_hash

    d = _result_description(cfg)
    d["prune"] = {k: v for k, v in d["prune"].items() if k not in _STOP_KEYS}
    return stable_hash(d)


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


# Torch threads when train.threads is null: one. Measured best once anything else shares the CPU
# (docs/performance.md, "threads"; python -m benchmarks.contention), and not chosen from the load,
# since the thread count changes a run's numbers.
DEFAULT_THREADS = 1


def _set_threads(cfg: RunConfig) -> int:
    torch.set_num_threads(cfg.train.threads or DEFAULT_THREADS)
    return torch.get_num_threads()


@dataclass
class _Run:
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


def _stored_rows(cfg: RunConfig, out: Path, resume: bool) -> list[dict]:
    """The run directory's finished levels, after checking that it may be continued with ``cfg``."""
    rows = read_curve(out / "curve.csv") if out.exists() else []
    if rows and not resume:
        raise UserError(f"{out}: already holds a curve ({len(rows)} levels); pass --resume to continue it or choose another --out")
    if rows and resume:
        stored = load_config(out / "config.yaml", stored=True)
        if _result_description(stored) != _result_description(cfg):
            raise UserError(f"{out}: --resume with a different config than the stored config.yaml")
    return rows


def _stored_state(cfg: RunConfig, out: Path, rows: list[dict]) -> Optional[tuple[dict, Optional[dict]]]:
    """The last finished level's checkpoint and the rewind weights, loaded and checked against
    ``cfg``'s model (built on the meta device) before anything in ``out`` is rewritten."""
    if not rows:
        return None
    from sdd_opt.preflight import meta_model

    path = out / "checkpoints" / f"level_{rows[-1]['level']}.pt"
    if not path.exists() and _served(out, rows):
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


def _start(cfg: RunConfig, out: Path) -> _Run:
    """Load the data, check the rewind point, build the seeded dense model and write config.yaml."""
    threads = _set_threads(cfg)
    device = resolve_device(cfg.train.device)
    data = load_data(cfg.data, cfg.seed).to(device)
    spe = steps_per_epoch(len(data.x_train), cfg.train.batch_size)
    total_steps = spe * cfg.train.epochs
    p = cfg.prune
    rewind_step = 0
    if p.retrain in REWINDING:  # lr_rewind restarts the schedule there too (keeping the weights)
        rewind_step = p.rewind_to * (spe if p.rewind_unit == "epoch" else 1)
        if rewind_step >= total_steps:
            raise UserError(f"prune.rewind_to: {p.rewind_to} {p.rewind_unit}s is past the end of training ({total_steps} iterations)")

    def build():
        return build_model(cfg.model, data.input_shape, data.num_classes).to(device)

    torch.manual_seed(cfg.seed)
    model = build()
    run = _Run(cfg, out, device, data, build, model, full_masks(model), rewind_step,
               copy.deepcopy(model.state_dict()) if rewind_step == 0 else None)
    out.mkdir(parents=True, exist_ok=True)
    run.ckpt_dir.mkdir(exist_ok=True)
    from sdd_opt.plugins import provenance_of

    dump_config(cfg, out / "config.yaml", provenance={**provenance(device=str(device), threads=threads),
                                                      **provenance_of(cfg)})
    return run


def _resume(run: _Run, rows: list[dict], stored: Optional[tuple[dict, Optional[dict]]],
            log: Callable[[str], None]) -> int:
    """Load the last finished level's weights (and the rewind point, see :func:`_stored_state`); returns the next level."""
    if not rows:
        return 0
    last = rows[-1]["level"]
    if stored is None:  # served from a longer run (see _adopt_prefix): finished
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


def provide_teacher(run: _Run, start_level: int, log: Callable[[str], None]) -> tuple[Optional[torch.nn.Module], str]:
    """The dense teacher of a distillation run (given, cached or trained now), or (None, "").

    A finished run needs no teacher, and never trains one.
    """
    cfg = run.cfg
    if not cfg.distill.enabled or start_level > cfg.prune.n_levels:
        return None, ""

    def train_dense(tcfg: RunConfig, tmodel) -> None:
        torch.manual_seed(tcfg.seed)
        tmodel.load_state_dict(run.build().state_dict())
        stats, _ = train_model(tmodel, run.data, tcfg.train, seed=tcfg.seed)
        log(f"teacher trained: train acc {stats.train_acc:.3f} in {stats.seconds:.1f}s")

    teacher, source = get_teacher(cfg, run.build, train_dense, log=log)
    teacher.to(run.device)
    return teacher, source


def _prune_for(run: _Run, level: int) -> int:
    """Prune to ``level``'s density and reset the weights the retraining starts from; returns its first step."""
    cfg, p = run.cfg, run.cfg.prune
    if level == 0:
        return 0
    run.masks = magnitude_prune(run.model, run.masks, density_at(level, p.rate), p.scope)
    start_step = 0
    if p.retrain == "rewind":
        run.model.load_state_dict(run.rewind_state)
        start_step = run.rewind_step
    elif p.retrain == "lr_rewind":  # the pruned current weights, the schedule from the rewind point
        start_step = run.rewind_step
    elif p.retrain == "scratch":
        torch.manual_seed(cfg.seed + 7919 * level)
        run.model.load_state_dict(run.build().state_dict())
    apply_masks(run.model, run.masks)
    return start_step


def _train_level(run: _Run, level: int, teacher, precision, on_epoch, keep_checkpoints: str) -> dict:
    """Prune, retrain and evaluate one level, and checkpoint it; returns its curve row."""
    cfg, data = run.cfg, run.data
    start_step = _prune_for(run, level)
    t0 = time.perf_counter()
    stats, snapshot = train_model(
        run.model, data, cfg.train, seed=cfg.seed, masks=run.masks if level > 0 else None,
        start_step=start_step, teacher=teacher, distill=cfg.distill,
        snapshot_step=run.rewind_step if (level == 0 and run.rewind_step > 0 and cfg.prune.retrain == "rewind")
        else None, on_epoch=on_epoch,
    )
    if level == 0 and cfg.prune.retrain == "rewind":
        if snapshot is not None:
            run.rewind_state = snapshot
        save_atomic({"state_dict": {k: v.cpu() for k, v in run.rewind_state.items()}, "step": run.rewind_step},
                    run.ckpt_dir / "rewind.pt")
    val_acc, _ = evaluate(run.model, data.x_val, data.y_val, cfg.train.eval_batch_size, precision)
    test_acc, _ = evaluate(run.model, data.x_test, data.y_test, cfg.train.eval_batch_size, precision)
    row = {
        "level": level, "sparsity": measured_sparsity(run.model), "train_acc": stats.train_acc,
        "val_acc": val_acc, "test_acc": test_acc, "loss": stats.loss, "epochs": stats.epochs,
        "seconds": time.perf_counter() - t0,
    }
    save_atomic({"state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
                 "masks": {k: v.cpu() for k, v in run.masks.items()}, "level": level,
                 "sparsity": row["sparsity"]}, run.ckpt_dir / f"level_{level}.pt")
    if keep_checkpoints == "last" and level > 0:
        (run.ckpt_dir / f"level_{level - 1}.pt").unlink(missing_ok=True)
    return row


def _level_loop(run: _Run, rows: list[dict], start_level: int, teacher, *, on_level: Optional[LevelCallback],
                keep_checkpoints: str, progress: bool, log: Callable[[str], None]) -> tuple[bool, str]:
    """Train levels ``start_level``.. (appending to ``rows`` and curve.csv); returns (stopped early, why)."""
    from tqdm.auto import tqdm

    cfg, p = run.cfg, run.cfg.prune
    n_levels = p.n_levels
    precision = autocast_dtype(cfg.train.precision, run.device)
    bar = tqdm(total=(n_levels + 1) * cfg.train.epochs, initial=start_level * cfg.train.epochs,
               desc="levels", unit="ep", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for level in range(start_level, n_levels + 1):
            bar.set_description(f"level {level}/{n_levels}")
            done_before = bar.n

            def on_epoch(epoch: int, epochs: int) -> None:
                bar.n = done_before + epoch
                bar.refresh()

            row = _train_level(run, level, teacher, precision, on_epoch, keep_checkpoints)
            rows.append(row)
            write_curve(rows, run.out / "curve.csv")
            if level == 0 and run.share_dir is not None:
                _share_dense(run, row)
            msg = (f"level {level:>2}/{n_levels}  sparsity {row['sparsity']:.4f}  train {row['train_acc']:.3f}  "
                   f"val {row['val_acc']:.3f}  test {row['test_acc']:.3f}  ({row['seconds']:.1f}s)")
            with tqdm.external_write_mode() if progress else contextlib.nullcontext():  # above the bar
                log(msg)  # through log: a study's worker prefixes its trial number
            stop = on_level(row) if on_level else None
            if stop and level < n_levels:
                log(f"early stop: {stop}; skipping {n_levels - level} level(s)")
                return True, stop
            if p.collapse_floor is not None and is_collapsed(row["val_acc"], p.collapse_floor) and level < n_levels:
                reason = f"validation accuracy {row['val_acc']:.3f} below collapse_floor {p.collapse_floor} at level {level}"
                log(f"collapse early stop: {reason}; skipping {n_levels - level} level(s)")
                return True, reason
    finally:
        bar.close()
    return False, ""


def _dense_dir(run: _Run) -> Path:
    return run.share_dir / "dense" / dense_key(run.cfg)


def _served(out: Path, rows: list[dict]) -> bool:
    try:
        return json.loads((out / SERVED_FILE).read_text()).get("levels") == len(rows)
    except (OSError, ValueError, AttributeError):
        return False


def _prefix_index(run: _Run) -> Path:
    return run.share_dir / "prefix" / prefix_key(run.cfg)


def _register_prefix(run: _Run) -> None:
    """List this run among the runs whose levels other stops may reuse."""
    index = _prefix_index(run)
    index.mkdir(parents=True, exist_ok=True)
    entry = index / result_hash(run.cfg)
    if not entry.exists():
        write_text_atomic(str(run.out.resolve()), entry)


def _longest_prefix(run: _Run) -> tuple[Optional[Path], list[dict]]:
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


def _adopt_prefix(run: _Run, log: Callable[[str], None]) -> list[dict]:
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


def _share_dense(run: _Run, row: dict) -> None:
    """Publish this run's level 0 (weights, rewind point, curve row) for runs with another schedule."""
    dest = _dense_dir(run)
    if (dest / "row.json").exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("level_0.pt", "rewind.pt"):
        if (run.ckpt_dir / name).exists():
            save_atomic(load_checkpoint(run.ckpt_dir / name), dest / name)
    write_text_atomic(json.dumps(row), dest / "row.json")  # written last: marks the entry complete


def _adopt_dense(run: _Run, log: Callable[[str], None]) -> list[dict]:
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


def _finish(run: _Run, rows: list[dict], stopped: bool, reason: str, teacher_src: str,
            log: Callable[[str], None]) -> RunResult:
    """Write metrics.json and curve.png."""
    cfg, out = run.cfg, run.out
    metrics = curve_metrics(rows, cfg)
    teacher_used = teacher_src
    if not teacher_used and cfg.distill.enabled and (out / "metrics.json").exists():  # reused: keep the record
        teacher_used = json.loads((out / "metrics.json").read_text()).get("teacher", "")
    summary = {"metrics": metrics, "stopped_early": stopped, "stop_reason": reason, "teacher": teacher_used,
               "levels_planned": cfg.prune.n_levels + 1, "levels_done": len(rows), "noise": run.data.noise_info}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    try:
        from sdd_opt.plots import plot_curve

        plot_curve(rows, metrics.get("test"), out / "curve.png", title=f"{cfg.data.name} / {cfg.model.name}")
    except Exception as exc:  # a figure must never cost the run
        log(f"warning: could not draw curve.png ({exc})")
    return RunResult(out, rows, metrics, stopped, reason, teacher_src)


def run_curve(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_level: Optional[LevelCallback] = None,
    keep_checkpoints: str = "all",
    progress: bool = True,
    log: Callable[[str], None] = print,
    share_dir: Optional[Path] = None,
) -> RunResult:
    """Train ``cfg`` through every pruning level, writing the run directory ``out_dir``.

    With ``share_dir`` (a folder shared by a study's runs), a new run first takes the levels of an
    earlier run that differs only in where it stops (target sparsity, levels, collapse floor), up to
    its own stop; failing that, level 0 from a run that differs only in the pruning schedule. Its
    own levels are shared in turn. ``RunResult.extra["levels_reused"]`` says how many it took.
    Successive halving (``on_level``) sees reused levels but stops only levels still to train.
    """
    out = Path(out_dir)
    rows = _stored_rows(cfg, out, resume)
    stored = _stored_state(cfg, out, rows)  # a damaged run directory fails here, before _start writes
    run = _start(cfg, out)
    run.share_dir = Path(share_dir) if share_dir is not None else None
    reused = 0
    if run.share_dir is not None:
        if not rows:
            rows = _adopt_prefix(run, log) or _adopt_dense(run, log)
            reused = len(rows)
            if reused:
                stored = _stored_state(cfg, out, rows)
                if on_level is not None:  # recorded; a stop applies from the next level to train
                    for row in rows:
                        on_level(row)
        _register_prefix(run)
    start_level = _resume(run, rows, stored, log)
    p = cfg.prune
    stopped, reason = False, ""
    if rows and p.collapse_floor is not None and is_collapsed(rows[-1]["val_acc"], p.collapse_floor):
        stopped, reason = True, f"validation accuracy {rows[-1]['val_acc']:.3f} below collapse_floor {p.collapse_floor}"
        start_level = p.n_levels + 1
    teacher, teacher_src = provide_teacher(run, start_level, log)
    if start_level <= p.n_levels:
        stopped, reason = _level_loop(run, rows, start_level, teacher, on_level=on_level,
                                      keep_checkpoints=keep_checkpoints, progress=progress, log=log)
    result = _finish(run, rows, stopped, reason, teacher_src, log)
    result.extra["levels_reused"] = reused
    return result
