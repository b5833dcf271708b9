"""Pareto fronts of a study, as tables: over the trials' selected points, or over all levels.

The selected-point front is Optuna's own (``study.best_trials``, which honours constraints).
Because every trial keeps its whole curve, a second front over *every level of every trial*
answers "which (config, number of levels) gives the best accuracy at each sparsity?" -- often
denser than the selected-point front, since one curve contributes several points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import optuna
import pandas as pd
from optuna.trial import TrialState

from sdd_opt.study.record import TrialRecord, is_feasible
from sdd_opt.study.spec import StudySpec

_SDD_COLS = ("sdd_gap", "dense_acc", "dip_acc", "peak_acc", "sdd_present", "remedy", "val_acc_std", "test_acc")


def searched_values(t: optuna.trial.FrozenTrial, spec: StudySpec) -> dict[str, object]:
    """``param:<key>`` columns: each searched key's value in the trial's config; a key that did not
    apply (T without distillation, drawn by ``sample_always``) is empty (:mod:`sdd_opt.study.applied`)."""
    from sdd_opt.study.applied import applied_values

    values = applied_values(t, spec)
    return {f"param:{key}": values.get(key) for key in spec.search_space}


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def front_table(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """One row per Pareto-optimal trial: objectives, selected level, SDD metrics, parameters."""
    rows = []
    for t in sorted(study.best_trials, key=lambda t: t.number):
        rec = TrialRecord.from_trial(t)
        row = {"trial": t.number}
        row.update({m: v for m, v in zip(spec.metric_names, t.values)})
        row["level"] = rec.selected_level
        for c in _SDD_COLS:
            row[c] = rec.metric(c)
        row["feasible"] = is_feasible(t)
        row.update(searched_values(t, spec))
        rows.append(row)
    return _applied_columns(pd.DataFrame(rows))


def _applied_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the ``param:`` columns of keys that applied to no row (T and alpha on a front of l2 trials)."""
    empty = [c for c in df.columns if c.startswith("param:") and df[c].isna().all()]
    return df.drop(columns=empty)


def nondominated(points: list[tuple[float, ...]], directions: list[str]) -> list[int]:
    """Indices of the non-dominated points (sign-flipped so every objective is maximized)."""
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    pts = [tuple(s * v for s, v in zip(sign, p)) for p in points]
    keep = []
    for i, p in enumerate(pts):
        dominated = any(
            all(q[k] >= p[k] for k in range(len(p))) and any(q[k] > p[k] for k in range(len(p)))
            for j, q in enumerate(pts) if j != i
        )
        if not dominated:
            keep.append(i)
    return keep


def levels_front(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """Front over (validation accuracy, sparsity) of every level of every complete, feasible trial."""
    rows = []
    for t in complete_trials(study):
        if not is_feasible(t):
            continue
        rec = TrialRecord.from_trial(t)
        for r in rec.curve:
            rows.append({"trial": t.number, "level": r["level"], "val_acc": r["val_acc"], "sparsity": r["sparsity"],
                         "val_acc_std": r.get("val_acc_std", 0.0), "test_acc": r["test_acc"],
                         "remedy": rec.remedy, **searched_values(t, spec)})
    if not rows:
        return pd.DataFrame(columns=["trial", "level", "val_acc", "sparsity"])
    keep = nondominated([(r["val_acc"], r["sparsity"]) for r in rows], ["maximize", "maximize"])
    df = pd.DataFrame([rows[i] for i in keep])
    # equal points keep the lowest (trial, level): the one whose weights a study keeps (front_models)
    df = df.sort_values(["sparsity", "trial", "level"], kind="stable")
    df = df.drop_duplicates(subset=["val_acc", "sparsity"]).reset_index(drop=True)
    return _applied_columns(df)


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float] = (0.0, 0.0)) -> float:
    """Area dominated by ``points`` (both maximized) above the reference point."""
    pts = sorted({p for p in points if p[0] > ref[0] and p[1] > ref[1]}, key=lambda p: -p[0])
    area, best_y = 0.0, ref[1]
    for x, y in pts:  # sweep from the largest x down, adding the strip each new y adds
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return area


