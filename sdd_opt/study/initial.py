"""A study's initial design: named points of the search space, tried before the sampler proposes.

A model-based sampler starts with random trials. A point that domain knowledge says is good
(the paper's antidote: distillation from an l2-regularised teacher) tells it more than a random
one, and on the recorded-curve table it is what makes the default reach 95 % of the best front in
half random search's epochs (docs/performance.md section 6). A study file lists such points::

    initial_trials:
      - {distill.enabled: true, prune.rate: 0.2}

A point gives config values (``0`` for "none" on a ``zero``/``zero_below`` key); every searched
key it does not name takes the centre of its range (the geometric centre of a log range, the
base config's value for a categorical when it is a choice), so the point does not depend on the
base file's incidental values. Points are checked when the study file is read and enqueued once,
when the study is created. The paper's three reference points (:mod:`sdd_opt.study.paper`) go
through the same conversion, filling unnamed keys from the base config instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol

from sdd_opt.config import RunConfig, get_dotted, set_dotted
from sdd_opt.errors import UserError
from sdd_opt.study.params import Param, encode_zeroable

if TYPE_CHECKING:
    import optuna

ENQUEUED_ATTR = "sdd_opt.initial_enqueued"


class StudySpec(Protocol):
    """What this module reads of a parsed study (``spec.StudySpec``, which checks its points here)."""

    base: RunConfig
    source: str
    file: Any  # spec.StudyFile: its initial_trials

    @property
    def search_space(self) -> dict[str, Param]: ...

    @property
    def sampling_order(self) -> list[str]: ...


def centre(param: "Param", base_value: Any = None) -> Any:
    """The middle of ``param``'s range: geometric for log, on the step grid, the base value (if a
    choice) or the first choice for a categorical."""
    if param.type == "categorical":
        return base_value if base_value in param.choices else param.choices[0]
    low, high = float(param.low), float(param.high)
    mid = math.sqrt(low * high) if param.log else (low + high) / 2
    if param.step:
        mid = low + round((mid - low) / param.step) * param.step
    return int(round(mid)) if param.type == "int" else mid


def _bad(where: str, key: str, why: str) -> UserError:
    return UserError(f"{where}: {key}: {why}")


def _value_params(key: str, p: "Param", value: Any, where: str) -> dict[str, Any]:
    """The Optuna parameters that make config value ``value`` of searched key ``key``."""
    if p.type == "categorical":
        if value not in p.choices:
            raise _bad(where, key, f"{value!r} is not one of the choices {p.choices}")
        return {key: value}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, key, f"expected a number, got {value!r}")
    if value == 0 and p.zero:
        return encode_zeroable(key, 0.0)
    if value == 0 and p.zero_below is not None:
        return {key: float(p.low)}  # sampled values below zero_below read as 0
    if not p.low <= value <= p.high:
        none = " (or 0 for none)" if p.zero or p.zero_below is not None else ""
        raise _bad(where, key, f"{value!r} is outside the searched range [{p.low}, {p.high}]{none}")
    if p.step and abs((value - p.low) / p.step - round((value - p.low) / p.step)) > 1e-9:
        raise _bad(where, key, f"{value!r} is not on the range's step {p.step} from {p.low}")
    if p.type == "int":
        if value != int(value):
            raise _bad(where, key, f"expected a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    return encode_zeroable(key, value) if p.zero else {key: value}


def point_params(spec: "StudySpec", point: Mapping[str, Any], where: str,
                 fill: Literal["centre", "base"] = "centre") -> dict[str, Any]:
    """Optuna parameters (for ``enqueue_trial``) of the config point ``point``.

    ``fill="centre"`` (initial trials): unnamed searched keys take the centre of their range, and
    a value the space cannot take is a UserError. ``fill="base"`` (the paper's points, written for
    any space): unnamed keys take the base config's value, and a value the space cannot take is
    left for the sampler to draw. A key whose ``when`` fails for the point is left out unless it
    is ``sample_always``.
    """
    space, strict = spec.search_space, fill == "centre"
    unknown = [k for k in point if k not in space]
    if unknown and strict:
        raise _bad(where, unknown[0], f"not a searched key (searched: {', '.join(space)})")
    data = spec.base.describe()
    out: dict[str, Any] = {}
    for key in spec.sampling_order:
        p = space[key]
        active = p.applies(data)
        if not active and not p.sample_always:
            if key in point and strict:
                raise _bad(where, key, f"applies only when {p.when}; this point does not")
            continue
        if key in point:
            value = point[key]
        else:
            value = centre(p, get_dotted(data, key)) if strict else get_dotted(data, key)
        try:
            out.update(_value_params(key, p, value, where))
        except UserError:
            if strict:
                raise
            continue  # not expressible in this space: the sampler draws it
        if active:
            set_dotted(data, key, 0.0 if p.zero_below is not None and value < p.zero_below else value)
    return out


def initial_params(spec: "StudySpec") -> list[dict[str, Any]]:
    """The study file's ``initial_trials`` as Optuna parameters (UserError naming a bad one)."""
    return [point_params(spec, point, f"{spec.source}: initial_trials[{i}]")
            for i, point in enumerate(spec.file.initial_trials)]


def enqueue_initial(study: "optuna.Study", spec: "StudySpec") -> int:
    """Enqueue the initial trials once per study; returns how many were enqueued now."""
    points = initial_params(spec)
    if not points or study.user_attrs.get(ENQUEUED_ATTR):
        return 0
    for params in points:
        study.enqueue_trial(params, skip_if_exists=True)
    study.set_user_attr(ENQUEUED_ATTR, True)
    return len(points)
