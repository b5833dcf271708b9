"""``sdd-opt demo``: the README's demo -- sparse double descent and its antidote, from one command.

Runs ``studies/mnist1d_demo.yaml`` with the paper's three configs enqueued first (no remedy, l2,
distillation; ``--seed-with-paper``), then the search; prints the three curves' SDD numbers (test
accuracy), the front over every level of every trial, and whether what the paper reports shows
up; writes the HTML report and the curves figure, and says how to open them and the dashboard.
``make demo`` calls it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

if TYPE_CHECKING:  # the CLI imports this module at start-up: optuna and pandas load when a command runs
    import optuna
    import pandas as pd

DEMO_FILE = "studies/mnist1d_demo.yaml"
HIGH_SPARSITY = 0.9
NO_DIP_GAP = 0.02      # "without the dip": the test-accuracy SDD gap at most this
SDD_GAP = 0.05         # "with dip and peak": at least this
NEAR_TOP = 0.01        # distillation's best test accuracy at >= 90% sparsity within this of the best config's
REFERENCE_LABELS = ("no remedy", "l2", "distillation")  # paper.paper_trials order


def _matches(params: dict, wanted: dict) -> bool:
    def same(a, b) -> bool:
        return a == b if isinstance(b, (bool, str)) or isinstance(a, bool) else math.isclose(a, b, rel_tol=1e-9)
    return all(k in params and same(params[k], v) for k, v in wanted.items())


def reference_trials(study: "optuna.Study", spec) -> dict:
    """The first complete trial of each of the paper's three configs, by label."""
    from sdd_opt.report.data import complete
    from sdd_opt.study.paper import paper_trials

    done = complete(study)
    out = {}
    for label, wanted in zip(REFERENCE_LABELS, paper_trials(spec)):
        t = next((t for t in done if _matches(t.params, wanted)), None)
        if t is not None:
            out[label] = t
    return out


def _best_at(curve: list[dict], min_sparsity: float, key: str = "test_acc") -> Optional[dict]:
    rows = [r for r in curve if r["sparsity"] >= min_sparsity]
    return max(rows, key=lambda r: (r[key], r["sparsity"])) if rows else None


def _describe(label: str, t) -> str:
    from sdd_opt.study.record import TrialRecord

    cfg = TrialRecord.from_trial(t).config or {}
    if label == "l2":
        return f"l2 {cfg['train']['weight_decay']:g}"
    if label == "distillation":
        d = cfg["distill"]
        return (f"distillation (T {d['temperature']:g}, alpha {d['alpha']:g}, "
                f"teacher l2 {d['teacher']['weight_decay']:g})")
    return label


def sdd_table(refs: dict) -> "pd.DataFrame":
    """One row per reference config: the SDD numbers of its test-accuracy curve."""
    import pandas as pd

    from sdd_opt.study.record import TrialRecord

    rows = []
    for label, t in refs.items():
        rec = TrialRecord.from_trial(t)
        m = rec.sdd_test or {}
        best = _best_at(rec.curve, HIGH_SPARSITY)
        rows.append({"config": _describe(label, t), "trial": t.number, "dense": m.get("dense_acc"),
                     "dip": f"{m.get('dip_acc', float('nan')):.3f} @ {100 * m.get('dip_sparsity', 0):.0f}%",
                     "peak": f"{m.get('peak_acc', float('nan')):.3f} @ {100 * m.get('peak_sparsity', 0):.0f}%",
                     "sdd_gap": m.get("sdd_gap"),
                     f"best at >= {HIGH_SPARSITY:.0%} sparsity": "-" if best is None else
                     f"{best['test_acc']:.3f} @ {100 * best['sparsity']:.1f}%"})
    return pd.DataFrame(rows)


def demo_checks(study: "optuna.Study", spec) -> list[tuple[str, bool]]:
    """What the paper reports, checked on this study: (statement with the measured numbers, holds?)."""
    from sdd_opt.study.pareto import levels_front
    from sdd_opt.study.record import TrialRecord

    refs = reference_trials(study, spec)
    missing = [label for label in REFERENCE_LABELS if label not in refs]
    if missing:
        return [(f"the paper's configs have finished ({', '.join(missing)} missing)", False)]
    rec = {label: TrialRecord.from_trial(t) for label, t in refs.items()}
    gap = {label: (r.sdd_test or {}).get("sdd_gap", float("nan")) for label, r in rec.items()}
    best = {label: _best_at(r.curve, HIGH_SPARSITY) for label, r in rec.items()}
    top = max((b["test_acc"] for b in best.values() if b), default=float("nan"))
    kd_best = best["distillation"]["test_acc"] if best["distillation"] else float("nan")
    front = levels_front(study, spec)
    sparse_end = front.iloc[-1] if not front.empty else None
    return [
        (f"no remedy: dip then peak, test sdd_gap {gap['no remedy']:.3f} >= {SDD_GAP}", gap["no remedy"] >= SDD_GAP),
        (f"l2: no dip, test sdd_gap {gap['l2']:.3f} <= {NO_DIP_GAP}", gap["l2"] <= NO_DIP_GAP),
        (f"distillation: no dip, test sdd_gap {gap['distillation']:.3f} <= {NO_DIP_GAP}",
         gap["distillation"] <= NO_DIP_GAP),
        (f"distillation at the top at >= {HIGH_SPARSITY:.0%} sparsity: {kd_best:.3f} (best of the three {top:.3f})",
         kd_best >= top - NEAR_TOP),
        ("the searched front's sparsest point comes from distillation: " + (
            "no front" if sparse_end is None else
            f"trial {sparse_end['trial']} ({sparse_end['remedy']}), val {sparse_end['val_acc']:.3f} "
            f"@ {100 * sparse_end['sparsity']:.1f}%"),
         sparse_end is not None and sparse_end["remedy"] == "distill"),
    ]


