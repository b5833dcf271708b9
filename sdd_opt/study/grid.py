"""The grid sampler's search space: every value of each gridded parameter.

Apart from ``space`` (which samples) so that ``spec`` can check a grid study while it parses the
study file without importing the sampling code.
"""

from __future__ import annotations

from typing import Any

from sdd_opt.errors import UserError
from sdd_opt.study.params import Param, off_name


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
