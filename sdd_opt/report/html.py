"""``sdd-opt report NAME --out report.html``: one self-contained HTML file about a study.

Opens without a network: plotly.js is inlined once, static figures are base64 PNGs, there are no
external scripts, stylesheets or fonts. Sections (each with a stable ``id``, which tests check):

* ``settings`` -- objectives, selection rule, constraints, sampler, budget, search space, base
  config, overrides, how to reproduce;
* ``pareto`` -- the front of the trials' selected points (``plot-pareto``) and its table
  (``front-table``: the rows of ``sdd-opt study pareto``, exact values in ``data-v``);
* ``levels`` -- the front over every level of every trial (``plot-levels``, ``levels-table``);
* ``curves`` -- all curves overlaid, coloured by remedy and l2 weight (``plot-curves``,
  interactive; ``img-curves``, paper style) and the SDD gap against the l2 weight (``plot-sdd-gap``);
* ``importance`` -- parameter importances per objective (``plot-importance``, or a note why not);
* ``hypervolume`` -- hypervolume over trials (``plot-hypervolume``);
* ``trials`` -- every trial with its state and SDD metrics (``trials-table``);
* ``trial-curves`` -- the per-trial curve figure of each Pareto-optimal trial.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from sdd_opt.report import figures as F
from sdd_opt.report.data import complete, curve_items, fmt, remedy, trial_l2
from sdd_opt.study.applied import params_text
from sdd_opt.study.record import TrialRecord, is_feasible
from sdd_opt.study.spec import StudySpec

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png", "scale": 2}}

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:24px}
header .sub{opacity:.8;font-size:13px}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 28px;z-index:10;font-size:13px}
nav a{margin-right:16px;color:#1f5f9f;text-decoration:none}
main{padding:10px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:14px 20px;margin:18px 0}
h2{font-size:19px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
p.note{color:#555;font-size:13px;margin:4px 0 10px}
.kpi{display:inline-block;margin:0 22px 8px 0}.kpi b{display:block;font-size:20px}.kpi span{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f3f5f7;cursor:pointer;position:sticky;top:37px}td.l,th.l{text-align:left}
tr.infeasible td{color:#999}tr:hover td{background:#fffbe6}
.scroll{overflow-x:auto;max-height:640px;overflow-y:auto}.scroll th{top:0}
.kv td:first-child{text-align:left;color:#555;font-weight:600}.kv td{text-align:left;white-space:normal}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;padding:10px;border-radius:4px;overflow-x:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
figure{margin:0}figure img{width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;color:#fff}
.b-none{background:#555}.b-l2{background:#2e75b6}.b-distill{background:#e6731c}.b-bad{background:#999}
.plot{min-height:300px}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),b=t.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),
d=th.dataset.dir==='asc'?'desc':'asc';th.dataset.dir=d;
var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){
var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;var fa=parseFloat(a),fc=parseFloat(c);
var r=(!isNaN(fa)&&!isNaN(fc))?fa-fc:String(a).localeCompare(String(c));return d==='asc'?r:-r});
rows.forEach(function(r){b.appendChild(r)})})});
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def _plot(fig, pid: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=pid, config=PLOT_CONFIG,
                       default_width="100%", default_height=f"{fig.layout.height or 450}px")


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def table_html(df, table_id: str, *, feasible_col: Optional[str] = "feasible", max_rows: Optional[int] = None) -> str:
    """A sortable table; each cell shows a short value and holds the exact one (JSON) in ``data-v``."""
    if df is None or df.empty:
        return f'<table id="{_e(table_id)}" class="sortable"><tbody></tbody></table><p class="note">(empty)</p>'
    cols = list(df.columns)
    head = "".join(f'<th class="{"l" if c in ("remedy", "state") else ""}">{_e(c)}</th>' for c in cols)
    body = []
    records = df.to_dict(orient="records")
    for rec in records[:max_rows] if max_rows else records:
        bad = feasible_col in rec and rec[feasible_col] is False
        cells = []
        for c in cols:
            v = _jsonable(rec[c])
            shown = fmt(v)
            if c == "remedy" and v:
                shown = f'<span class="badge b-{_e(v)}">{_e(v)}</span>'
            else:
                shown = _e(shown)
            cls = ' class="l"' if c in ("remedy", "state", "fail_reason") else ""
            cells.append(f"<td{cls} data-v='{_e(json.dumps(v, default=str))}'>{shown}</td>")
        trial = rec.get("trial", rec.get("number", ""))
        body.append(f'<tr data-trial="{_e(trial)}"{" class=infeasible" if bad else ""}>{"".join(cells)}</tr>')
    more = ""
    if max_rows and len(records) > max_rows:
        more = f'<p class="note">first {max_rows} of {len(records)} rows</p>'
    return (f'<div class="scroll"><table id="{_e(table_id)}" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{more}')


def _kv(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _counts(study: optuna.Study) -> dict[str, int]:
    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


def reproduce_commands(spec: StudySpec, storage_url: str, how=None) -> list[str]:
    """Re-make the study, export its front, write this report (``sdd_opt.study.reproduce``)."""
    from sdd_opt.study import reproduce as rp

    url = storage_url or "URL"
    how = how if how is not None else rp.HowRun(overrides=tuple(spec.overrides), stored=False)
    return [rp.run_command(spec, url, how), rp.export_command(spec, url), rp.report_command(spec, url),
            *rp.password_note(url)]


def _settings(study: optuna.Study, spec: StudySpec, storage_url: str) -> str:
    from sdd_opt.study.storage import masked

    f = spec.file
    s = f.sampler
    settings = (("seed", s.seed), ("population", s.population_size), ("startup trials", s.n_startup_trials))
    sampler = spec.sampler_name + "".join(f", {k} {v}" for k, v in settings if v is not None)
    cons = "; ".join(f"{c.metric} ≤ {c.max:g}" if c.max is not None else f"{c.metric} ≥ {c.min:g}"
                     for c in f.constraints) or "none"
    rows = [
        ("study", f"<b>{_e(spec.name)}</b>"),
        ("description", _e(f.description or "–")),
        ("study file", f"<code>{_e(spec.source)}</code>"),
        ("storage", f"<code>{_e(masked(storage_url) if storage_url else '–')}</code>"),
        ("objectives", ", ".join(f"{_e(m)} ({_e(d)})" for m, d in zip(spec.metric_names, spec.directions))),
        ("selected level", _e(f"rule '{f.select.rule}'" + (f", epsilon {spec.base.analysis.epsilon:g}"
                                                if f.select.rule == "within" else ""))),
        ("constraints", _e(cons) + (" (values ≤ 0 are feasible)" if f.constraints else "")),
        ("seeds per trial", _e(f.repeats)),
        ("collapse floor", _e(f.collapse_floor if f.collapse_floor is not None else "–")),
        ("sampler", _e(sampler)),
        ("budget", _e(f"{f.budget.n_trials or '–'} complete trials, timeout {f.budget.timeout or '–'}")),
        ("overrides", "<br>".join(f"<code>{_e(o)}</code>" for o in spec.overrides) or "–"),
    ]
    space_rows = []
    for key, p in f.search_space.items():
        if p.type == "categorical":
            rng = ", ".join(map(str, p.choices or []))
        else:
            rng = f"[{p.low:g}, {p.high:g}]" + (" log" if p.log else "") + (f" step {p.step:g}" if p.step else "") + \
                  (" or 0" if p.zero else "")
        when = ", ".join(f"{k}={v}" for k, v in (p.when or {}).items())
        space_rows.append(f'<tr><td class="l"><code>{_e(key)}</code></td><td class="l">{_e(p.type)}</td>'
                          f'<td class="l">{_e(rng)}</td><td class="l">{_e(when or "–")}</td></tr>')
    space = ('<table><thead><tr><th class="l">key</th><th class="l">type</th><th class="l">range</th>'
             f'<th class="l">only when</th></tr></thead><tbody>{"".join(space_rows)}</tbody></table>')
    from sdd_opt.study.reproduce import stored_how

    repro = "\n".join(reproduce_commands(spec, storage_url, stored_how(study, spec)))
    done = complete(study)
    versions = (TrialRecord.from_trial(done[0]).versions or None) if done else None
    base = json.dumps(spec.base.describe(), indent=1)
    return (f'<section id="settings"><h2>Study settings</h2>{_kv(rows)}'
            f'<h3>Search space</h3>{space or "<p class=note>(nothing searched: the base config only)</p>"}'
            f"<h3>Reproduce</h3><pre>{_e(repro)}</pre>"
            f"<details><summary>base run config</summary><pre>{_e(base)}</pre></details>"
            + ("<details><summary>software versions (first "
               f"trial)</summary><pre>{_e(json.dumps(versions, indent=1))}</pre></details>"
               if versions else "") + "</section>")


def _trials_table(study: optuna.Study, spec: StudySpec):
    import pandas as pd

    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        a = TrialRecord.from_trial(t)
        row = {"trial": t.number, "state": t.state.name.lower(), "remedy": a.remedy}
        for i, m in enumerate(spec.metric_names):
            row[m] = t.values[i] if t.values is not None and i < len(t.values) else None
        row.update({"level": a.selected_level, "test_acc": a.test_acc, "sdd_gap": a.metric("sdd_gap"),
                    "sdd_present": a.metric("sdd_present"),
                    "feasible": is_feasible(t) if t.state == TrialState.COMPLETE else None,
                    "l2": trial_l2(t), "curve_epochs": a.curve_epochs,
                    "minutes": (t.duration.total_seconds() / 60.0) if t.duration else None,
                    "note": a.fail_reason or a.stop_reason or ""})
        rows.append(row)
    return pd.DataFrame(rows)


def _trial_figures(study: optuna.Study, spec: StudySpec, numbers: list[int], limit: int) -> str:
    from sdd_opt.plots import plot_curve

    by_number = {t.number: t for t in complete(study)}
    figs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in numbers[:limit]:
            t = by_number.get(n)
            rec = TrialRecord.from_trial(t) if t is not None else None
            if rec is None or not rec.curve:
                continue
            path = plot_curve(rec.curve, rec.sdd_test, Path(tmp) / f"t{n}.png",
                              title=f"trial {n}: {remedy(t)}", selected_level=rec.selected_level)
            params = params_text(t, spec, fmt)
            figs.append(f'<figure id="trial-curve-{n}"><img alt="curve of trial {n}" src="{_png(path)}">'
                        f"<figcaption>trial {n} · {_e(params)}</figcaption></figure>")
    more = f'<p class="note">first {limit} of {len(numbers)} front trials</p>' if len(numbers) > limit else ""
    return f'<div class="grid">{"".join(figs)}</div>{more}'


def _front_sections(study: optuna.Study, spec: StudySpec, front, lvl, storage_url: str = "URL") -> list[str]:
    """The Pareto front of the selected points, and the front over all levels (plots and tables)."""
    from sdd_opt.study import reproduce as rp

    parts = []
    caption = ("Each trial at its selected level (rule "
               f"'{spec.file.select.rule}'). Stars: Pareto-optimal trials; colour: remedy (darker = more ℓ2); "
               "grey crosses: infeasible trials. Hover for SDD metrics and parameters.")
    from sdd_opt.study.pareto import front_of_levels

    by_levels = front_of_levels(spec)  # e.g. curve_hv: one number per trial, the product is the levels' front
    if by_levels:
        caption = (f"The study's objective ({', '.join(spec.metric_names)}) scores each trial's whole curve, so "
                   "the front that matters is the one over all levels (above); here each trial's own score. ") + caption
    title = "Trials and their score" if by_levels else "Pareto front — selected points"
    parts.append(f'<section id="pareto"><h2>{title}</h2><p class="note">{_e(caption)}</p>'
                 f'<div class="plot">{_plot(F.pareto_figure(study, spec), "plot-pareto")}</div>'
                 f'<h3>Front table</h3><p class="note">The rows of '
                 f"<code>{_e(rp.pareto_command(spec, storage_url))}</code>: "
                 f"objectives, selected level, SDD metrics of the validation curve, parameters.</p>"
                 f"{table_html(front, 'front-table')}</section>")
    parts.append(f'<section id="levels"><h2>Pareto front — all levels of all trials</h2>'
                 f'<p class="note">Every pruning level of every feasible trial is a candidate model; the front over '
                 f"them says which (configuration, number of levels) gives the best validation accuracy at each "
                 f"sparsity. <code>{_e(rp.pareto_command(spec, storage_url, levels=True))}</code>, "
                 f"<code>{_e(rp.export_command(spec, storage_url, levels=True))}</code>.</p>"
                 f'<div class="plot">{_plot(F.levels_figure(study, spec, lvl), "plot-levels")}</div>'
                 f"<details><summary>table ({len(lvl)} "
                 f"points)</summary>{table_html(lvl, 'levels-table', feasible_col=None)}"
                 f"</details></section>")
    return parts[::-1] if by_levels else parts


def _curves_section(study: optuna.Study, spec: StudySpec, done, front_numbers: list[int],
                    storage_url: str = "URL") -> str:
    """All curves overlaid (interactive, and the paper-style PNG) and the SDD gap by remedy."""
    from sdd_opt.plots import plot_curves
    from sdd_opt.study.reproduce import curves_command

    items = curve_items(done)
    with tempfile.TemporaryDirectory() as tmp:
        png = ""
        if items:
            path = plot_curves(items, Path(tmp) / "curves.png", metrics=("test_acc", "train_acc"),
                               title=f"{spec.name}: {len(items)} curves", highlight=front_numbers)
            png = (f'<h3>Paper-style figure</h3><img id="img-curves" alt="all curves" style="max-width:100%" '
                   f'src="{_png(path)}"><p class="note">The same with <code>{_e(curves_command(spec, storage_url))}'
                   f"</code>; thick lines: Pareto-optimal trials.</p>")
    return (f'<section id="curves"><h2>Accuracy vs sparsity — all curves</h2>'
            f'<p class="note">Grey: no remedy; blues: ℓ2; oranges: distillation; darker = larger ℓ2 weight; '
            f"thick: Pareto-optimal trials; dotted: infeasible. The buttons switch between test, validation and "
            f"train (noisy-label) accuracy.</p>"
            f'<div class="plot">{_plot(F.curves_figure(study, spec), "plot-curves")}</div>{png}'
            f'<h3>Does the remedy remove the double descent?</h3>'
            f'<div class="plot">{_plot(F.sdd_gap_figure(study, spec), "plot-sdd-gap")}</div></section>')


def _importance_section(study: optuna.Study, spec: StudySpec) -> str:
    """How much each parameter explains of each objective, over the complete trials."""
    imps, notes = F.importances(study, spec)
    fig = F.importance_figure(imps)
    note_html = "".join(f'<p class="note">{_e(m)}: {_e(n)}</p>' for m, n in notes.items())
    body = _plot(fig, "plot-importance") if fig is not None else ""
    return (f'<section id="importance"><h2>Parameter importances per objective and remedy group</h2>'
            f'<p class="note">{_e(F.importance_method())} over the complete trials of each group (the trials the '
            f"same searched keys applied to, e.g. distill.enabled=true), on the parameters that applied to them "
            f"and vary: a key drawn but not applied (distillation's alpha in an ℓ2 trial) is never counted. "
            f"The importances of one objective in one group sum to 1.</p>{body}{note_html}</section>")


def _hypervolume_section(hist, spec: StudySpec) -> str:
    """How the search progressed: the best hypervolume so far against the epochs paid."""
    from sdd_opt.study.measure import measure_of

    fig = F.hypervolume_figure(hist, measure_of(spec))
    body = _plot(fig, "plot-hypervolume") if fig is not None else \
        '<p class="note">The hypervolume needs a complete trial.</p>'
    return (f'<section id="hypervolume"><h2>Hypervolume against epochs paid</h2>'
            f'<p class="note">The best value so far of the search measure after each complete trial: the front '
            f"of every level of the feasible trials, selected on validation accuracy, measured with test accuracy "
            f"over decades of weights removed, from the collapse floor (or chance) and the dense model.</p>"
            f"{body}</section>")


def _page(spec: StudySpec, now: _dt.datetime, kpi_html: str, parts: list[str], front) -> str:
    """The HTML document around the sections: head with plotly.js and CSS, navigation, summary."""
    from plotly.offline import get_plotlyjs

    nav = "".join(f'<a href="#{i}">{_e(t)}</a>' for i, t in (
        ("settings", "Settings"), ("pareto", "Pareto front"), ("levels", "All-levels front"), ("curves", "Curves"),
        ("importance", "Importances"), ("hypervolume", "Hypervolume"), ("trials", "Trials"),
        ("trial-curves", "Front curves")))
    front_json = (front.to_json(orient="records") if len(front) else "[]").replace("</", "<\\/")
    sdd_version = _version()

    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(spec.name)} — sdd-opt report</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{_e(spec.name)}</h1><div class=\"sub\">sdd-opt {_e(sdd_version)} report · "
        f"{_e(now.strftime('%Y-%m-%d %H:%M'))} · {_e(spec.file.description)}</div></header>"
        f"<nav>{nav}</nav><main><section id=\"summary\">{kpi_html}</section>{''.join(parts)}</main>"
        f'<script type="application/json" id="front-data">{front_json}</script>'
        f"<script>{SORT_JS}</script></body></html>\n")


def build_report(study: optuna.Study, spec: StudySpec, storage_url: str = "", *, trial_figures: bool = True,
                 max_trial_figures: int = 30, now: Optional[_dt.datetime] = None) -> str:
    """The whole report as one HTML string (see the module docstring for its sections)."""
    import pandas as pd

    from sdd_opt.study.pareto import front_table, hypervolume, hypervolume_history, levels_front

    now = now or _dt.datetime.now()
    counts = _counts(study)
    done = complete(study)
    front = front_table(study, spec) if done else pd.DataFrame()
    lvl = levels_front(study, spec)
    hv = hypervolume(study, spec) if done else None
    hist = hypervolume_history(study, spec) if done else None
    front_numbers = [int(n) for n in front["trial"]] if len(front) else []
    n_infeasible = sum(1 for t in done if not is_feasible(t))

    kpis = [(counts["COMPLETE"], "complete trials"), (counts["FAIL"], "failed"), (counts["RUNNING"], "running"),
            (len(front), "Pareto-optimal trials"), (len(lvl), "points on the all-levels front"),
            (n_infeasible, "infeasible (constraint violated)")]
    if hv is not None:
        kpis.append((f"{hv:.4f}", "hypervolume"))
    kpi_html = "".join(f'<div class="kpi"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for v, k in kpis)

    url = storage_url or "URL"
    parts = [_settings(study, spec, storage_url), *_front_sections(study, spec, front, lvl, url),
             _curves_section(study, spec, done, front_numbers, url), _importance_section(study, spec),
             _hypervolume_section(hist, spec),
             '<section id="trials"><h2>All '
             f'trials</h2>{table_html(_trials_table(study, spec), "trials-table")}</section>']
    if trial_figures and front_numbers:
        parts.append(f'<section id="trial-curves"><h2>Curves of the Pareto-optimal trials</h2>'
                     f'<p class="note">Train accuracy on the noisy labels, validation and test accuracy; dip and peak '
                     f"of the test curve circled, the selected level starred (also each trial's "
                     f"<code>curve.png</code> artifact in the dashboard).</p>"
                     f"{_trial_figures(study, spec, front_numbers, max_trial_figures)}</section>")
    return _page(spec, now, kpi_html, parts, front)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sdd-opt")
    except PackageNotFoundError:
        return "?"


def write_report(path: str | Path, study: optuna.Study, spec: StudySpec, storage_url: str = "", **kw) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(study, spec, storage_url, **kw), encoding="utf-8")
    return path