def front_summary(study: "optuna.Study", spec) -> "pd.DataFrame":
    """The front over every level of every trial, with the few columns a reader needs."""
    from sdd_opt.study.pareto import levels_front

    df = levels_front(study, spec)
    if df.empty:
        return df
    params = [c for c in df.columns if c.startswith("param:")]
    df = df.assign(sparsity=[f"{100 * v:.1f}" for v in df["sparsity"]])
    out = df[["sparsity", "val_acc", "test_acc", "remedy", "trial", "level"] + params]
    return out.rename(columns={"sparsity": "sparsity %", **{c: c[len("param:"):] for c in params}})


def write_outputs(study: "optuna.Study", spec, url: str, out: Path) -> tuple[Path, Path]:
    """The HTML report and the curves figure (the paper's three configs drawn thick)."""
    from sdd_opt.plots import plot_curves
    from sdd_opt.report.data import complete, curve_items
    from sdd_opt.report.html import write_report

    out.mkdir(parents=True, exist_ok=True)
    report = write_report(out / "report.html", study, spec, url)
    refs = reference_trials(study, spec)
    figure = plot_curves(curve_items(complete(study)), out / "curves.png", metrics=("test_acc", "val_acc"),
                         title=f"{spec.name}: test and validation accuracy while pruning",
                         highlight=[t.number for t in refs.values()],
                         highlight_label="the paper's three configs (thick)")
    return report, figure


def print_demo_summary(study: "optuna.Study", spec, url: str, out: Path, echo=click.echo) -> list[tuple[str, bool]]:
    from sdd_opt.study import reproduce as rp

    fmt = lambda df: df.to_string(index=False, float_format=lambda v: f"{v:.3f}")  # noqa: E731
    refs = reference_trials(study, spec)
    base = spec.base
    echo(f"\nSparse double descent on {base.data.name}, {base.data.noise:.0%} label noise, {base.train.epochs} epochs "
         f"per level, pruning {base.prune.rate:.0%} per level (test accuracy of the paper's three configs):")
    echo(fmt(sdd_table(refs)) if refs else "(none of the paper's configs has finished)")
    echo("\nFront over every level of every trial (validation accuracy vs sparsity; study pareto --levels):")
    front = front_summary(study, spec)
    echo(fmt(front) if not front.empty else "(empty)")
    checks = demo_checks(study, spec)
    echo("\nWhat the paper reports, on this run:")
    for text, ok in checks:
        echo(f"  [{'yes' if ok else 'NO '}] {text}")
    report, figure = write_outputs(study, spec, url, out)
    echo(f"\nwrote {figure}  (the curves; open it in any image viewer)")
    echo(f"wrote {report}  (the report; open it in a browser, it works offline: file://{report.resolve()})")
    echo(f"dashboard: {rp.dashboard_command(url)}   then open http://127.0.0.1:8080")
    echo(f"export:    {rp.export_command(spec, url)}")
    echo(f"reproduce: {rp.run_command(spec, url, rp.stored_how(study, spec))}")
    for line in rp.password_note(url):
        echo(line)
    return checks


@click.command("demo")
@click.argument("file", default=DEMO_FILE, type=click.Path(dir_okay=False))
@click.option("--storage", default=None, metavar="URL", help="Storage URL (default: $SDD_OPT_STORAGE or "
                                                             "sqlite:///storage/sdd_opt.db).")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Where report.html and curves.png go "
                                                                            "(default: storage/<study name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a base-config key for every "
                                                                             "trial.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Local workers (default: one per core, one "
                                                                       "thread each).")
@click.option("--n-trials", type=click.IntRange(min=1), default=None, help="Complete trials (default: the file's "
                                                                           "budget; 3 = only the paper's configs).")
@click.option("--artifacts", default=None, metavar="DIR", help="Artifact store and run directories.")
@click.option("--progress/--no-progress", default=None, help="Epoch progress bar (default: when on a terminal).")
def demo(file, storage, out, overrides, jobs, n_trials, artifacts, progress) -> None:
    """Show sparse double descent and its antidote: run FILE (default studies/mnist1d_demo.yaml) with the
    paper's three configs first, print their SDD gaps and the front, write the report and the curves figure.
    """
    from sdd_opt.cli.study import _load_spec, run_study

    spec = _load_spec(file, overrides, None)
    s, url = run_study(spec, storage, jobs=jobs, seed_with_paper=True, n_trials=n_trials, timeout=None, device=None,
                       threads=None, artifacts=artifacts, heartbeat_interval=60, grace_period=120,
                       storage_timeout=600, progress=progress, overrides=list(overrides))
    print_demo_summary(s, spec, url, Path(out) if out else Path("storage") / spec.name)
