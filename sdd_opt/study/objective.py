"""The Optuna objective: one trial = one sampled config, trained through its IMP levels.

For each of the study's ``repeats`` seeds the trial runs (or resumes, or reuses) the curve in
``runs/<result hash>``, records every finished level as it goes, then reports the objectives at
the level picked by the study's ``select`` rule on the seed-mean validation curve.

What a trial stores is :class:`sdd_opt.study.record.TrialRecord` (user attrs), plus the
artifacts ``curve.csv``, ``curve_seed<k>.csv`` and ``curve.png``, and the weights of its levels
on the study's front (:mod:`sdd_opt.study.front_models`).
"""

from __future__ import annotations

import fcntl
import math
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import optuna
from optuna.trial import TrialState

from sdd_opt.config import RunConfig
from sdd_opt.curve import sdd_metrics, select_level
from sdd_opt.errors import DivergedError, UserError
from sdd_opt.provenance import versions
from sdd_opt.study.halving import make_halving
from sdd_opt.study.measure import measure_of
from sdd_opt.study.record import TrialRecord, record_failure, seed_curve_key
from sdd_opt.study.signals import interrupt_reason
from sdd_opt.study.space import suggest_config
from sdd_opt.study.spec import StudySpec

TEACHER_CACHE_DEFAULT = "storage/teachers"


class TrialConfigError(RuntimeError):
    """A sampled combination is not a valid run config (e.g. rewind point past the epochs)."""


def remedy_of(cfg: RunConfig) -> str:
    if cfg.distill.enabled:
        return "distill"
    return "l2" if cfg.train.weight_decay > 0 else "none"


@contextmanager
def run_lock(run_dir: Path, log: Callable[[str], None]):
    """Exclusive use of a run directory; a second trial with the same config waits, then reuses it.

    ``flock`` is released by the kernel when a worker dies, so a killed worker never blocks.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{run_dir.name}: another trial is running this config; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """Per-level mean over seeds (levels every seed reached), with the validation spread."""
    n = min(len(c) for c in curves)
    out = []
    for i in range(n):
        rows = [c[i] for c in curves]
        row = {"level": rows[0]["level"]}
        for key in ("sparsity", "train_acc", "val_acc", "test_acc", "loss"):
            if all(key in r for r in rows):  # replayed curves have no loss
                row[key] = statistics.fmean(r[key] for r in rows)
        row["val_acc_std"] = statistics.stdev([r["val_acc"] for r in rows]) if len(rows) > 1 else 0.0
        row["test_acc_std"] = statistics.stdev([r["test_acc"] for r in rows]) if len(rows) > 1 else 0.0
        row["epochs"] = sum(r["epochs"] for r in rows)
        row["seconds"] = sum(r.get("seconds", 0.0) for r in rows)
        out.append(row)
    return out


def constraint_values(spec: StudySpec, values: dict[str, float]) -> list[float]:
    """Optuna's convention: a trial is feasible when every value is ≤ 0."""
    out = []
    for c in spec.file.constraints:
        v = values[c.metric]
        out.append(v - c.max if c.max is not None else c.min - v)
    return out


def constraint_names(spec: StudySpec) -> list[str]:
    return [f"{c.metric}<={c.max}" if c.max is not None else f"{c.metric}>={c.min}" for c in spec.file.constraints]


def _write_csv(rows: list[dict], path: Path) -> Path:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return path


