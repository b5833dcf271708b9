"""Static figures in the sparse-double-descent papers' style (matplotlib, no display needed).

The x axis is the share of remaining weights on a log scale, reversed so sparsity grows to the
right: the interesting part of an SDD curve lives between 10% and 0.1% remaining weights, which a
linear sparsity axis squeezes into its last few millimetres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402


def _remaining(sparsity: Iterable[float]) -> list[float]:
    return [max(1.0 - float(s), 1e-6) * 100.0 for s in sparsity]


def format_sparsity_axis(ax) -> None:
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_xlabel("remaining weights (log scale)")
    ax.set_ylabel("accuracy")
    ax.grid(True, which="both", alpha=0.3)


def plot_curve(rows: list[dict], metrics: Optional[dict], path: str | Path, title: str = "",
               selected_level: Optional[int] = None) -> Path:
    """Train (noisy labels), validation and test accuracy vs remaining weights; dip/peak marked.

    ``metrics`` is :meth:`SDDMetrics.as_dict` computed on test accuracy (or None).
    """
    x = _remaining(r["sparsity"] for r in rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for key, label, style in (("train_acc", "train (noisy labels)", ":"), ("val_acc", "validation", "--"),
                              ("test_acc", "test", "-")):
        ys = [r.get(key) for r in rows]
        if any(y is not None and y == y for y in ys):
            ax.plot(x, ys, style, marker="o", markersize=3, label=label)
    if metrics:
        if metrics.get("sdd_present"):
            for which, color in (("dip", "tab:red"), ("peak", "tab:green")):
                lvl = metrics[f"{which}_level"]
                ax.scatter([x[lvl]], [metrics[f"{which}_acc"]], s=90, facecolors="none", edgecolors=color,
                           linewidths=2, zorder=5, label=f"{which} {metrics[f'{which}_acc']:.3f}")
        ax.axhline(metrics["dense_acc"], color="grey", lw=0.8, alpha=0.6)
    if selected_level is not None and selected_level < len(rows):
        ax.scatter([x[selected_level]], [rows[selected_level].get("val_acc")], marker="*", s=160, color="gold",
                   edgecolors="black", zorder=6, label="selected")
    format_sparsity_axis(ax)
    ax.set_title(title or "accuracy vs sparsity")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
