"""Parameter importances over the trials where each parameter applied: one set per remedy group.

Optuna ranks every parameter a trial holds; with ``sample_always`` an l2 trial holds T and alpha
that never reached its config, so a plain ranking credits ``distill.temperature`` with what the
remedy choice did. Here the complete trials are grouped by the keys that applied to them
(:func:`sdd_opt.study.applied.applied_keys`; in practice one group per remedy branch, named by the
``when`` keys' values, e.g. ``distill.enabled=true``), and each group's importances are computed
over its own trials, on its applied keys that vary, with the values the config took (an l2
weight switched off is 0, not a ``.off`` switch). Used by the report and the dashboard.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from sdd_opt.study.spec import StudySpec

ALL = "all trials"


def importance_method() -> str:
    """fANOVA when scikit-learn is installed (Optuna's default), else PED-ANOVA (what optuna-dashboard uses)."""
    import importlib.util

    return "fANOVA" if importlib.util.find_spec("sklearn") is not None else "PED-ANOVA"


def _distribution(spec: StudySpec, key: str, values: list[Any]):
    """The distribution of ``key`` over ``values`` (a switched-off float's 0 sits a decade below its range)."""
    p = spec.search_space[key]
    if p.type == "categorical":
        return CategoricalDistribution(p.choices), values
    if p.type == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1)), [int(v) for v in values]
    low = float(p.low)
    if p.log and any(float(v) == 0.0 for v in values):
        low = low / 10.0
        values = [low if float(v) == 0.0 else float(v) for v in values]
    elif any(float(v) < low for v in values):
        low = min(float(v) for v in values)
    return FloatDistribution(low, float(p.high), log=p.log, step=p.step if low == p.low else None), \
        [float(v) for v in values]


def groups(trials: list[FrozenTrial], spec: StudySpec) -> dict[str, list[FrozenTrial]]:
    """Complete trials by the set of keys that applied, named by their ``when`` keys' values."""
    from sdd_opt.study.applied import applied_values

    cond = sorted({k for p in spec.search_space.values() for k in (p.when or {})})
    out: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        values = applied_values(t, spec)
        label = ", ".join(f"{k}={str(values.get(k)).lower()}" for k in cond if k in values) or ALL
        out.setdefault(label, []).append(t)
    return out


def _group_study(group: list[FrozenTrial], spec: StudySpec) -> tuple[optuna.Study, list[str]]:
    """An in-memory study of the group's trials with only their applied, varying parameters."""
    from sdd_opt.study.applied import applied_values

    values = [applied_values(t, spec) for t in group]
    keys = [k for k in spec.search_space
            if all(k in v for v in values) and len({repr(v[k]) for v in values}) > 1]
    columns = {k: _distribution(spec, k, [v[k] for v in values]) for k in keys}
    study = optuna.create_study(directions=spec.directions)
    for j, t in enumerate(group):
        study.add_trial(optuna.trial.create_trial(
            values=list(t.values), params={k: columns[k][1][j] for k in keys},
            distributions={k: columns[k][0] for k in keys}))
    return study, keys


def importances(trials: list[FrozenTrial], spec: StudySpec) -> tuple[dict[str, dict[str, dict[str, float]]],
                                                                      dict[str, str]]:
    """``{objective: {group: {key: importance}}}`` and, per "objective · group", why none could be computed."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    out: dict[str, dict[str, dict[str, float]]] = {}
    notes: dict[str, str] = {}
    fanova = importance_method() == "fANOVA"
    for label, group in groups(trials, spec).items():
        if len(group) < 2:
            notes[label] = f"needs at least 2 complete trials (has {len(group)})"
            continue
        study, keys = _group_study(group, spec)
        if not keys:
            notes[label] = "no parameter that applied to these trials varies among them"
            continue
        for i, (name, direction) in enumerate(zip(spec.metric_names, spec.directions)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if fanova:
                        imp = get_param_importances(study, target=lambda t, i=i: t.values[i],
                                                    evaluator=FanovaImportanceEvaluator(seed=0))
                    else:  # PED-ANOVA ranks what leads to *low* target values
                        sign = -1.0 if direction == "maximize" else 1.0
                        imp = get_param_importances(study, target=lambda t, i=i, sign=sign: sign * t.values[i],
                                                    evaluator=PedAnovaImportanceEvaluator())
            except Exception as exc:  # too few trials, ...
                notes[f"{name} · {label}"] = f"not computable: {str(exc).splitlines()[0][:200]}"
                continue
            out.setdefault(name, {})[label] = dict(imp)
    return out, notes


def dashboard_importances(trials: list[FrozenTrial], spec: StudySpec) -> list[list[dict]]:
    """optuna-dashboard's ``param_importances`` answer: per objective, ``key | group`` entries."""
    imps, _ = importances(trials, spec)
    kinds = {"categorical": "CategoricalDistribution", "int": "IntDistribution", "float": "FloatDistribution"}
    out = []
    for name in spec.metric_names:
        entries = [{"name": f"{key} | {label}" if label != ALL else key, "importance": float(v),
                    "distribution": kinds[spec.search_space[key].type]}
                   for label, imp in (imps.get(name) or {}).items() for key, v in imp.items()]
        out.append(sorted(entries, key=lambda e: -e["importance"]))
    return out
