"""Progress of a whole study, for ``study run`` and ``study worker``: two plain lines.

::

    study mnist1d-demo: 5/12 trials complete (2 running, 0 failed), 1,920 of 3,840 epochs, ETA 5 min
    front so far (val acc @ sparsity): 0.880 @ 64.0% distill #3 | 0.845 @ 95.3% distill #3 | 0.823 @ 97.2% distill #3

The ETA divides the epochs left by the rate of epochs *trained* since this worker started (by
every worker; levels reused from earlier runs count as done but not as trained, so they do not
make the ETA optimistic; a running trial's finished levels count as trained). A
trial's epochs are read from the base config ((levels + 1) x epochs x repeats), or from the
finished trials when the search changes them. The front is the one over every level of every
trial (``study pareto --levels``). The lines are plain text, printed after each trial (and by
``study run --jobs N`` whenever the count changes), so a log without a terminal stays readable;
the per-epoch bar of the running trial is separate (``--progress``).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Optional

import optuna
from optuna.trial import TrialState

from sdd_opt.study.record import TrialRecord, seed_curve_key
from sdd_opt.study.spec import StudySpec

_SHAPE_KEYS = ("train.epochs", "prune.rate", "prune.levels", "prune.target_sparsity")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StudyProgress:
    """Counts, epochs and ETA of a study with a budget of ``n_trials`` complete trials."""

    def __init__(self, study: optuna.Study, spec: StudySpec, n_trials: Optional[int],
                 clock: Callable[[], float] = time.monotonic):
        self.study, self.spec, self.n_trials, self.clock = study, spec, n_trials, clock
        self._first: Optional[tuple[float, float]] = None  # (time, epochs done) at the first look

    def base_epochs(self) -> float:
        b = self.spec.base
        return float((b.prune.n_levels + 1) * b.train.epochs * self.spec.file.repeats)

    def state(self) -> dict:
        """Trial counts, epochs done (finished trials and the running ones' finished levels), epochs per trial."""
        trials = self.study.get_trials(deepcopy=False)
        by = {s: [t for t in trials if t.state == s]
              for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL)}
        records = [TrialRecord.from_trial(t) for t in by[TrialState.COMPLETE]]
        spent = [r.curve_epochs or 0.0 for r in records]
        trained = sum(r.paid_epochs for r in records)
        seeds = [seed_curve_key(self.spec.base.seed + i) for i in range(self.spec.file.repeats)]
        running = [sum(float(r.get("epochs", 0)) for k in seeds for r in (t.user_attrs.get(k) or []))
                   for t in by[TrialState.RUNNING]]
        searched_shape = any(k in self.spec.search_space for k in _SHAPE_KEYS)
        per_trial = statistics.fmean(spent) if searched_shape and spent else self.base_epochs()
        return {"complete": len(by[TrialState.COMPLETE]), "running": len(by[TrialState.RUNNING]),
                "failed": len(by[TrialState.FAIL]), "done": sum(spent) + sum(running),
                "trained": trained + sum(running),
                "running_done": running, "per_trial": per_trial}

    def count_line(self, st: Optional[dict] = None) -> str:
        st = st or self.state()
        now = self.clock()
        if self._first is None:
            self._first = (now, st["trained"])
        head = f"study {self.spec.name}: {st['complete']}" + (f"/{self.n_trials}" if self.n_trials else "") + \
               f" trials complete ({st['running']} running, {st['failed']} failed)"
        if not self.n_trials:
            return head + f", {st['done']:,.0f} epochs"
        not_started = max(0, self.n_trials - st["complete"] - st["running"])
        left = not_started * st["per_trial"] + sum(max(0.0, st["per_trial"] - d) for d in st["running_done"])
        total = st["done"] + left
        line = f"{head}, {st['done']:,.0f} of {total:,.0f} epochs"
        t0, e0 = self._first
        rate = (st["trained"] - e0) / (now - t0) if now > t0 else 0.0
        if left <= 0:
            return line
        return line + (f", ETA {_duration(left / rate)}" if rate > 0 else ", ETA after the first finished level")

    def front_line(self, max_points: int = 5) -> str:
        from sdd_opt.study.pareto import levels_front

        df = levels_front(self.study, self.spec)
        if df.empty:
            return "front so far: (no complete trial yet)"
        rows = df.to_dict("records")
        if len(rows) > max_points:  # the densest and sparsest points, and evenly spread ones between
            step = (len(rows) - 1) / (max_points - 1)
            rows = [rows[round(i * step)] for i in range(max_points)]
        pts = " | ".join(f"{r['val_acc']:.3f} @ {100 * r['sparsity']:.1f}% {r.get('remedy', '')} #{r['trial']}"
                         for r in rows)
        return f"front so far (val acc @ sparsity): {pts}"

