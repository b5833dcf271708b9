"""Replay: serve a study's trials from a table of recorded curves instead of training them.

A *tabular benchmark* (as in HPOBench or syne-tune's blackbox repository): every curve of
``benchmarks/data/mnist1d_curves.csv`` was trained once at full fidelity, so a study can be run
again and again -- 20 seeds x 100 trials x every sampler -- in minutes. The same study file runs
real or replayed (``sdd-opt study run FILE --replay TABLE``); a replayed trial

* samples its config exactly as a real one (same sampler, space, seeds and ``--set``);
* is served the curve of the **nearest grid point** of the table (log distance for weights that
  span decades, linear otherwise, each normalised by its range in the table; distillation on/off
  must match), for the trial's training seed, up to the levels the config would train;
* goes through the same successive-halving rule level by level, and records the same
  :class:`~sdd_opt.study.record.TrialRecord` (plus ``replay``: the grid point served);
* is **charged the epochs the real trial would have cost**: each level it is served that the
  study did not already train for this config up to its stop (a repeated config resumes, and a
  run differing only in where it stops -- target sparsity, levels, collapse floor -- shares its
  levels, as ``run_curve``'s shared folder does; level 0 is free when a run differing only in its
  pruning schedule trained it), plus the dense teacher's epochs the first time a distillation
  trial needs it.

Table columns: the searched keys by config path, ``seed``, then ``level, sparsity, train_acc,
val_acc, test_acc, epochs``; an empty cell means "does not apply" (T of a no-distillation curve).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import optuna

from sdd_opt.config import RunConfig, get_dotted
from sdd_opt.errors import UserError
from sdd_opt.study.objective import Objective
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.spec import StudySpec

LEVEL_COLUMNS = ("level", "sparsity", "train_acc", "val_acc", "test_acc", "epochs")
_LOG_FLOOR = 1e-5  # a weight of 0 ("none") sits one decade below the table's smallest l2


def _cell(text: str) -> Any:
    t = text.strip()
    if t == "":
        return None
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    return float(t)


@dataclass
class CurveTable:
    """Recorded curves grouped by (grid point, seed); see the module docstring for the format."""

    path: str
    keys: tuple[str, ...]
    curves: dict[tuple, list[dict]]          # (point values..., seed) -> level rows
    points: list[tuple]                      # distinct grid points (values in ``keys`` order)
    seeds: tuple[int, ...]

    @classmethod
    def load(cls, path: str | Path) -> "CurveTable":
        path = Path(path)
        try:
            with path.open(newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                rows = list(reader)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the curve table ({exc.__class__.__name__})") from None
        if not header or "seed" not in header or tuple(header[-len(LEVEL_COLUMNS):]) != LEVEL_COLUMNS:
            raise UserError(f"{path}: not a curve table (expected the searched keys, seed, "
                            f"{', '.join(LEVEL_COLUMNS)})")
        k = header.index("seed")
        keys = tuple(header[:k])
        curves: dict[tuple, list[dict]] = {}
        try:
            for n, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    raise ValueError(f"line {n} has {len(row)} cells, the header {len(header)}")
                point = tuple(_cell(c) for c in row[:k])
                level = {c: float(v) for c, v in zip(LEVEL_COLUMNS, row[k + 1:])}
                level["level"], level["epochs"] = int(level["level"]), int(level["epochs"])
                curves.setdefault((*point, int(float(row[k]))), []).append(level)
        except ValueError as exc:
            raise UserError(f"{path}: not a curve table ({exc})") from None
        if not curves:
            raise UserError(f"{path}: the curve table holds no curves")
        for rows_ in curves.values():
            rows_.sort(key=lambda r: r["level"])
        points = sorted({key[:-1] for key in curves}, key=str)
        seeds = tuple(sorted({key[-1] for key in curves}))
        return cls(str(path), keys, curves, points, seeds)

    # -------------------------------------------------------------------------- snapping
    def _scales(self, log_keys: Optional[set[str]]) -> list[tuple[bool, float, float]]:
        """Per key: (log scale?, low, range) of its numeric values in the table. A key is on a log
        scale when the study searches it so (``log_keys``), else when its values span a decade."""
        out = []
        for i, key in enumerate(self.keys):
            vals = [p[i] for p in self.points if isinstance(p[i], float)]
            pos = [v for v in vals if v > 0]
            log = key in log_keys if log_keys is not None else bool(pos) and max(pos) / min(pos) >= 10.0
            tv = [self._t(v, log) for v in vals] or [0.0]
            out.append((log, min(tv), (max(tv) - min(tv)) or 1.0))
        return out

    @staticmethod
    def _t(v: float, log: bool) -> float:
        return math.log10(max(v, _LOG_FLOOR)) if log else v

    def snap(self, cfg: RunConfig, log_keys: Optional[set[str]] = None) -> tuple[dict[str, Any], float]:
        """The grid point nearest to ``cfg`` (keys that do not apply to it are ignored) and its distance."""
        data = cfg.describe()
        want = [get_dotted(data, k) for k in self.keys]
        scales = self._scales(log_keys)
        best, best_d = None, math.inf
        for p in self.points:
            d = 0.0
            for (log, _lo, rng), w, v in zip(scales, want, p):
                if v is None:  # the key does not apply to this grid point
                    continue
                if isinstance(v, bool) or isinstance(w, bool):
                    d += 0.0 if bool(w) == bool(v) else math.inf
                else:
                    d += ((self._t(float(w), log) - self._t(v, log)) / rng) ** 2
            if d < best_d:
                best, best_d = p, d
        if best is None:
            raise UserError(f"{self.path}: no grid point matches the trial's config")
        return dict(zip(self.keys, best)), math.sqrt(best_d)

    def curve(self, point: dict[str, Any], seed: int) -> list[dict]:
        key = (*[point[k] for k in self.keys], seed)
        if key not in self.curves:
            if seed not in self.seeds:
                raise UserError(f"{self.path}: no curve for seed {seed} (the table has seeds "
                                f"{', '.join(map(str, self.seeds))}; set the study's seed to one of them)")
            raise UserError(f"{self.path}: no curve for seed {seed} at the grid point {point} (an incomplete table?)")
        return [dict(r) for r in self.curves[key]]


def levels_for(rows: list[dict], cfg: RunConfig) -> list[dict]:
    """The levels a real run of ``cfg`` would train: up to its target sparsity or level count."""
    n = cfg.prune.n_levels
    return [r for r in rows if r["level"] <= n]


class ReplayObjective(Objective):
    """:class:`Objective` whose curves come from a :class:`CurveTable` (no training, no artifacts)."""

    def __init__(self, spec: StudySpec, table: CurveTable, *, log: Callable[[str], None] = print):
        from sdd_opt.study.halving import make_halving

        self.spec, self.table, self.log = spec, table, log
        self.store = self.runs = self.device = self.threads = self.run_curve = None
        self.progress = False
        self.halving = make_halving(spec)
        self._trained: Optional[dict[str, int]] = None   # result hash -> levels trained so far
        self._teachers: Optional[set[str]] = None
        self._dense: Optional[set[str]] = None             # dense levels trained (shared across schedules)

    def _load_state(self, study: optuna.Study) -> None:
        """What earlier trials of this study trained (a resumed replay study charges the same)."""
        self._trained, self._teachers, self._dense = {}, set(), set()
        for t in study.get_trials(deepcopy=False):
            info = t.user_attrs.get("replay") or {}
            for run, n in (info.get("trained") or {}).items():
                self._trained[run] = max(self._trained.get(run, 0), int(n))
            self._teachers.update(info.get("teachers") or [])
            self._dense.update(info.get("dense") or [])

    def _run(self, trial: optuna.Trial, budget: Optional[int]) -> tuple[float, ...] | float:
        from sdd_opt.distill import teacher_config, teacher_key
        from sdd_opt.sharing import dense_key, prefix_key

        if self._trained is None:
            self._load_state(trial.study)
        cfg, seeds = self._trial_config(trial, budget)
        point, dist = self.table.snap(cfg, {k for k, p in self.spec.search_space.items() if p.log})
        curves, stops, cost, trained = [], [], [], {}
        teachers, dense = [], []
        for seed in seeds:
            run_cfg = cfg.model_copy(deep=True)
            run_cfg.seed = seed
            run = prefix_key(run_cfg)  # levels already trained by this run with any stop
            rows, stop = [], ""
            for row in levels_for(self.table.curve(point, seed), run_cfg):
                rows.append(row)
                stop = self.level_stop(trial, rows) or ""
                if stop and row["level"] < run_cfg.prune.n_levels:
                    break
                stop = ""
            TrialRecord(seed_curves={seed: rows}).write(trial, "seed_curves")
            before = self._trained.get(run, 0)
            if before == 0 and rows and dense_key(run_cfg) in self._dense:
                before = 1  # level 0 shared with a run of another pruning schedule (as run_curve's dense cache)
            elif rows and dense_key(run_cfg) not in self._dense:
                self._dense.add(dense_key(run_cfg))
                dense.append(dense_key(run_cfg))
            new = rows[before:]
            self._trained[run] = trained[run] = max(before, len(rows))
            teacher_epochs = 0
            if run_cfg.distill.enabled and teacher_key(run_cfg) not in self._teachers:
                self._teachers.add(teacher_key(run_cfg))
                teachers.append(teacher_key(run_cfg))
                teacher_epochs = teacher_config(run_cfg).train.epochs
            cost.append({"seed": seed, "levels_reused": min(before, len(rows)), "levels_trained": len(new),
                         "epochs_trained": sum(r["epochs"] for r in new),
                         "teacher": "trained" if teacher_epochs else ("cached" if run_cfg.distill.enabled else "none"),
                         "teacher_epochs": teacher_epochs})
            curves.append(rows)
            stops.append(stop)
        trial.set_user_attr("replay", {"table": Path(self.table.path).name, "point": point,
                                       "distance": round(dist, 4), "trained": trained, "teachers": teachers,
                                       "dense": dense})
        TrialRecord.of_cost(cost).write(trial, "cost", "epochs_trained")
        return self._report(trial, cfg, curves, seeds, stops, 0.0)
