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
    kw.setdefault("margin", {"l": 60, "r": 20, "t": 70, "b": 55})
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.01, "font": {"size": 15}},
                      height=height, hoverlabel={"align": "left"},
                      # beside the plot, never above it: a legend that wraps cannot run into the title
                      legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top",
                              "font": {"size": 11}}, **kw)
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


def _level_hover(t: FrozenTrial, spec: StudySpec, row: dict, level: int, on_front: bool = False) -> str:
    """One level's hover: trial, remedy, level, validation and test accuracy, sparsity, applied parameters."""
    import html

    from sdd_opt.study.applied import applied_values, value_text

    params = "".join(f"<br>  {html.escape(k)} = {html.escape(value_text(spec, k, v, fmt))}"
                     for k, v in applied_values(t, spec).items())
    return (f"<b>trial {t.number}</b> · {html.escape(remedy(t))} · level {level}"
            + (" · <b>on the front</b>" if on_front else "")
            + f"<br>val {fmt(row.get('val_acc'))}, <b>test {fmt(row.get('test_acc'))}</b>, "
            f"train {fmt(row.get('train_acc'))}<br>sparsity {100 * float(row.get('sparsity', 0.0)):.2f}%"
            + (f"<br><i>params (applied)</i>{params}" if params else ""))


def decades_axis(max_decades: float = 2.0) -> dict:
    """The measure's sparsity axis: decades of weights removed (90 % -> 1, 99 % -> 2), ticked in sparsity."""
    from sdd_opt.study.measure import decades

    top = max(1.0, math.ceil(max_decades * 2) / 2)
    sparsities = [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999, 0.99999]
    ticks = [(decades(s), f"{100 * s:g}%") for s in sparsities if decades(s) <= top + 1e-9]
    return {"title": {"text": "sparsity (decades of weights removed: 90% → 1, 99% → 2)"},
            "tickvals": [d for d, _ in ticks], "ticktext": [t for _, t in ticks],
            "range": [-0.05, top + 0.1], "zeroline": False, "gridcolor": "#e6e6e6"}


