"""Static figures in the sparse-double-descent papers' style (matplotlib, no display needed).

The x axis is the share of remaining weights on a log scale, reversed so sparsity grows to the
right: the interesting part of an SDD curve lives between 10% and 0.1% remaining weights, which a
linear sparsity axis squeezes into its last few millimetres.

* :func:`plot_curve` -- one trial (or run): train accuracy on the noisy labels, validation and
  test accuracy, with the dip, the peak and the selected level marked (the per-trial artifact).
* :func:`plot_curves` -- many curves overlaid, coloured by remedy (none / l2 / distillation) and,
  within a remedy, by the l2 weight (``sdd-opt study curves``, the HTML report).
* :func:`remedy_color` -- the shared colour code, also used by the interactive (plotly) figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import LogNorm, to_hex  # noqa: E402
from matplotlib.ticker import FuncFormatter, Locator, NullFormatter  # noqa: E402

REMEDIES = ("none", "l2", "distill")
REMEDY_LABELS = {"none": "no remedy", "l2": "ℓ2 regularization", "distill": "distillation"}
REMEDY_CMAPS = {"l2": "Blues", "distill": "Oranges"}
NONE_COLOR = "#555555"
METRIC_LABELS = {"train_acc": "train accuracy (noisy labels)", "val_acc": "validation accuracy",
                 "test_acc": "test accuracy"}
_NICE_TICKS = [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]


def remaining_percent(sparsity: Iterable[float]) -> list[float]:
    """Share of remaining weights in percent (the papers' x axis); never 0, so log scales work."""
    return [max(1.0 - float(s), 1e-6) * 100.0 for s in sparsity]


def _fmt_pct(v: float) -> str:
    return f"{v:g}%"


def log_ticks(values: Iterable[float], upper: Optional[float] = None, min_ticks: int = 4) -> list[float]:
    """Ticks for a log axis spanning ``values``: 1-2-5 steps, or denser (1-2-3-5-7, 1..9) on a narrow range."""
    vals = [float(v) for v in values if v is not None and v > 0]
    if not vals:
        return []
    lo, hi = min(vals) / 1.15, max(vals) * 1.15
    if upper is not None:
        hi = min(hi, upper)
    e_lo, e_hi = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    ticks: list[float] = []
    for mantissas in ((1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [float(f"{m * 10.0 ** e:.6g}") for e in range(e_lo, e_hi + 1) for m in mantissas
                 if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= min_ticks:
            break
    return ticks


def percent_ticks(values: Iterable[float]) -> list[float]:
    """Ticks (percent) for a remaining-weights axis: 100, 50, 20, 10, ... or denser on a narrow range."""
    return log_ticks(values, upper=100.0) or list(_NICE_TICKS)


class _PercentLocator(Locator):
    def __call__(self):
        lo, hi = self.axis.get_view_interval()
        return percent_ticks([min(lo, hi) * 1.15, max(lo, hi) / 1.15])


def format_sparsity_axis(ax, ylabel: str = "accuracy") -> None:
    """Log-scaled, reversed 'remaining weights' axis with 100%, 50%, 20%, 10%, ... ticks (denser when narrow)."""
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.xaxis.set_major_locator(_PercentLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_pct(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("remaining weights (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def plot_curve(rows: list[dict], metrics: Optional[dict], path: str | Path, title: str = "",
               selected_level: Optional[int] = None) -> Path:
    """Train (noisy labels), validation and test accuracy vs remaining weights; dip/peak marked.

    ``metrics`` is :meth:`SDDMetrics.as_dict` computed on test accuracy (or None); the dip and the
    peak are marked on the test curve whenever the curve recovers after a dip (``sdd_gap`` > 0),
    the legend says whether that counts as sparse double descent. ``selected_level`` is the level
    a study trial reports (marked on the validation curve).
    """
    fig = curve_figure(rows, metrics, title, selected_level)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def curve_figure(rows: list[dict], metrics: Optional[dict], title: str = "", selected_level: Optional[int] = None):
    """The figure :func:`plot_curve` saves (a matplotlib Figure; close it when done)."""
    x = remaining_percent(r["sparsity"] for r in rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    colors = {"train_acc": "tab:blue", "val_acc": "tab:orange", "test_acc": "tab:green"}
    for key, label, style in (("train_acc", "train (noisy labels)", ":"), ("val_acc", "validation", "--"),
                              ("test_acc", "test", "-")):
        ys = [r.get(key) for r in rows]
        if any(_finite(y) for y in ys):
            ax.plot(x, ys, style, marker="o", markersize=3, label=label, color=colors[key])
            std = [r.get(f"{key}_std") for r in rows]
            if all(_finite(s) for s in std) and any(s > 0 for s in std):
                ax.fill_between(x, [y - s for y, s in zip(ys, std)], [y + s for y, s in zip(ys, std)],
                                color=colors[key], alpha=0.15, lw=0)
    if metrics:
        ax.axhline(metrics["dense_acc"], color="grey", lw=0.8, alpha=0.6, label=f"dense {metrics['dense_acc']:.3f}")
        has_pair = metrics.get("sdd_gap", 0) > 0 and metrics.get("peak_level", 0) > metrics.get("dip_level", 0)
        if has_pair:
            tag = "SDD" if metrics.get("sdd_present") else "no SDD"
            for which, color in (("dip", "tab:red"), ("peak", "tab:purple")):
                lvl = metrics[f"{which}_level"]
                if lvl < len(x):
                    ax.scatter([x[lvl]], [metrics[f"{which}_acc"]], s=110, facecolors="none", edgecolors=color,
                               linewidths=2, zorder=5, label=f"{which} {metrics[f'{which}_acc']:.3f}")
            ax.plot([], [], " ", label=f"gap {metrics['sdd_gap']:.3f} ({tag}, test)")
    if selected_level is not None and 0 <= selected_level < len(rows):
        ax.scatter([x[selected_level]], [rows[selected_level].get("val_acc")], marker="*", s=180, color="gold",
                   edgecolors="black", zorder=6, label=f"selected (level {selected_level})")
    format_sparsity_axis(ax)
    ax.set_title(title or "accuracy vs sparsity")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def l2_range(weights: Iterable[float]) -> tuple[float, float]:
    """(min, max) of the positive l2 weights, for a shared colour scale."""
    pos = [w for w in weights if w and w > 0]
    if not pos:
        return (1e-4, 1e-2)
    lo, hi = min(pos), max(pos)
    return (lo, hi) if hi > lo else (lo / 3.0, hi * 3.0)


def remedy_color(remedy: str, l2: float = 0.0, l2_span: tuple[float, float] = (1e-4, 1e-2)) -> str:
    """Hex colour: grey for no remedy; blues (l2) and oranges (distillation) darker with more l2."""
    if remedy not in REMEDY_CMAPS:
        return NONE_COLOR
    cmap = colormaps[REMEDY_CMAPS[remedy]]
    if not l2 or l2 <= 0:
        return to_hex(cmap(0.55 if remedy == "distill" else 0.45))
    frac = LogNorm(*l2_span, clip=True)(l2)
    return to_hex(cmap(0.4 + 0.55 * float(frac)))


def plot_curves(curves: Sequence[dict], path: str | Path, metrics: Sequence[str] = ("test_acc", "train_acc"),
                title: str = "", highlight: Sequence[int] = (),
                highlight_label: str = "Pareto-front trials (thick)") -> Path:
    """Curves overlaid, one panel per metric, coloured by remedy and l2 weight.

    Each item of ``curves``: ``rows`` (curve rows), ``remedy``, ``l2`` (student weight decay),
    ``label`` (e.g. "trial 3"), optional ``selected_level`` and ``number``. Trials whose number is
    in ``highlight`` (e.g. the Pareto front) are drawn thicker, on top.
    """
    span = l2_range(c.get("l2", 0.0) for c in curves)
    n = len(metrics)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n + 1.2, 4.2), dpi=130, squeeze=False)
    highlight = set(highlight)
    for ax, metric in zip(axes[0], metrics):
        for c in sorted(curves, key=lambda c: c.get("number", -1) in highlight):
            rows = c["rows"]
            ys = [r.get(metric) for r in rows]
            if not any(_finite(y) for y in ys):
                continue
            top = c.get("number", -1) in highlight
            color = remedy_color(c.get("remedy", "none"), c.get("l2", 0.0), span)
            ax.plot(remaining_percent(r["sparsity"] for r in rows), ys, "-", marker="o", markersize=2.5 if top else 1.5,
                    lw=2.0 if top else 1.0, alpha=0.95 if top else 0.55, color=color, zorder=3 if top else 2)
            sel = c.get("selected_level")
            if top and sel is not None and 0 <= sel < len(rows) and metric == "val_acc":
                ax.scatter([remaining_percent([rows[sel]["sparsity"]])[0]], [rows[sel][metric]], marker="*", s=90,
                           color="gold", edgecolors="black", zorder=5)
        format_sparsity_axis(ax, METRIC_LABELS.get(metric, metric))
    present = {c.get("remedy", "none") for c in curves}
    handles = [plt.Line2D([], [], color=remedy_color(r, 0.0 if r == "none" else math.sqrt(span[0] * span[1]), span),
                          lw=2, label=REMEDY_LABELS[r]) for r in REMEDIES if r in present]
    if highlight:
        handles.append(plt.Line2D([], [], color="black", lw=2.0, label=highlight_label))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 1.0))
    if any(c.get("remedy") in REMEDY_CMAPS and (c.get("l2") or 0) > 0 for c in curves):
        sm = plt.cm.ScalarMappable(norm=LogNorm(*span), cmap=colormaps["Blues"])
        cb = fig.colorbar(sm, ax=axes[0].tolist(), fraction=0.025, pad=0.02)
        cb.set_label("ℓ2 weight (darker = stronger; oranges: with distillation)", fontsize=7)
        cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, y=1.06, fontsize=11)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
