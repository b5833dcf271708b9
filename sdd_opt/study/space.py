"""Turning a search space into trial configs (and grids), with conditional parameters.

Parameters are sampled after the keys their ``when`` depends on; one whose ``when`` does not hold for the config built so
far is not sampled at all, so Optuna never sees T or alpha for a trial without distillation.
A float with ``zero: true`` becomes two parameters: ``<key>.off`` (categorical) and, only when it
is False, the log-range value -- the natural way to search "no l2, or l2 in [1e-5, 1e-2]".
"""

from __future__ import annotations

from typing import Any

import optuna

from sdd_opt.config import RunConfig, build_config, get_dotted, set_dotted
from sdd_opt.errors import UserError
from sdd_opt.study.spec import Param, StudySpec


def off_name(key: str) -> str:
    return f"{key}.off"


def _condition_holds(param: Param, data: dict) -> bool:
    return all(get_dotted(data, k) == v for k, v in (param.when or {}).items())


def suggest_config(trial: optuna.Trial, spec: StudySpec) -> RunConfig:
    """Sample every active parameter of ``spec`` on ``trial`` and return the trial's run config."""
    data = spec.base.describe()
    for key in spec.sampling_order:
        p = spec.search_space[key]
        if not _condition_holds(p, data):
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
        set_dotted(data, key, value)
    return build_config(data, source=f"trial {trial.number}")


def config_from_params(spec: StudySpec, params: dict[str, Any]) -> RunConfig:
    """Rebuild a trial's config from its stored parameters (export, reports)."""
    data = spec.base.describe()
    for key, p in spec.search_space.items():
        if p.zero and params.get(off_name(key)) is True:
            set_dotted(data, key, 0.0)
        elif key in params:
            set_dotted(data, key, params[key])
    return build_config(data, source="stored trial")


def grid_of(space: dict[str, Param], source: str = "study") -> dict[str, list[Any]]:
    """The grid sampler's search space; only categorical and stepped ranges can be gridded."""
    grid: dict[str, list[Any]] = {}
    for key, p in space.items():
        where = f"{source}: search_space.{key}"
        if p.type == "categorical":
            grid[key] = list(p.choices)
            continue
        if p.step is None and p.type == "float":
            raise UserError(f"{where}: the grid sampler needs 'choices' or a 'step' for float ranges")
        step = p.step or 1
        n = int(round((p.high - p.low) / step)) + 1
        values = [p.low + i * step for i in range(n)]
        grid[key] = [int(v) for v in values] if p.type == "int" else [round(v, 12) for v in values]
        if p.zero:
            grid[off_name(key)] = [False, True]
    return grid