def levels_figure(study: optuna.Study, spec: StudySpec, front=None,
                  title: str = "Front over all levels of all trials (validation accuracy × decades removed)",
                  ) -> go.Figure:
    """Every level of every complete trial (validation accuracy against decades of weights removed, the
    search measure's axes), coloured by remedy, and their joint front as a staircase.

    ``front`` is :func:`sdd_opt.study.pareto.levels_front`'s table (computed here if not given): the
    front trace's points are exactly the rows of ``study pareto --levels``. Every marker's
    ``customdata`` is ``[trial, level, sparsity, test_acc]``.
    """
    from sdd_opt.study.measure import decades
    from sdd_opt.study.pareto import levels_front

    trials = complete(study)
    span = l2_range(trial_l2(t) for t in trials)
    df = levels_front(study, spec) if front is None else front
    on_front = {(int(r["trial"]), int(r["level"])) for _, r in df.iterrows()} if len(df) else set()
    fig = go.Figure()

    def points(group, **marker):
        xs = [decades(r["sparsity"]) for _, _, r in group]
        return dict(x=xs, y=[r["val_acc"] for _, _, r in group], mode="markers", hovertemplate=_HOVER,
                    text=[_level_hover(t, spec, r, i, (t.number, i) in on_front) for t, i, r in group],
                    customdata=[[t.number, i, r["sparsity"], r.get("test_acc")] for t, i, r in group], marker=marker)

    for rem in REMEDIES:
        pts = [(t, i, r) for t in trials if remedy(t) == rem and is_feasible(t)
               for i, r in enumerate(TrialRecord.from_trial(t).curve)]
        if pts:
            fig.add_trace(go.Scatter(name=REMEDY_LABELS[rem], legendgroup=rem, **points(
                pts, size=7, opacity=0.55, color=[remedy_color(rem, trial_l2(t), span) for t, _, _ in pts],
                line={"color": "white", "width": 0.5})))
    bad = [(t, i, r) for t in trials if not is_feasible(t) for i, r in enumerate(TrialRecord.from_trial(t).curve)]
    if bad:
        fig.add_trace(go.Scatter(name="infeasible trials' levels", visible="legendonly",
                                 **points(bad, size=6, symbol="x", color=INFEASIBLE_COLOR)))
    if len(df):
        by_number = {t.number: t for t in trials}
        group = [(by_number[int(r["trial"])], int(r["level"])) for _, r in df.iterrows()
                 if int(r["trial"]) in by_number]
        group = sorted(((t, i, TrialRecord.from_trial(t).curve[i]) for t, i in group), key=lambda p: p[2]["sparsity"])
        fig.add_trace(go.Scatter(name="front (all levels)", line={"color": FRONT_LINE, "width": 2, "shape": "vh"},
                                 **dict(points(group, size=11, symbol="diamond", color="gold",
                                               line={"color": "black", "width": 1}), mode="lines+markers")))
    if not trials:
        fig.add_annotation(text="no complete trial yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    top = max((decades(r["sparsity"]) for t in trials for r in TrialRecord.from_trial(t).curve), default=2.0)
    return _layout(fig, title, xaxis=decades_axis(top), yaxis={"title": {"text": "validation accuracy"}})


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
        # below the legend, beside the plot: never over the title
        fig.update_layout(updatemenus=[{"type": "buttons", "direction": "down", "buttons": buttons, "x": 1.02,
                                        "xanchor": "left", "y": 0.0, "yanchor": "bottom", "showactive": True,
                                        "font": {"size": 11}}])
    if not trials:
        fig.add_annotation(text="no complete trial yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    xs = [r["sparsity"] for t in trials for r in TrialRecord.from_trial(t).curve]
    return _layout(fig, title, height=500, xaxis=remaining_axis(remaining_percent(xs)),
                   yaxis={"title": {"text": METRIC_LABELS.get(metrics[0], metrics[0])}})


def hypervolume_figure(history, measure=None, title: str = "") -> Optional[go.Figure]:
    """Best hypervolume so far against the epochs paid, from
    :func:`sdd_opt.study.pareto.hypervolume_history`; None when it is undefined.

    The measure is taken on test accuracy of a front selected on validation, so a new validation
    point can lower it; the curve shows the best value reached so far (the hover gives each value).
    """
    if history is None or not len(history) or history["hypervolume"].isna().all():
        return None
    ref = f", reference accuracy {measure.ref_acc:g}" if measure is not None else ""
    title = title or ("Hypervolume (best so far) against epochs paid<br><sup>measure: test accuracy × decades of "
                      f"weights removed, front of all levels selected on validation{ref}</sup>")
    best = history["hypervolume"].astype(float).cummax()
    text = [f"after {int(r.trials)} complete trials (trial {int(r.trial)}), {r.epochs:,.0f} epochs paid"
            f"<br>hypervolume now {r.hypervolume:.4f}, best so far {b:.4f}" for r, b in zip(history.itertuples(), best)]
    fig = go.Figure(go.Scatter(x=list(history["epochs"]), y=list(best), mode="lines+markers",
                               line={"shape": "hv", "color": "#1f77b4"}, text=text, hovertemplate=_HOVER,
                               name="best hypervolume so far"))
    return _layout(fig, title, height=380, showlegend=False, margin={"l": 60, "r": 20, "t": 85, "b": 55},
                   xaxis={"title": {"text": "epochs paid (trained, teachers included)"}},
                   yaxis={"title": {"text": "hypervolume (best so far)"}})


def importance_method() -> str:
    from sdd_opt.report.importance import importance_method as method

    return method()


def importances(study: optuna.Study, spec: StudySpec) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Importances per "objective · remedy group", over the trials where each parameter applied
    (:mod:`sdd_opt.report.importance`); and, per objective or group, why they could not be computed."""
    from sdd_opt.report.importance import importances as grouped

    trials = complete(study)
    if len(trials) < 2:
        return {}, {name: f"needs at least 2 complete trials (the study has {len(trials)})"
                    for name in spec.metric_names}
    imps, notes = grouped(trials, spec)
    return {f"{name} · {label}": imp for name, by in imps.items() for label, imp in by.items()}, notes


def importance_figure(imps: dict[str, dict[str, float]], title: str = "") -> Optional[go.Figure]:
    if not imps:
        return None
    title = title or (f"Parameter importances ({importance_method()}), per remedy group: "
                      "over the trials where each parameter applied")
    from plotly.subplots import make_subplots

    names = list(imps)
    heights = [max(1, len(imps[n])) for n in names]
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=[f"for {n}" for n in names],
                        row_heights=heights, vertical_spacing=min(0.3, 0.5 / len(names)) if len(names) > 1 else 0)
    for k, name in enumerate(names, start=1):
        items = sorted(imps[name].items(), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[p for p, _ in items], orientation="h", name=name,
                             text=[f"{v:.2f}" for _, v in items], textposition="auto",
                             hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>",
                             marker={"color": "#4c78a8"}), row=k, col=1)
        fig.update_xaxes(title_text="importance" if k == len(names) else None, range=[0, 1], row=k, col=1)
    return _layout(fig, title, height=max(300, 90 + 60 * len(names) + 30 * sum(heights)), showlegend=False)


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
