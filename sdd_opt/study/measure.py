"""The one search measure: hypervolume over every level, validation-selected, test accuracy x
decades of weights removed (``Measure``), and its reference point for a study (``measure_of``).

Apart from ``pareto`` (fronts of a stored study) so that the objective and successive halving
score curves without the front tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sdd_opt.study.spec import StudySpec


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float] = (0.0, 0.0)) -> float:
    """Area dominated by ``points`` (both maximized) above the reference point."""
    pts = sorted({p for p in points if p[0] > ref[0] and p[1] > ref[1]}, key=lambda p: -p[0])
    area, best_y = 0.0, ref[1]
    for x, y in pts:  # sweep from the largest x down, adding the strip each new y adds
        if y > best_y:
            area += (x - ref[0]) * (y - best_y)
            best_y = y
    return area


# ---------------------------------------------------------------------- the one search measure
#
# Every place that scores a search (``study status``, the report, the dashboard, the benchmarks)
# uses this measure, so that "sampler A beats sampler B" means the same thing everywhere:
#
# * the front is over **every level of every trial** (a curve is many candidate models);
# * points are **selected on validation accuracy** (what a user can see), and the area is
#   measured with their **test accuracy** (what they would get): no winner's curse;
# * the sparsity axis is **decades of weights removed**, -log10(1 - sparsity): 90 % -> 1,
#   99 % -> 2, so going from 95 % to 99 % (5x fewer weights) counts as much as it should;
# * the reference point is what a user would call worthless: the collapse floor (or chance
#   accuracy when the study has none) and the dense model (0 decades).

MAX_DECADES = 6.0  # 99.9999 % sparsity: keeps a fully pruned level finite


def decades(sparsity: float) -> float:
    """Decades of weights removed: -log10(remaining fraction)."""
    return min(MAX_DECADES, -math.log10(max(1.0 - float(sparsity), 10.0 ** -MAX_DECADES)))


@dataclass(frozen=True)
class Measure:
    """Reference point of the search measure: accuracy floor and the dense model's 0 decades."""

    ref_acc: float
    ref_decades: float = 0.0

    def curve_points(self, rows) -> list[tuple[float, float, float]]:
        """(val_acc, decades, test_acc) of each level row (NaN accuracies dropped)."""
        out = []
        for r in rows:
            v, t = float(r["val_acc"]), float(r.get("test_acc", float("nan")))
            if not math.isnan(v):
                out.append((v, decades(r["sparsity"]), t))
        return out

    def front(self, points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        """Points not dominated in (val_acc, decades)."""
        pts = sorted(set(points), key=lambda p: (-p[1], -p[0]))
        keep, best_v = [], -math.inf
        for p in pts:  # from the sparsest down: keep a point only if it beats every sparser one
            if p[0] > best_v:
                keep.append(p)
                best_v = p[0]
        return keep

    def hypervolume(self, points: list[tuple[float, float, float]], accuracy: str = "test") -> float:
        """HV of the validation-selected front, with test (default) or validation accuracy."""
        i = 2 if accuracy == "test" else 0
        return hypervolume_2d([(p[i], p[1]) for p in self.front(points) if not math.isnan(p[i])],
                              (self.ref_acc, self.ref_decades))

    def curve_hypervolume(self, rows) -> float:
        """One curve's own HV on validation accuracy: the score a sampler may learn from."""
        return self.hypervolume(self.curve_points(rows), accuracy="val")


def measure_of(spec: StudySpec) -> Measure:
    """The study's reference point: its collapse floor, else chance accuracy of its dataset."""
    floor = spec.file.collapse_floor
    if floor is None:
        from sdd_opt.data import SHAPES

        shape = SHAPES.get(spec.base.data.name)
        floor = 1.0 / shape[1] if shape else 0.0
    return Measure(ref_acc=float(floor))
