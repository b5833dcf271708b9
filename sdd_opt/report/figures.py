"""Interactive (plotly) figures of a study, shared by the HTML report and the dashboard.

Every figure hovers with what a researcher asks next: the trial's remedy, objectives, SDD metrics
(gap, dense / dip / peak accuracy) and parameters; infeasible trials (an SDD constraint violated)
are drawn as grey crosses and say which constraint they break. Sparsity is shown as the papers
show it: remaining weights on a reversed log axis.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from sdd_opt.plots import (
    METRIC_LABELS,
    REMEDIES,
    REMEDY_LABELS,
    l2_range,
    log_ticks,
    percent_ticks,
    remaining_percent,
    remedy_color,
)
from sdd_opt.report.data import complete, fmt, hover_text, remedy, trial_l2
from sdd_opt.study.record import TrialRecord, is_feasible
from sdd_opt.study.spec import StudySpec

TICKS = [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]  # no data: the papers' ticks
INFEASIBLE_COLOR = "#9a9a9a"
FRONT_LINE = "#111111"
_HOVER = "%{text}<extra></extra>"


def remaining_axis(values: Sequence[float] = (), title: str = "remaining weights (log scale, sparser →)") -> dict:
    ticks = percent_ticks(values) if len(values) else TICKS
    return {"type": "log", "autorange": "reversed", "tickvals": ticks, "ticktext": [f"{v:g}%" for v in ticks],
            "title": {"text": title}, "gridcolor": "#e6e6e6"}


def _layout(fig: go.Figure, title: str, height: int = 470, **kw) -> go.Figure:
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.01, "font": {"size": 15}},
                      height=height, margin={"l": 60, "r": 20, "t": 70, "b": 55}, hoverlabel={"align": "left"},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}}, **kw)
    return fig


def _front_numbers(study: optuna.Study) -> set[int]:
    try:
        if len(study.directions) > 1:
            return {t.number for t in study.best_trials}
        return {study.best_trial.number}
    except ValueError:  # no complete trial
        return set()


def _axes(spec: StudySpec):
    """(x value fn, y value fn, x axis, y axis) for the selected-point Pareto plot."""
    names = spec.metric_names
    if "val_acc" in names and "sparsity" in names:
        ia, isp = names.index("val_acc"), names.index("sparsity")
        return (lambda t: remaining_percent([t.values[isp]])[0], lambda t: t.values[ia],
                "remaining", {"title": {"text": "validation accuracy at the selected level"}})
    if len(names) >= 2:
        return (lambda t: t.values[0], lambda t: t.values[1],
                {"title": {"text": f"{names[0]} ({spec.directions[0]})"}},
                {"title": {"text": f"{names[1]} ({spec.directions[1]})"}})
    return (lambda t: t.number, lambda t: t.values[0], {"title": {"text": "trial"}},
            {"title": {"text": f"{names[0]} ({spec.directions[0]})"}})


def pareto_figure(study: optuna.Study, spec: StudySpec, title: str = "Pareto front (selected points)") -> go.Figure:
    """Every complete trial at its selected level; the front highlighted, infeasible trials apart."""
    trials = complete(study)
    front = _front_numbers(study)
    fx, fy, xaxis, yaxis = _axes(spec)
    span = l2_range(trial_l2(t) for t in trials)
    if xaxis == "remaining":
        xaxis = remaining_axis([fx(t) for t in trials])
    fig = go.Figure()
    staircase = "remaining" in str(xaxis.get("title", ""))  # both maximized: accuracy over sparsity
    front_trials = sorted((t for t in trials if t.number in front), key=fx, reverse=staircase)
    if len(front_trials) > 1 and len(spec.metric_names) > 1:
        fig.add_trace(go.Scatter(x=[fx(t) for t in front_trials], y=[fy(t) for t in front_trials], mode="lines",
                                 line={"color": FRONT_LINE, "width": 1.5, "dash": "dot",
                                       "shape": "hv" if staircase else "linear"},
                                 hoverinfo="skip", name="front", showlegend=False))
    for rem in REMEDIES:
        for on_front in (False, True):
            group = [t for t in trials if remedy(t) == rem and is_feasible(t) and (t.number in front) == on_front]
            if not group:
                continue
            fig.add_trace(go.Scatter(
                x=[fx(t) for t in group], y=[fy(t) for t in group], mode="markers",
                name=f"{REMEDY_LABELS[rem]}" + (" · Pareto front" if on_front else ""),
                legendgroup=rem, text=[hover_text(t, spec) for t in group], hovertemplate=_HOVER,
                customdata=[t.number for t in group],
                marker={"color": [remedy_color(rem, trial_l2(t), span) for t in group],
                        "size": 15 if on_front else 9, "symbol": "star" if on_front else "circle",
                        "opacity": 1.0 if on_front else 0.75,
                        "line": {"color": "black" if on_front else "white", "width": 1.2 if on_front else 0.5}}))
    bad = [t for t in trials if not is_feasible(t)]
    if bad:
        fig.add_trace(go.Scatter(
            x=[fx(t) for t in bad], y=[fy(t) for t in bad], mode="markers", name="infeasible (SDD constraint violated)",
            text=[hover_text(t, spec) for t in bad], hovertemplate=_HOVER, customdata=[t.number for t in bad],
            marker={"color": INFEASIBLE_COLOR, "symbol": ["x" if t.number not in front else "x-open" for t in bad],
                    "size": [10 if t.number not in front else 15 for t in bad], "line": {"width": 1}}))
    if not trials:
        fig.add_annotation(text="no complete trial yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _layout(fig, title, xaxis=xaxis, yaxis=yaxis)


def _short_hover(t: FrozenTrial, row: dict, level: int) -> str:
    params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
    return (f"<b>trial {t.number}</b> · {remedy(t)} · level {level}<br>val {fmt(row.get('val_acc'))}, "
            f"test {fmt(row.get('test_acc'))}, train {fmt(row.get('train_acc'))}<br>sparsity {fmt(row.get('sparsity'))}"
            f"<br>{params}")


def levels_figure(study: optuna.Study, spec: StudySpec, front=None,
                  title: str = "Pareto front over all levels of all trials") -> go.Figure:
    """Every level of every complete trial (validation accuracy vs sparsity) and their joint front.

    ``front`` is :func:`sdd_opt.study.pareto.levels_front`'s table (computed here if not given).
    """
    from sdd_opt.study.pareto import levels_front

    trials = complete(study)
    span = l2_range(trial_l2(t) for t in trials)
    fig = go.Figure()
    for rem in REMEDIES:
        pts = [(t, i, r) for t in trials if remedy(t) == rem and is_feasible(t)
               for i, r in enumerate(TrialRecord.from_trial(t).curve)]
        if pts:
            fig.add_trace(go.Scatter(
                x=remaining_percent(r["sparsity"] for _, _, r in pts), y=[r["val_acc"] for _, _, r in pts],
                mode="markers", name=f"{REMEDY_LABELS[rem]} (every level)", legendgroup=rem,
                text=[_short_hover(t, r, i) for t, i, r in pts], hovertemplate=_HOVER,
                marker={"size": 6, "opacity": 0.45,
                        "color": [remedy_color(rem, trial_l2(t), span) for t, _, _ in pts]}))
    bad = [(t, i, r) for t in trials if not is_feasible(t) for i, r in enumerate(TrialRecord.from_trial(t).curve)]
    if bad:
        fig.add_trace(go.Scatter(
            x=remaining_percent(r["sparsity"] for _, _, r in bad), y=[r["val_acc"] for _, _, r in bad],
            mode="markers", name="levels of infeasible trials (not on the front)", visible="legendonly",
            text=[_short_hover(t, r, i) for t, i, r in bad], hovertemplate=_HOVER,
            marker={"size": 6, "symbol": "x", "color": INFEASIBLE_COLOR}))
    df = levels_front(study, spec) if front is None else front
    if len(df):
        by_number = {t.number: t for t in trials}
        texts = []
        for _, row in df.iterrows():
            t = by_number.get(int(row["trial"]))
            level = int(row["level"])
            texts.append(_short_hover(t, TrialRecord.from_trial(t).curve[level], level) if t else "")
        fig.add_trace(go.Scatter(
            x=remaining_percent(df["sparsity"]), y=list(df["val_acc"]), mode="lines+markers",
            name="front over all levels", text=texts, hovertemplate=_HOVER,
            line={"color": FRONT_LINE, "width": 2, "shape": "hv"},
            marker={"size": 11, "symbol": "diamond", "color": "gold", "line": {"color": "black", "width": 1}}))
    xs = [r["sparsity"] for t in trials for r in TrialRecord.from_trial(t).curve]
    return _layout(fig, title, xaxis=remaining_axis(remaining_percent(xs)),
                   yaxis={"title": {"text": "validation accuracy"}})


def curves_figure(study: optuna.Study, spec: Optional[StudySpec] = None,
                  metrics: Sequence[str] = ("test_acc", "val_acc", "train_acc"),
                  title: str = "All curves, coloured by remedy and ℓ2 weight") -> go.Figure:
    """Every complete trial's curve; buttons switch between test, validation and train accuracy."""
    trials = complete(study)
    front = _front_numbers(study)
    span = l2_range(trial_l2(t) for t in trials)
    fig = go.Figure()
    owners: list = []
    present = {remedy(t) for t in trials if TrialRecord.from_trial(t).curve}
    for rem in (r for r in REMEDIES if r in present):  # one solid legend entry per remedy
        mid = math.sqrt(span[0] * span[1]) if rem != "none" else 0.0
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=REMEDY_LABELS.get(rem, rem), legendgroup=rem,
                                 line={"color": remedy_color(rem, mid, span), "width": 2.5}))
        owners.append(None)
    for k, metric in enumerate(metrics):
        for t in sorted(trials, key=lambda t: t.number in front):
            rows = TrialRecord.from_trial(t).curve
            ys = [r.get(metric) for r in rows]
            if not rows or not any(isinstance(y, (int, float)) and not math.isnan(y) for y in ys):
                continue
            rem = remedy(t)
            on_front = t.number in front
            l2 = trial_l2(t)
            texts = [f"<b>trial {t.number}</b> · {rem} · ℓ2 {fmt(l2)}" + (" · Pareto front" if on_front else "")
                     + ("" if is_feasible(t) else " · infeasible")
                     + f"<br>level {i}: {metric} {fmt(y)}, sparsity {fmt(r['sparsity'])}"
                     f"<br>SDD gap (val) {fmt(TrialRecord.from_trial(t).metric('sdd_gap'))}"
                     for i, (r, y) in enumerate(zip(rows, ys))]
            fig.add_trace(go.Scatter(
                x=remaining_percent(r["sparsity"] for r in rows), y=ys, mode="lines+markers",
                name=f"trial {t.number}", legendgroup=rem, showlegend=False,
                visible=k == 0, text=texts, hovertemplate=_HOVER,
                line={"color": remedy_color(rem, l2, span), "width": 3 if on_front else 1.3,
                      "dash": "solid" if is_feasible(t) else "dot"},
                marker={"size": 5 if on_front else 3}, opacity=1.0 if on_front else 0.6))
            owners.append(metric)
    for label, line, show in (("Pareto-optimal (thick)", {"color": "#333", "width": 3}, bool(front)),
                              ("infeasible (dotted)", {"color": "#888", "width": 1.3, "dash": "dot"},
                               any(not is_feasible(t) for t in trials))):
        if show and owners:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=label, line=line, legendgroup=label))
            owners.append(None)
    if len(metrics) > 1 and owners:
        buttons = [{"label": METRIC_LABELS.get(m, m), "method": "update",
                    "args": [{"visible": [o is None or o == m for o in owners]},
                             {"yaxis": {"title": {"text": METRIC_LABELS.get(m, m)}}}]} for m in metrics]
        fig.update_layout(updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons, "x": 1.0,
                                        "xanchor": "right", "y": 1.13, "yanchor": "bottom", "showactive": True,
                                        "font": {"size": 11}}])
    if not trials:
        fig.add_annotation(text="no complete trial yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    xs = [r["sparsity"] for t in trials for r in TrialRecord.from_trial(t).curve]
    return _layout(fig, title, height=500, xaxis=remaining_axis(remaining_percent(xs)),
                   yaxis={"title": {"text": METRIC_LABELS.get(metrics[0], metrics[0])}})


def hypervolume_figure(history, title: str = "Hypervolume over trials") -> Optional[go.Figure]:
    """From :func:`sdd_opt.study.pareto.hypervolume_history`; None when it is undefined."""
    if history is None or not len(history) or history["hypervolume"].isna().all():
        return None
    text = [f"after {int(r.trials)} complete trials (trial {int(r.trial)})<br>hypervolume {r.hypervolume:.4f}"
            f"<br>epochs trained so far {r.epochs:g}" for r in history.itertuples()]
    fig = go.Figure(go.Scatter(x=list(history["trials"]), y=list(history["hypervolume"]), mode="lines+markers",
                               line={"shape": "hv", "color": "#1f77b4"}, text=text, hovertemplate=_HOVER,
                               name="hypervolume"))
    return _layout(fig, title, height=380, showlegend=False,
                   xaxis={"title": {"text": "complete trials"}},
                   yaxis={"title": {"text": "hypervolume (test acc × decades pruned, all levels)"}})


def importance_method() -> str:
    """fANOVA when scikit-learn is installed (Optuna's default), else PED-ANOVA (what optuna-dashboard uses)."""
    import importlib.util

    return "fANOVA" if importlib.util.find_spec("sklearn") is not None else "PED-ANOVA"


def importances(study: optuna.Study, spec: StudySpec) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Parameter importances per objective; and, per objective, why they could not be computed."""
    import warnings

    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    out, notes = {}, {}
    trials = complete(study)
    fanova = importance_method() == "fANOVA"
    for i, (name, direction) in enumerate(zip(spec.metric_names, spec.directions)):
        if len(trials) < 2:
            notes[name] = f"needs at least 2 complete trials (the study has {len(trials)})"
            continue
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
        except Exception as exc:  # too few trials, no varying parameter, ...
            notes[name] = f"not computable: {str(exc).splitlines()[0][:200]}"
            continue
        if not imp:
            notes[name] = "no parameter is present in every complete trial"
            continue
        out[name] = dict(imp)
    return out, notes


def importance_figure(imps: dict[str, dict[str, float]], title: str = "") -> Optional[go.Figure]:
    if not imps:
        return None
    title = title or f"Parameter importances ({importance_method()})"
    from plotly.subplots import make_subplots

    names = list(imps)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"for {n}" for n in names], horizontal_spacing=0.22)
    for k, name in enumerate(names, start=1):
        items = sorted(imps[name].items(), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[p for p, _ in items], orientation="h", name=name,
                             text=[f"{v:.2f}" for _, v in items], textposition="auto",
                             hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>",
                             marker={"color": "#4c78a8"}), row=1, col=k)
        fig.update_xaxes(title_text="importance", range=[0, 1], row=1, col=k)
    n = max(len(v) for v in imps.values())
    return _layout(fig, title, height=max(300, 80 + 34 * n), showlegend=False)


def sdd_gap_figure(study: optuna.Study, spec: StudySpec, title: str = "SDD gap vs ℓ2 weight") -> go.Figure:
    """Does the remedy remove the double descent? Validation SDD gap against the l2 weight (0 at the left)."""
    trials = [t for t in complete(study) if "sdd_gap" in TrialRecord.from_trial(t).sdd]
    span = l2_range(trial_l2(t) for t in trials)
    zero_x = math.log10(span[0]) - 0.5
    fig = go.Figure()
    for rem in REMEDIES:
        group = [t for t in trials if remedy(t) == rem]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[math.log10(trial_l2(t)) if trial_l2(t) > 0 else zero_x for t in group],
            y=[TrialRecord.from_trial(t).metric("sdd_gap") for t in group], mode="markers", name=REMEDY_LABELS[rem],
            text=[hover_text(t, spec) for t in group], hovertemplate=_HOVER,
            marker={"size": 10, "color": [remedy_color(rem, trial_l2(t), span) for t in group],
                    "symbol": ["circle" if is_feasible(t) else "x" for t in group],
                    "line": {"color": "white", "width": 0.5}}))
    nice = log_ticks([trial_l2(t) for t in trials if trial_l2(t) > 0] or list(span), min_ticks=3)
    ticks = [zero_x] + [math.log10(v) for v in nice]
    labels = ["0"] + [f"{v:g}" for v in nice]
    for c in spec.file.constraints:
        if c.metric == "sdd_gap" and c.max is not None:
            fig.add_hline(y=c.max, line={"dash": "dash", "color": "#c0392b"}, annotation_text="constraint: gap ≤ "
                                                                                              f"{c.max:g}")
    return _layout(fig, title, height=400, xaxis={"title": {"text": "ℓ2 weight of the student (log scale; 0 = none)"},
                                                  "tickvals": ticks, "ticktext": labels},
                   yaxis={"title": {"text": "SDD gap of the validation curve (peak − dip)"}})
