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

from sdd_opt.study.record import TrialRecord, is_feasible
from sdd_opt.study.spec import StudySpec

_SDD_COLS = ("sdd_gap", "dense_acc", "dip_acc", "peak_acc", "sdd_present", "remedy", "val_acc_std", "test_acc")


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
        row.update({f"param:{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


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
                         "remedy": rec.remedy, **{f"param:{k}": v for k, v in t.params.items()}})
    if not rows:
        return pd.DataFrame(columns=["trial", "level", "val_acc", "sparsity"])
    keep = nondominated([(r["val_acc"], r["sparsity"]) for r in rows], ["maximize", "maximize"])
    df = pd.DataFrame([rows[i] for i in keep])
    return df.sort_values("sparsity").drop_duplicates(subset=["val_acc", "sparsity"]).reset_index(drop=True)


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float] = (0.0, 0.0)) -> float:
    """Area dominated by ``points`` (both maximized) above the reference point."""
    pts = sorted({p for p in points if p[0] > ref[0] and p[1] > ref[1]}, key=lambda p: -p[0])
    area, best_y = 0.0, ref[1]
    for x, y in pts:  # sweep from the largest x down, adding the strip each new y adds
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return area


def hypervolume(study: optuna.Study, spec: StudySpec, trials: Optional[list] = None) -> Optional[float]:
    """Hypervolume of the accuracy/sparsity front (reference point 0, 0); None without both objectives."""
    names = spec.metric_names
    if "val_acc" not in names or "sparsity" not in names:
        return None
    ia, isp = names.index("val_acc"), names.index("sparsity")
    trials = complete_trials(study) if trials is None else trials
    return hypervolume_2d([(t.values[ia], t.values[isp]) for t in trials if is_feasible(t)])


def hypervolume_history(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """Hypervolume after each complete trial (by trial number), and the ``curve_epochs`` so far."""
    done = sorted(complete_trials(study), key=lambda t: t.number)
    rows, epochs = [], 0.0
    for i, t in enumerate(done):
        epochs += TrialRecord.from_trial(t).curve_epochs or 0.0
        rows.append({"trials": i + 1, "trial": t.number, "curve_epochs": epochs,
                     "hypervolume": hypervolume(study, spec, done[:i + 1])})
    return pd.DataFrame(rows)
