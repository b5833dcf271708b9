"""Figures: the per-trial curve PNG, the colour code, and the interactive plots' content."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb

from sdd_opt.curve import sdd_metrics
from sdd_opt.plots import curve_figure, percent_ticks, plot_curve, plot_curves, remedy_color

from .conftest import synthetic_curve


def test_trial_curve_marks_dip_peak_and_selected_level(tmp_path):
    rows = synthetic_curve(1)  # dip at level 1, peak at level 2
    m = sdd_metrics([r["sparsity"] for r in rows], [r["test_acc"] for r in rows]).as_dict()
    fig = curve_figure(rows, m, "trial 1", selected_level=2)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ["train (noisy labels)", "validation", "test"] == labels[:3]
    assert any(lbl == "dip 0.729" for lbl in labels) and any(lbl == "peak 0.789" for lbl in labels)
    assert "selected (level 2)" in labels and any("gap 0.06" in lbl and "SDD" in lbl for lbl in labels)
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert ax.get_xlabel() == "remaining weights (log scale)"
    fig.canvas.draw()
    assert {"100%", "50%", "20%"} <= {t.get_text() for t in ax.get_xticklabels()}
    plt.close(fig)
    # the artifact writer keeps its signature
    path = plot_curve(rows, m, tmp_path / "curve.png", title="t", selected_level=2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert plot_curve(rows, None, tmp_path / "plain.png").exists()  # no metrics, no selection: still a figure


def test_remedy_colours():
    grey, light, dark, orange = (remedy_color("none"), remedy_color("l2", 1e-4, (1e-4, 1e-2)),
                                 remedy_color("l2", 1e-2, (1e-4, 1e-2)), remedy_color("distill", 1e-3, (1e-4, 1e-2)))
    assert len({grey, light, dark, orange}) == 4
    assert sum(to_rgb(dark)) < sum(to_rgb(light))  # more l2, darker blue
    r, g, b = to_rgb(dark)
    assert b > r and to_rgb(orange)[0] > to_rgb(orange)[2]


def test_percent_ticks():
    assert percent_ticks([100, 0.5]) == [0.5, 1, 2, 5, 10, 20, 50, 100]
    assert len(percent_ticks([100, 60])) >= 4  # a narrow range gets denser ticks


def test_overlaid_curves_figure(tmp_path):
    items = [{"rows": synthetic_curve(i), "remedy": ["none", "l2", "distill"][i % 3], "l2": [0, 1e-3, 5e-3][i % 3],
              "number": i, "selected_level": 2} for i in range(6)]
    path = plot_curves(items, tmp_path / "c.png", metrics=("test_acc", "train_acc", "val_acc"), highlight=[1])
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_interactive_figures(synthetic):
    from sdd_opt.report import figures as F
    from sdd_opt.study.pareto import levels_front

    study, spec, _ = synthetic(6)
    fig = F.pareto_figure(study, spec)
    traces = {t.name: t for t in fig.data}
    front = sorted(t.number for t in study.best_trials)
    on_front = sorted(n for name, t in traces.items() if "Pareto front" in name for n in t.customdata)
    assert on_front == front
    bad = traces["infeasible (SDD constraint violated)"]
    assert sorted(bad.customdata) == [1, 3, 5]
    assert all("INFEASIBLE" in h and "violates: sdd_gap" in h for h in bad.text)
    hover = traces[next(n for n in traces if "Pareto front" in n)].text[0]
    assert "SDD (val): sdd_gap" in hover and "dense" in hover and "prune.rate" in hover
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.autorange == "reversed"

    lf = F.levels_figure(study, spec)
    line = [t for t in lf.data if t.name == "front (all levels)"][0]
    assert list(line.y) == list(levels_front(study, spec)["val_acc"])
    assert line.line.shape == "vh" and list(line.x) == sorted(line.x)  # a staircase over decades removed

    cf = F.curves_figure(study, spec)
    buttons = cf.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["test accuracy", "validation accuracy", "train accuracy (noisy labels)"]
    assert sum(1 for t in cf.data if t.name.startswith("trial ")) == 3 * 6
    assert [t.name for t in cf.data if t.showlegend is not False][:3] == ["no remedy", "ℓ2 regularization",
                                                                         "distillation"]

    imps, notes = F.importances(study, spec)
    assert set(imps) == {"val_acc · all trials", "sparsity · all trials"} and not notes
    assert sum(imps["val_acc · all trials"].values()) == pytest.approx(1.0)
