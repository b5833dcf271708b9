"""Sparse-double-descent metrics of an accuracy-vs-sparsity curve.

A curve is one row per pruning level (dense first). SDD shows as a *dip* (accuracy falls after
light pruning), a later *peak* (it recovers, often above dense) and a final collapse. These
numbers turn that shape into what a study can optimize or constrain:

* ``sdd_gap`` = peak − dip, where the dip is the lowest pruned level before the peak and the
  pair is chosen to maximize the rise; ``sdd_present`` when the gap exceeds a threshold *and*
  the dip lies below the dense accuracy (there was a descent to recover from).
* He et al. (2022)'s phases per level: light (≈ dense), critical (falling to the dip), sweet
  (rising after it), collapsed (falling below dense after the peak).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

CURVE_COLUMNS = ("level", "sparsity", "train_acc", "val_acc", "test_acc", "loss", "epochs", "seconds")


@dataclass
class SDDMetrics:
    dense_acc: float
    dip_acc: float
    dip_sparsity: float
    dip_level: int
    peak_acc: float
    peak_sparsity: float
    peak_level: int
    sdd_gap: float
    descent: float  # dense − dip
    sdd_present: bool
    best_acc: float
    best_sparsity: float
    best_level: int
    within_sparsity: float  # highest sparsity whose accuracy is within epsilon of dense
    within_level: int
    phases: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def sdd_metrics(sparsity: Sequence[float], acc: Sequence[float], threshold: float = 0.01,
                within: float = 0.01) -> SDDMetrics:
    """Compute the SDD metrics of one curve (``sparsity`` ascending, ``acc`` as fractions)."""
    if len(acc) == 0 or len(acc) != len(sparsity):
        raise ValueError("a curve needs as many accuracies as sparsities, at least one")
    acc = [float(a) for a in acc]
    sparsity = [float(s) for s in sparsity]
    n = len(acc)
    dense = acc[0]
    # Best (peak, dip) pair: dip among pruned levels strictly before the peak.
    best_gap, dip_i, peak_i = 0.0, 0, 0
    run_min_i = None
    for j in range(2, n):
        if run_min_i is None or acc[j - 1] < acc[run_min_i]:
            run_min_i = j - 1
        gap = acc[j] - acc[run_min_i]
        if gap > best_gap:
            best_gap, dip_i, peak_i = gap, run_min_i, j
    if best_gap <= 0.0:  # no recovery anywhere: dip is the lowest point, no peak beyond dense
        dip_i = min(range(n), key=lambda i: acc[i])
        peak_i = 0
    descent = dense - acc[dip_i]
    present = best_gap > threshold and descent > 0.0
    best_i = max(range(n), key=lambda i: (acc[i], sparsity[i]))
    within_i = max((i for i in range(n) if acc[i] >= dense - within), key=lambda i: sparsity[i])
    return SDDMetrics(
        dense_acc=dense,
        dip_acc=acc[dip_i], dip_sparsity=sparsity[dip_i], dip_level=dip_i,
        peak_acc=acc[peak_i], peak_sparsity=sparsity[peak_i], peak_level=peak_i,
        sdd_gap=best_gap, descent=descent, sdd_present=present,
        best_acc=acc[best_i], best_sparsity=sparsity[best_i], best_level=best_i,
        within_sparsity=sparsity[within_i], within_level=within_i,
        phases=phases(acc, dip_i if present else None, peak_i if present else None, within),
    )


def phases(acc: Sequence[float], dip: int | None, peak: int | None, eps: float) -> list[str]:
    """Label each level light / critical / sweet / collapsed (He et al. 2022)."""
    dense = acc[0]
    out: list[str] = []
    state = "light"
    for i, a in enumerate(acc):
        if state == "light" and a < dense - eps:
            state = "critical" if dip is not None and i <= dip else "collapsed"
        if state == "critical" and dip is not None and i > dip:
            state = "sweet"
        if state == "sweet" and peak is not None and i > peak and a < dense - eps:
            state = "collapsed"
        out.append(state)
    return out


Rule = Literal["final", "best", "within"]


def select_level(acc: Sequence[float], sparsity: Sequence[float], rule: Rule, eps: float = 0.01) -> int:
    """Index of the level a study reports for a trial.

    ``final``: the last level; ``best``: highest accuracy (ties: sparser); ``within``: the
    sparsest level whose accuracy is within ``eps`` of the dense one.
    """
    n = len(acc)
    if rule == "final":
        return n - 1
    if rule == "best":
        return max(range(n), key=lambda i: (acc[i], sparsity[i]))
    if rule == "within":
        return max((i for i in range(n) if acc[i] >= acc[0] - eps), key=lambda i: sparsity[i])
    raise ValueError(f"unknown select rule {rule!r}")


def is_collapsed(acc: float, floor: float | None) -> bool:
    return floor is not None and (math.isnan(acc) or acc < floor)