# ---------------------------------------------------------------------- the one search measure
#
# Every place that scores a search (``study status``, the report, the dashboard, the benchmarks)
# uses this measure, so that "sampler A beats sampler B" means the same thing everywhere:
#
# * the front is over **every level of every trial** (a curve is many candidate models);
# * points are **selected on validation accuracy** (what a user can see), and the area is
#   measured with their **test accuracy** (what they would get): no winner's curse;
# * the sparsity axis is **decades of weights removed**, -log10(1 - sparsity): 90 % -> 1,
#   99 % -> 2, so going from 95 % to 99 % (5x fewer weights) counts as much as it should;
# * the reference point is what a user would call worthless: the collapse floor (or chance
#   accuracy when the study has none) and the dense model (0 decades).

MAX_DECADES = 6.0  # 99.9999 % sparsity: keeps a fully pruned level finite


def decades(sparsity: float) -> float:
    """Decades of weights removed: -log10(remaining fraction)."""
    return min(MAX_DECADES, -math.log10(max(1.0 - float(sparsity), 10.0 ** -MAX_DECADES)))


@dataclass(frozen=True)
class Measure:
    """Reference point of the search measure: accuracy floor and the dense model's 0 decades."""

    ref_acc: float
    ref_decades: float = 0.0

    def curve_points(self, rows) -> list[tuple[float, float, float]]:
        """(val_acc, decades, test_acc) of each level row (NaN accuracies dropped)."""
        out = []
        for r in rows:
            v, t = float(r["val_acc"]), float(r.get("test_acc", float("nan")))
            if not math.isnan(v):
                out.append((v, decades(r["sparsity"]), t))
        return out

    def front(self, points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        """Points not dominated in (val_acc, decades)."""
        pts = sorted(set(points), key=lambda p: (-p[1], -p[0]))
        keep, best_v = [], -math.inf
        for p in pts:  # from the sparsest down: keep a point only if it beats every sparser one
            if p[0] > best_v:
                keep.append(p)
                best_v = p[0]
        return keep

    def hypervolume(self, points: list[tuple[float, float, float]], accuracy: str = "test") -> float:
        """HV of the validation-selected front, with test (default) or validation accuracy."""
        i = 2 if accuracy == "test" else 0
        return hypervolume_2d([(p[i], p[1]) for p in self.front(points) if not math.isnan(p[i])],
                              (self.ref_acc, self.ref_decades))

    def curve_hypervolume(self, rows) -> float:
        """One curve's own HV on validation accuracy: the score a sampler may learn from."""
        return self.hypervolume(self.curve_points(rows), accuracy="val")


def measure_of(spec: StudySpec) -> Measure:
    """The study's reference point: its collapse floor, else chance accuracy of its dataset."""
    floor = spec.file.collapse_floor
    if floor is None:
        from sdd_opt.data import SHAPES

        shape = SHAPES.get(spec.base.data.name)
        floor = 1.0 / shape[1] if shape else 0.0
    return Measure(ref_acc=float(floor))


def trial_points(t: optuna.trial.FrozenTrial, measure: Measure) -> list[tuple[float, float, float]]:
    return measure.curve_points(TrialRecord.from_trial(t).curve)


def hypervolume(study: optuna.Study, spec: StudySpec, trials: Optional[list] = None) -> Optional[float]:
    """The search measure (see above) over the complete, feasible trials; None without any."""
    trials = complete_trials(study) if trials is None else trials
    measure = measure_of(spec)
    points = [p for t in trials if is_feasible(t) for p in trial_points(t, measure)]
    return measure.hypervolume(points) if points else None


def trial_cost(t: optuna.trial.FrozenTrial) -> float:
    """Epochs a complete trial made the search pay: what it trained, teachers included (levels
    reused from an earlier identical trial are free); older records fall back to the curve's epochs."""
    rec = TrialRecord.from_trial(t)
    return float(rec.epochs_trained if rec.epochs_trained is not None else (rec.curve_epochs or 0.0))


def hypervolume_history(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """The search measure after each complete trial (by trial number), and the epochs paid so far."""
    done = sorted(complete_trials(study), key=lambda t: t.number)
    measure = measure_of(spec)
    rows, epochs, front = [], 0.0, []
    for i, t in enumerate(done):
        epochs += trial_cost(t)
        if is_feasible(t):
            front = measure.front(front + trial_points(t, measure))
        rows.append({"trials": i + 1, "trial": t.number, "epochs": epochs,
                     "hypervolume": measure.hypervolume(front) if front else None})
    return pd.DataFrame(rows)
