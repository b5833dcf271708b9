"""Which searched keys applied to a trial, and how a user reads their values.

With ``sample_always`` every trial draws every key, so Optuna's ``trial.params`` hold T and alpha
for an l2 trial and an l2 weight for a distillation trial, although the config never took them.
The sampler needs those draws; a user must never see them. Every view (dashboard, report,
progress lines, ``study pareto``, export, importances) reads parameters through here:

* :func:`applied_keys` -- the record's ``applied`` list (written by the objective), or, for a
  trial stored before the record had it, the keys whose ``when`` holds for the trial's config
  (:meth:`Param.applies`, the same check sampling made);
* :func:`applied_values` -- those keys' values in the trial's config, in search-space order;
* :func:`value_text` -- ``none`` for a ``zero`` / ``zero_below`` float at 0 (never ``.off`` names).
"""

from __future__ import annotations

from typing import Any, Optional

from optuna.trial import FrozenTrial

from sdd_opt.study.params import decode
from sdd_opt.study.record import TrialRecord
from sdd_opt.study.spec import StudySpec


def _params_as_config(t: FrozenTrial, spec: StudySpec) -> dict:
    """A config-shaped mapping of the trial's decoded parameters over the base config (no stored config)."""
    from sdd_opt.config import set_dotted

    data = spec.base.describe()
    for key in spec.search_space:
        value = decode(t.params, key)
        if value is not None:
            set_dotted(data, key, value)
    return data


def applies_to(config: dict, spec: StudySpec) -> list[str]:
    """The searched keys whose ``when`` holds for ``config`` (what the objective records)."""
    return [k for k, p in spec.search_space.items() if p.applies(config)]


def applied_keys(t: FrozenTrial, spec: StudySpec) -> list[str]:
    """The searched keys that applied to trial ``t`` (stored, else derived as sampling decided)."""
    rec = TrialRecord.from_trial(t)
    if rec.applied is not None:
        return [k for k in spec.search_space if k in rec.applied]
    config = rec.config if rec.config is not None else _params_as_config(t, spec)
    return applies_to(config, spec)


def applied_values(t: FrozenTrial, spec: StudySpec) -> dict[str, Any]:
    """``{key: value}`` of the keys that applied, read from the trial's config (else its params)."""
    from sdd_opt.config import get_dotted

    config = TrialRecord.from_trial(t).config
    out = {}
    for key in applied_keys(t, spec):
        value = get_dotted(config, key) if config is not None else decode(t.params, key)
        if value is None:
            value = decode(t.params, key)
        out[key] = value
    return out


def value_text(spec: Optional[StudySpec], key: str, value: Any, fmt=None) -> str:
    """A parameter value as a user reads it: ``none`` for a float that can be switched off, at 0."""
    param = spec.search_space.get(key) if spec is not None else None
    if param is not None and param.type == "float" and (param.zero or param.zero_below is not None) \
            and value is not None and float(value) == 0.0:
        return "none"
    return fmt(value) if fmt is not None else str(value)


def params_text(t: FrozenTrial, spec: StudySpec, fmt=None, sep: str = ", ") -> str:
    """``key=value`` of the applied parameters, e.g. ``distill.enabled=false, train.weight_decay=none``."""
    return sep.join(f"{k}={value_text(spec, k, v, fmt)}" for k, v in applied_values(t, spec).items())
