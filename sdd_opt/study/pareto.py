"""Pareto fronts of a study, as tables: over the trials' selected points, or over all levels.

The selected-point front is Optuna's own (``study.best_trials``, which honours constraints).
Because every trial keeps its whole curve, a second front over *every level of every trial*
answers "which (config, number of levels) gives the best accuracy at each sparsity?" -- often
denser than the selected-point front, since one curve contributes several points.
"""

from __future__ import annotations

from typing import Optional

import optuna
import pandas as pd
from optuna.trial import TrialState

from sdd_opt.study.measure import Measure, measure_of
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


def trial_points(t: optuna.trial.FrozenTrial, measure: Measure) -> list[tuple[float, float, float]]:
    return measure.curve_points(TrialRecord.from_trial(t).curve)


def hypervolume(study: optuna.Study, spec: StudySpec, trials: Optional[list] = None) -> Optional[float]:
    """The search measure (see above) over the complete, feasible trials; None without any."""
    trials = complete_trials(study) if trials is None else trials
    measure = measure_of(spec)
    points = [p for t in trials if is_feasible(t) for p in trial_points(t, measure)]
    return measure.hypervolume(points) if points else None


def hypervolume_history(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """The search measure after each complete trial (by trial number), and the epochs paid so far."""
    done = sorted(complete_trials(study), key=lambda t: t.number)
    measure = measure_of(spec)
    rows, epochs, front = [], 0.0, []
    for i, t in enumerate(done):
        epochs += TrialRecord.from_trial(t).paid_epochs
        if is_feasible(t):
            front = measure.front(front + trial_points(t, measure))
        rows.append({"trials": i + 1, "trial": t.number, "epochs": epochs,
                     "hypervolume": measure.hypervolume(front) if front else None})
    return pd.DataFrame(rows)


def front_of_levels(spec) -> bool:
    """A study whose objectives are not (val_acc, sparsity) -- e.g. ``curve_hv`` -- shows its front over
    all levels: the selected-point front of one objective would be a single trial."""
    return not {"val_acc", "sparsity"} <= set(spec.metric_names)
