"""Keys renamed so that each concept has one name; their old spellings are still read.

A run config, study file or ``--set`` that uses an old name works as before, with one warning
line on stderr per old name and process. Data that sdd-opt stored itself (a study's spec and
identity, a run directory's ``config.yaml``, a trial's ``config`` attr) is read with
``stored=True``: renamed silently, since the user has nothing to fix there.

Run directories and teacher caches are named by hashes of the config; those hashes are taken
over the old spelling (:func:`hash_spelling`), so a rename never orphans a stored run.
"""

from __future__ import annotations

import sys
from typing import Any

# Run config: section -> {old key: new key}.
RUN_CONFIG = {
    "prune": {"stop_below": "collapse_floor"},  # the collapse early stop, as a study file names it
    "analysis": {"within": "epsilon"},          # the 'within epsilon of dense' tolerance, as select.epsilon
}
# Objective and constraint metrics of a study file.
METRICS = {"epochs": "curve_epochs"}  # the curve's epochs over all seeds (reused levels included)

_warned: set[str] = set()


def warn_once(old: str, new: str) -> None:
    """One line on stderr the first time ``old`` is read in this process."""
    if old not in _warned:
        _warned.add(old)
        print(f"warning: '{old}' is renamed '{new}'; the old name still works for now", file=sys.stderr)


def rename_section(section: str, data: Any, *, stored: bool = False) -> Any:
    """``data`` (one run-config section as a mapping) with its old keys renamed; refuses both spellings."""
    renames = RUN_CONFIG.get(section, {})
    if not isinstance(data, dict) or not any(old in data for old in renames):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data:
            if new in data:
                raise ValueError(f"{old} is the old name of {section}.{new}: give only {new}")
            if not stored:
                warn_once(f"{section}.{old}", f"{section}.{new}")
            data[new] = data.pop(old)
    return data


def rename_run_config(data: Any, *, stored: bool = False) -> Any:
    """A whole run-config mapping with every old key renamed (a copy; ``data`` is not changed)."""
    if not isinstance(data, dict):
        return data
    return {k: rename_section(k, v, stored=stored) if k in RUN_CONFIG else v for k, v in data.items()}


def rename_dotted(key: str, *, stored: bool = False) -> str:
    """``prune.stop_below`` -> ``prune.collapse_floor``; other keys unchanged."""
    section, _, rest = key.partition(".")
    new = RUN_CONFIG.get(section, {}).get(rest)
    if new is None:
        return key
    if not stored:
        warn_once(key, f"{section}.{new}")
    return f"{section}.{new}"


def rename_metric(name: Any, *, stored: bool = False) -> Any:
    new = METRICS.get(name) if isinstance(name, str) else None
    if new is None:
        return name
    if not stored:
        warn_once(f"metric {name}", f"metric {new}")
    return new


def rename_when(param: Any, *, stored: bool = False) -> Any:
    """A search-space parameter (mapping) with the keys of its ``when`` condition renamed."""
    if isinstance(param, dict) and isinstance(param.get("when"), dict):
        return dict(param, when={rename_dotted(k, stored=stored): v for k, v in param["when"].items()})
    return param


def rename_identity(identity: dict) -> dict:
    """A study's stored identity (``StudySpec.identity``) with keys and metrics renamed since it was stored."""
    out = dict(identity)
    if isinstance(out.get("base"), dict):
        out["base"] = rename_run_config(out["base"], stored=True)
    if isinstance(out.get("metrics"), list):
        out["metrics"] = [rename_metric(m, stored=True) for m in out["metrics"]]
    if isinstance(out.get("constraints"), list):
        out["constraints"] = [dict(c, metric=rename_metric(c.get("metric"), stored=True)) if isinstance(c, dict) else c
                              for c in out["constraints"]]
    if isinstance(out.get("search_space"), dict):
        out["search_space"] = {rename_dotted(k, stored=True): rename_when(p, stored=True)
                               for k, p in out["search_space"].items()}
    return out


def is_stored(info: Any) -> bool:
    """Whether pydantic validates data sdd-opt stored itself (``context={"stored": True}``): no warning."""
    return bool((getattr(info, "context", None) or {}).get("stored"))


def hash_spelling(description: dict) -> dict:
    """A config description with renamed keys spelled as before the rename (what hashes are taken over)."""
    out = dict(description)
    for section, renames in RUN_CONFIG.items():
        if isinstance(out.get(section), dict):
            sec = dict(out[section])
            for old, new in renames.items():
                if new in sec:
                    sec[old] = sec.pop(new)
            out[section] = sec
    return out
