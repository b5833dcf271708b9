"""What reports and dashboard plots read from a study's trials (see ``study/objective.py``'s contract)."""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from sdd_opt.study.params import decode
from sdd_opt.study.record import TrialRecord, constraint_values, is_feasible
from sdd_opt.study.spec import StudySpec

SDD_HOVER_KEYS = ("sdd_gap", "dense_acc", "dip_acc", "peak_acc", "sdd_present")  # SDD_FLAT_KEYS, hover order


def complete(study: optuna.Study) -> list[FrozenTrial]:
    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)


def trial_l2(t: FrozenTrial) -> float:
    """The student's l2 weight (weight decay) of a trial, from its resolved config, else its params."""
    cfg = TrialRecord.from_trial(t).config or {}
    wd = (cfg.get("train") or {}).get("weight_decay") if isinstance(cfg, dict) else None
    if wd is None:
        wd = decode(t.params, "train.weight_decay", 0.0)
    return float(wd or 0.0)


def remedy(t: FrozenTrial) -> str:
    return TrialRecord.from_trial(t).remedy or "none"


def curve_items(trials: Iterable[FrozenTrial]) -> list[dict]:
    """Items for :func:`sdd_opt.plots.plot_curves` (trials without a stored curve are skipped)."""
    out = []
    for t in trials:
        rec = TrialRecord.from_trial(t)
        if not rec.curve:
            continue
        out.append({"rows": rec.curve, "remedy": rec.remedy or "none", "l2": trial_l2(t), "number": t.number,
                    "label": f"trial {t.number}", "selected_level": rec.selected_level})
    return out


def fmt(v: Any) -> str:
    """Short human form of a value (4 significant digits for floats)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}"
    return str(v)


def constraint_text(t: FrozenTrial, spec: Optional[StudySpec]) -> str:
    """E.g. "sdd_gap 0.05 > max 0.02" for each violated constraint."""
    cons = constraint_values(t)
    if spec is None or not cons:
        return "violated" if any(c > 0 for c in cons) else ""
    parts = []
    for c, v in zip(spec.file.constraints, cons):
        if v > 0:
            bound = f"> max {c.max:g}" if c.max is not None else f"< min {c.min:g}"
            parts.append(f"{c.metric} {fmt(TrialRecord.from_trial(t).metric(c.metric, float('nan')))} {bound}")
    return "; ".join(parts)


def hover_text(t: FrozenTrial, spec: Optional[StudySpec] = None, level: Optional[int] = None) -> str:
    """Plotly hover (HTML): trial, remedy, objectives, SDD metrics, feasibility and parameters."""
    rec = TrialRecord.from_trial(t)
    esc = html.escape
    feasible = is_feasible(t)
    lines = [f"<b>trial {t.number}</b> · {esc(remedy(t))}" + ("" if feasible else " · <b>INFEASIBLE</b>")]
    if not feasible:
        lines.append(f"violates: {esc(constraint_text(t, spec))}")
    if level is not None:
        rows = rec.curve
        if 0 <= level < len(rows):
            r = rows[level]
            lines.append(f"level {level}: val {fmt(r.get('val_acc'))}, test {fmt(r.get('test_acc'))}, "
                         f"sparsity {fmt(r.get('sparsity'))}")
    if spec is not None and t.values is not None:
        lines.append(", ".join(f"{esc(m)} {fmt(v)}" for m, v in zip(spec.metric_names, t.values)))
    if rec.selected_level is not None:
        lines.append(f"selected level {rec.selected_level}, test acc {fmt(rec.test_acc)}")
    if "sdd_gap" in rec.sdd:
        lines.append("SDD (val): " + ", ".join(f"{k.replace('_acc', '')} {fmt(rec.sdd.get(k))}"
                                               for k in SDD_HOVER_KEYS))
    if spec is not None:
        from sdd_opt.study.applied import applied_values, value_text

        values = applied_values(t, spec)
        if values:
            lines.append("<i>params (applied)</i>")
            lines += [f"  {esc(k)} = {esc(value_text(spec, k, v, fmt))}" for k, v in values.items()]
    return "<br>".join(lines)
