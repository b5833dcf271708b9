"""Iterative magnitude pruning: train, prune, retrain, level after level -> one SDD curve.

This is the engine behind ``sdd-opt train`` and every Optuna trial. It writes a run directory
(:mod:`sdd_opt.rundir`) and, in a study, shares levels with the study's other runs
(:mod:`sdd_opt.sharing`).

``resume=True`` continues from the last finished level; because batch order is seeded per epoch
and the rewind point is on disk, the result equals an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from sdd_opt.checkpoints import save_atomic
from sdd_opt.config import RunConfig
from sdd_opt.curve import is_collapsed
from sdd_opt.distill import get_teacher
from sdd_opt.prune import apply_masks, density_at, magnitude_prune, measured_sparsity
from sdd_opt.rundir import Run, curve_metrics, resume_run, start_run, stored_rows, stored_state, write_curve
from sdd_opt.sharing import adopt_dense, adopt_prefix, register_prefix, share_dense
from sdd_opt.train import autocast_dtype, evaluate, train_model

LevelCallback = Callable[[dict], Optional[str]]  # returns a reason to stop the curve here, or None


@dataclass
class RunResult:
    out_dir: Path
    rows: list[dict]
    metrics: dict  # {"val": SDDMetrics dict, "test": SDDMetrics dict}
    stopped_early: bool = False
    stop_reason: str = ""
    teacher: str = ""
    extra: dict = field(default_factory=dict)


def provide_teacher(run: Run, start_level: int, log: Callable[[str], None]) -> tuple[Optional[torch.nn.Module], str]:
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


def _prune_for(run: Run, level: int) -> int:
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


def _train_level(run: Run, level: int, teacher, precision, on_epoch, keep_checkpoints: str) -> dict:
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


def _level_loop(run: Run, rows: list[dict], start_level: int, teacher, *, on_level: Optional[LevelCallback],
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
                share_dense(run, row)
            msg = (f"level {level:>2}/{n_levels}  sparsity {row['sparsity']:.4f}  train {row['train_acc']:.3f}  "
                   f"val {row['val_acc']:.3f}  test {row['test_acc']:.3f}  ({row['seconds']:.1f}s)")
            with tqdm.external_write_mode() if progress else contextlib.nullcontext():  # above the bar
                log(msg)  # through log: a study's worker prefixes its trial number
            stop = on_level(row) if on_level else None
            if stop and level < n_levels:
                log(f"early stop: {stop}; skipping {n_levels - level} level(s)")
                return True, stop
            if p.collapse_floor is not None and is_collapsed(row["val_acc"], p.collapse_floor) and level < n_levels:
                reason = (f"validation accuracy {row['val_acc']:.3f} below collapse_floor {p.collapse_floor} "
                          f"at level {level}")
                log(f"collapse early stop: {reason}; skipping {n_levels - level} level(s)")
                return True, reason
    finally:
        bar.close()
    return False, ""


def _finish(run: Run, rows: list[dict], stopped: bool, reason: str, teacher_src: str,
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
    rows = stored_rows(cfg, out, resume)
    stored = stored_state(cfg, out, rows)  # a damaged run directory fails here, before start_run writes
    run = start_run(cfg, out)
    run.share_dir = Path(share_dir) if share_dir is not None else None
    reused = 0
    if run.share_dir is not None:
        if not rows:
            rows = adopt_prefix(run, log) or adopt_dense(run, log)
            reused = len(rows)
            if reused:
                stored = stored_state(cfg, out, rows)
                if on_level is not None:  # recorded; a stop applies from the next level to train
                    for row in rows:
                        on_level(row)
        register_prefix(run)
    start_level = resume_run(run, rows, stored, log)
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
