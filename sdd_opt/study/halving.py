"""Successive halving over pruning levels: stop a trial whose partial curve is already beaten.

An IMP trial is a sequence of levels, each one training at a higher sparsity, so its partial curve
is a natural low-fidelity view of it (like epochs are for a learning curve). At each *rung* -- a
sparsity -- the rule compares the trial's curve so far with the curves every other complete trial
had at the same rung, and stops the trial when it is not in the top ``1/eta`` of them (ASHA's
rule). A stopped trial ends COMPLETE with the levels it has: its points still enter the study's
front, only the levels it would have trained after the rung are saved.

The score at a rung is the search measure of the partial curve (:mod:`sdd_opt.study.pareto`:
hypervolume over validation accuracy and decades of weights removed) with every level clipped to
the rung's sparsity, so that schedules with different pruning rates compare fairly. Sparse double
descent makes curves non-monotone (the dip comes before the peak), which is why the rungs of the
default study files were chosen from the rank correlation between this score and the trial's
final score, measured on the recorded-curve table (docs/performance.md, section 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from sdd_opt.study.measure import Measure, decades


def rung_score(rows: Sequence[dict], rung_sparsity: float, measure: Measure) -> float:
    """The partial curve's validation HV with each level's sparsity clipped to the rung."""
    cap = decades(rung_sparsity)
    pts = [(v, min(z, cap), t) for v, z, t in measure.curve_points(rows)]
    return measure.hypervolume(pts, accuracy="val")


def reached(rows: Sequence[dict], rung_sparsity: float) -> bool:
    return bool(rows) and max(float(r["sparsity"]) for r in rows) >= rung_sparsity - 1e-9


@dataclass(frozen=True)
class Halving:
    """The rule: rungs (sparsities, increasing), keep the top 1/eta, needs ``min_peers`` to compare."""

    rungs: tuple[float, ...]
    eta: float
    min_peers: int
    measure: Measure

    def decide(self, rows: Sequence[dict], peers: Iterable[Sequence[dict]]) -> Optional[str]:
        """A stop reason when ``rows`` (this trial's levels so far) fall out of the top 1/eta at the
        highest rung they just reached; None to go on. ``peers``: other trials' curves."""
        if not rows:
            return None
        last = float(rows[-1]["sparsity"])
        before = max((float(r["sparsity"]) for r in rows[:-1]), default=-1.0)
        rung = max((r for r in self.rungs if before < r - 1e-9 and last >= r - 1e-9), default=None)
        if rung is None:  # this level crossed no rung
            return None
        scores = [rung_score(p, rung, self.measure) for p in peers if reached(p, rung)]
        if len(scores) < self.min_peers:
            return None
        mine = rung_score(rows, rung, self.measure)
        better = sum(1 for s in scores if s > mine)
        keep = max(1, int((len(scores) + 1) / self.eta))
        if better >= keep:
            return (f"successive halving: at the {rung:.0%} rung its partial curve ranks {better + 1} "
                    f"of {len(scores) + 1} (top {keep} go on)")
        return None


def make_halving(spec) -> Optional[Halving]:
    """The study file's ``successive_halving`` rule, or None when it has none."""
    from sdd_opt.study.measure import measure_of

    h = spec.file.successive_halving
    if h is None:
        return None
    return Halving(tuple(sorted(h.rungs)), h.eta, h.min_peers, measure_of(spec))
