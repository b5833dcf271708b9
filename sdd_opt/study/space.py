"""Turning a search space into trial configs, with conditional parameters (grids: ``grid``).

Parameters are sampled after the keys their ``when`` depends on; one whose ``when`` does not hold
for the config built so far is not sampled at all, so Optuna never sees T or alpha for a trial without distillation --
unless it says ``sample_always: true``: then every trial draws it (model-based samplers see the
whole space, not the part common to all trials) and the config takes it only where it applies.
A float with ``zero_below: x`` reads a sampled value below x as 0 (``none`` inside one range).
A float with ``zero: true`` becomes two parameters (see :mod:`sdd_opt.study.params`): ``<key>.off``
and, only when it is False, the log-range value -- "no l2, or l2 in [1e-5, 1e-2]".
"""

from __future__ import annotations

from typing import Any

import optuna

from sdd_opt.config import RunConfig, build_config, set_dotted
from sdd_opt.study.params import off_name
from sdd_opt.study.spec import StudySpec


def suggest_config(trial: optuna.Trial, spec: StudySpec) -> RunConfig:
    """Sample every active parameter of ``spec`` on ``trial`` and return the trial's run config."""
    data = spec.base.describe()
    for key in spec.sampling_order:
        p = spec.search_space[key]
        active = p.applies(data)
        if not active and not p.sample_always:
            continue
        if p.type == "categorical":
            value: Any = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            value = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            if p.zero and trial.suggest_categorical(off_name(key), [False, True]):
                value = 0.0
            else:
                value = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
                if p.zero_below is not None and value < p.zero_below:
                    value = 0.0
        if active:
            set_dotted(data, key, value)
    return build_config(data, source=f"trial {trial.number}")