class Objective:
    """Callable for ``study.optimize``; see the module docstring for what a trial records."""

    def __init__(self, spec: StudySpec, artifacts_dir: Path, *, device: Optional[str] = None,
                 threads: Optional[int] = None, progress: bool = False, log: Callable[[str], None] = print,
                 run_curve: Optional[Callable] = None, store=None):
        from sdd_opt.study.front_models import Sweeper
        from sdd_opt.study.storage import artifact_store, runs_dir

        self.spec = spec
        self.store = store if store is not None else artifact_store(artifacts_dir)
        self.sweeper = Sweeper(self.store, log=log)
        self.runs = runs_dir(artifacts_dir)
        self.run_curve = run_curve  # None: sdd_opt.imp.run_curve (imported when a trial runs)
        self.device = device
        self.threads = threads
        self.progress = progress
        self.log = log
        self.halving = make_halving(spec)

    def _check_budget(self, trial: optuna.Trial, budget: Optional[int]) -> None:
        """With many workers, give up a trial that would overshoot the study's total budget."""
        if not budget:
            return
        trials = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        ahead = sum(1 for t in trials if t.state == TrialState.COMPLETE
                    or (t.state == TrialState.RUNNING and t.number < trial.number))
        if ahead >= budget:
            record_failure(trial, "study budget already reached by other workers")
            raise optuna.TrialPruned("study budget already reached")

    def __call__(self, trial: optuna.Trial, budget: Optional[int] = None) -> tuple[float, ...] | float:
        """Run one trial; ``budget``: the study's complete trials wanted (None: no limit)."""
        self.sweep_weights(trial.study)
        try:
            return self._run(trial, budget)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt as exc:
            record_failure(trial, interrupt_reason(exc), interrupted=True)
            raise
        except Exception as exc:
            record_failure(trial, f"{type(exc).__name__}: {exc}", keep=True)
            raise

    def sweep_weights(self, study: optuna.Study) -> None:
        """Delete the kept weights that fell off the front (never fails a trial or a worker)."""
        sweeper = getattr(self, "sweeper", None)
        if sweeper is None:
            return
        try:
            sweeper.sweep(study)
        except Exception as exc:
            self.log(f"warning: front weights not swept ({type(exc).__name__}: {exc})")

    def _trial_config(self, trial: optuna.Trial, budget: Optional[int]) -> tuple[RunConfig, list[int]]:
        """Sample the trial's config and record what defines it (config, seeds, versions, remedy)."""
        self._check_budget(trial, budget)
        try:
            cfg = suggest_config(trial, self.spec)
        except UserError as exc:
            record_failure(trial, str(exc))
            raise TrialConfigError(str(exc)) from None
        if self.device:
            cfg.train.device = self.device
        if self.threads:
            cfg.train.threads = self.threads
        if self.runs is not None and cfg.distill.teacher.cache_dir == TEACHER_CACHE_DEFAULT:
            cfg.distill.teacher.cache_dir = str(self.runs.parent / "teachers")  # share teachers beside the runs
        seeds = [cfg.seed + i for i in range(self.spec.file.repeats)]
        from sdd_opt.plugins import provenance_of
        from sdd_opt.study.applied import applies_to

        applied = applies_to(cfg.describe(), self.spec)  # what the user reads; the sampler keeps all params
        record = TrialRecord(config=cfg.describe(), seeds=seeds, versions=versions(), remedy=remedy_of(cfg),
                             applied=applied, plugins=provenance_of(cfg).get("plugins"))
        record.write(trial, "config", "seeds", "versions", "remedy", "applied",
                     *(("plugins",) if record.plugins else ()))
        self.log(f"trial {trial.number}: {_describe_params(cfg.describe(), applied, self.spec)}")
        return cfg, seeds

    def _trial_log(self, trial: optuna.Trial, seed: int, n_seeds: int) -> Callable[[str], None]:
        """``log`` with the trial (and seed) in front: parallel workers' level lines interleave."""
        prefix = f"trial {trial.number}" + (f" seed {seed}" if n_seeds > 1 else "")
        return lambda msg: self.log(f"{prefix} {msg}")

    def level_stop(self, trial: optuna.Trial, rows: list[dict]) -> Optional[str]:
        """The study's successive-halving rule on this trial's levels so far (None: go on)."""
        if self.halving is None:
            return None
        peers = [TrialRecord.from_trial(t).curve for t in
                 trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        return self.halving.decide(rows, [p for p in peers if p])

    def _run(self, trial: optuna.Trial, budget: Optional[int]) -> tuple[float, ...] | float:
        from sdd_opt.distill import teacher_config, teacher_origin
        from sdd_opt.imp import run_curve as default_run_curve
        from sdd_opt.rundir import read_curve, result_hash

        run_curve = self.run_curve or default_run_curve
        cfg, seeds = self._trial_config(trial, budget)
        curves, run_dirs, stops, cost = [], [], [], []
        t0 = time.perf_counter()
        for seed in seeds:
            run_cfg = cfg.model_copy(deep=True)
            run_cfg.seed = seed
            run_dir = self.runs / result_hash(run_cfg)
            run_dirs.append(str(run_dir))
            TrialRecord(run_dirs=run_dirs).write(trial, "run_dirs")
            key = seed_curve_key(seed)
            done: list[dict] = []

            def on_level(row: dict, key=key, done=done) -> Optional[str]:
                done.append(row)
                trial.set_user_attr(key, done)
                return self.level_stop(trial, done)

            keep = "all" if self.store is not None and seed == seeds[0] else "last"  # front weights staged
            try:
                with run_lock(run_dir, self.log):
                    reused = len(read_curve(run_dir / "curve.csv"))  # levels an earlier trial or try finished
                    res = run_curve(run_cfg, run_dir, resume=True, on_level=on_level, keep_checkpoints=keep,
                                    progress=self.progress, log=self._trial_log(trial, seed, len(seeds)),
                                    share_dir=self.runs.parent / "shared")
            except DivergedError as exc:
                record_failure(trial, f"seed {seed}: {exc}")
                if keep == "all":  # a diverged run resumes to the same divergence: no staged level is needed
                    from sdd_opt.study.front_models import drop_staged

                    drop_staged(run_dir)
                raise
            trial.set_user_attr(key, res.rows)
            curves.append(res.rows)
            stops.append(res.stop_reason)
            reused = min(max(reused, int(res.extra.get("levels_reused", 0))), len(res.rows))
            origin = teacher_origin(res.teacher)
            cost.append({"seed": seed, "levels_reused": reused, "levels_trained": len(res.rows) - reused,
                         "epochs_trained": sum(int(r["epochs"]) for r in res.rows[reused:]), "teacher": origin,
                         "teacher_epochs": teacher_config(run_cfg).train.epochs if origin == "trained" else 0})
        # What this trial actually trained, teachers included (curve_epochs counts the curve's levels,
        # reused ones too, and no teacher).
        TrialRecord.of_cost(cost).write(trial, "cost", "epochs_trained")
        out = self._report(trial, cfg, curves, seeds, stops, time.perf_counter() - t0)
        if self.store is not None:
            self._keep_weights(trial, Path(run_dirs[0]))
        return out

    def _keep_weights(self, trial: optuna.Trial, run_dir: Path) -> None:
        from sdd_opt.study.front_models import drop_staged, keep_trial_weights

        try:
            keep_trial_weights(trial, self.store, run_dir, self.log)
        except Exception as exc:  # like a figure, kept weights must never fail a trial: an export retrains
            self.log(f"warning: trial {trial.number}: front weights not kept ({type(exc).__name__}: {exc})")
        with run_lock(run_dir, self.log):
            drop_staged(run_dir)

    def _report(self, trial, cfg: RunConfig, curves, seeds, stops, seconds):
        spec = self.spec
        mean = mean_curve(curves)
        sp = [r["sparsity"] for r in mean]
        val = [r["val_acc"] for r in mean]
        if any(math.isnan(v) for v in val):
            raise TrialConfigError("no validation accuracy: set data.val_fraction > 0 for a study")
        a = cfg.analysis
        sdd = sdd_metrics(sp, val, a.sdd_threshold, a.epsilon).as_dict()
        sdd_test = sdd_metrics(sp, [r["test_acc"] for r in mean], a.sdd_threshold, a.epsilon).as_dict()
        sel = select_level(val, sp, spec.file.select.rule, a.epsilon)  # the study's one tolerance (spec)
        epochs = float(sum(sum(r["epochs"] for r in c) for c in curves))
        values = {"val_acc": val[sel], "sparsity": sp[sel], "sdd_gap": sdd["sdd_gap"], "curve_epochs": epochs,
                  "curve_hv": measure_of(spec).curve_hypervolume(mean)}
        result = TrialRecord(
            curve=mean, selected_level=sel, val_acc=val[sel], val_acc_std=mean[sel]["val_acc_std"],
            sparsity=sp[sel], test_acc=mean[sel]["test_acc"], sdd=sdd, sdd_test=sdd_test, curve_epochs=epochs,
            stopped_early=any(stops), stop_reason="; ".join(s for s in stops if s),
            constraints=constraint_values(spec, values), seconds=seconds)
        result.write(trial, "curve", "selected_level", "val_acc", "val_acc_std", "sparsity", "test_acc", "sdd",
                     "sdd_test", "curve_epochs", "stopped_early", "stop_reason", "constraints", "seconds")
        for name, value in zip(constraint_names(spec), result.constraints):
            trial.set_constraint(name, value)  # Optuna 5: samplers and best_trials honour these
        if self.store is not None:
            self._upload(trial, cfg, mean, curves, seeds, sdd_test, sel)
        self.log(f"trial {trial.number}: val {val[sel]:.3f} at sparsity {sp[sel]:.3f} (level {sel}), "
                 f"sdd_gap {sdd['sdd_gap']:.3f}, {seconds:.0f}s")
        out = tuple(values[m] for m in spec.metric_names)
        return out if len(out) > 1 else out[0]

    def _upload(self, trial, cfg, mean, curves, seeds, sdd_test, sel) -> None:
        from optuna.artifacts import upload_artifact

        from sdd_opt.plots import plot_curve

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = [_write_csv(mean, tmp / "curve.csv")]
            if len(curves) > 1:
                files += [_write_csv(c, tmp / f"curve_seed{s}.csv") for c, s in zip(curves, seeds)]
            try:
                files.append(plot_curve(mean, sdd_test, tmp / "curve.png", selected_level=sel,
                                        title=f"trial {trial.number}: {remedy_of(cfg)}"))
            except Exception as exc:  # a figure must never fail a trial
                self.log(f"warning: no curve.png for trial {trial.number} ({exc})")
            for f in files:
                upload_artifact(artifact_store=self.store, file_path=str(f), study_or_trial=trial)


def _describe_params(config: dict, applied: list[str], spec: StudySpec) -> str:
    """The applied parameters only (``none`` for a switched-off float), as the progress line shows them."""
    from sdd_opt.config import get_dotted
    from sdd_opt.study.applied import value_text

    def short(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={value_text(spec, k, get_dotted(config, k), short)}" for k in applied) or "base config"
