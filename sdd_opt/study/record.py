"""What one trial stores, typed and versioned: the contract between the objective and every reader.

The objective writes a trial's record as Optuna user attrs (so optuna-dashboard shows them and
any storage keeps them); pareto, export, the report, the dashboard and the benchmarks read it
back with :meth:`TrialRecord.from_trial` instead of looking up loose strings. Studies written
before the record had a version (``record_version`` missing, read as 0) hold the same keys, so
they read unchanged; versions 0 and 1 stored ``curve_epochs`` as ``epochs_spent`` (read as such).

Keys (user attrs): ``config`` (resolved, first seed), ``seeds``, ``versions``, ``remedy``
(none / l2 / distill), ``run_dirs``, ``curve`` (seed-mean rows), ``curve_seed<k>`` (each seed's
rows, written as levels finish), ``selected_level``, ``val_acc``, ``val_acc_std``, ``sparsity``,
``test_acc``, ``sdd`` / ``sdd_test`` (SDD metrics of the mean validation / test curve) with flat
copies of ``sdd``'s numbers for the dashboard's hover, ``curve_epochs`` (the epochs in the
trial's curves, summed over seeds: reused levels included, teachers not; the objective metric of
that name), ``epochs_trained`` (what this trial actually trained: reused levels not included,
teachers included), ``cost`` (per seed: levels reused / trained, epochs trained, teacher origin and epochs),
``stopped_early``, ``stop_reason``, ``constraints`` (values <= 0 are feasible), ``seconds``,
``plugins`` (only with a plug-in model or dataset: its import path, file, version and source hash) and,
when it fails, ``fail_reason`` (and ``interrupted``: true when Ctrl-C or SIGTERM stopped it, so it
is queued again); ``applied``: the searched keys that applied to the trial (a key
drawn with ``sample_always`` whose ``when`` does not hold is not in it; records without it derive
it, see :mod:`sdd_opt.study.applied`). ``weights`` (level -> artifact id of the front levels' weights
it kept) belongs to :mod:`sdd_opt.study.front_models`.
A seed's ``cost`` entry keeps its stored key ``epochs_trained`` for the epochs of
the levels it trained (no teacher); the trial's ``epochs_trained`` adds the teachers, and
:attr:`TrialRecord.paid_epochs` is what the search paid for the trial.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from optuna.trial import FrozenTrial

from sdd_opt.renamed import rename_metric

SCHEMA_VERSION = 2  # 2: epochs_spent renamed curve_epochs
VERSION_KEY = "record_version"
SEED_CURVE_PREFIX = "curve_seed"
SDD_FLAT_KEYS = ("sdd_gap", "dip_acc", "peak_acc", "dense_acc", "sdd_present")
_OLD_CURVE_EPOCHS = "epochs_spent"  # its name in record versions 0 and 1


def seed_curve_key(seed: int) -> str:
    """The user attr holding one seed's curve rows."""
    return f"{SEED_CURVE_PREFIX}{seed}"


@dataclass
class TrialRecord:
    """A trial's stored results; every field is optional because a trial is written as it runs."""

    config: Optional[dict] = None
    seeds: list[int] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    remedy: Optional[str] = None
    run_dirs: list[str] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)
    seed_curves: dict[int, list[dict]] = field(default_factory=dict)
    selected_level: Optional[int] = None
    val_acc: Optional[float] = None
    val_acc_std: Optional[float] = None
    sparsity: Optional[float] = None
    test_acc: Optional[float] = None
    sdd: dict = field(default_factory=dict)
    sdd_test: Optional[dict] = None
    curve_epochs: Optional[float] = None
    epochs_trained: Optional[int] = None
    cost: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str = ""
    constraints: Optional[list[float]] = None
    seconds: Optional[float] = None
    fail_reason: Optional[str] = None
    applied: Optional[list[str]] = None
    plugins: Optional[dict] = None  # plug-in models/datasets: import path, file, version, source hash
    interrupted: Optional[bool] = None  # True: stopped by Ctrl-C / SIGTERM (queued again); unset otherwise
    version: int = SCHEMA_VERSION

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_user_attrs(cls, attrs: Mapping[str, Any]) -> "TrialRecord":
        """Parse stored attrs (any version so far); unknown keys are ignored, missing ones default."""
        known = {f.name for f in dataclasses.fields(cls)} - {"seed_curves", "sdd", "version"}
        kw = {k: attrs[k] for k in known if attrs.get(k) is not None}
        kw["seed_curves"] = {int(k[len(SEED_CURVE_PREFIX):]): v for k, v in attrs.items()
                             if k.startswith(SEED_CURVE_PREFIX) and k[len(SEED_CURVE_PREFIX):].isdigit()
                             and isinstance(v, list)}
        sdd = attrs.get("sdd")
        kw["sdd"] = dict(sdd) if isinstance(sdd, dict) else {k: attrs[k] for k in SDD_FLAT_KEYS if k in attrs}
        kw["version"] = int(attrs.get(VERSION_KEY, 0))
        if kw["version"] < 2 and attrs.get(_OLD_CURVE_EPOCHS) is not None:
            kw.setdefault("curve_epochs", attrs[_OLD_CURVE_EPOCHS])
        return cls(**kw)

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> "TrialRecord":
        return cls.from_user_attrs(trial.user_attrs)

    @property
    def paid_epochs(self) -> float:
        """Epochs a complete trial made the search pay: what it trained, teachers included (levels
        reused from an earlier identical trial are free); older records fall back to the curve's epochs."""
        return float(self.epochs_trained if self.epochs_trained is not None else (self.curve_epochs or 0.0))

    def metric(self, name: str, default: Any = None) -> Any:
        """An objective or SDD number by name (``val_acc``, ``sdd_gap``, ``curve_epochs``...); the
        metric names of studies stored before a rename (``epochs``) are read too."""
        name = rename_metric(name, stored=True)
        if name in SDD_FLAT_KEYS:
            return self.sdd.get(name, default)
        value = getattr(self, name, None)
        return default if value is None else value

    # ------------------------------------------------------------------ writing
    @classmethod
    def of_cost(cls, cost: list[dict]) -> "TrialRecord":
        """The record of what a trial trained: per seed (``cost``) and in all (``epochs_trained``,
        the seeds' level epochs plus the teachers they trained)."""
        return cls(cost=cost, epochs_trained=sum(c["epochs_trained"] + c["teacher_epochs"] for c in cost))

    def to_user_attrs(self, *names: str) -> dict[str, Any]:
        """The attrs for the named fields (all set fields when none are named), with the version."""
        names = names or tuple(f.name for f in dataclasses.fields(self) if f.name != "version")
        out: dict[str, Any] = {}
        for name in names:
            if name == "seed_curves":
                out.update({seed_curve_key(s): rows for s, rows in self.seed_curves.items()})
            elif name == "sdd":
                out["sdd"] = self.sdd
                out.update({k: self.sdd[k] for k in SDD_FLAT_KEYS if k in self.sdd})
            elif name == "version":
                continue
            else:
                if name not in self.__dataclass_fields__:
                    raise KeyError(f"TrialRecord has no field {name!r}")
                value = getattr(self, name)
                if value is not None:
                    out[name] = value
        out[VERSION_KEY] = self.version
        return out

    def write(self, trial, *names: str) -> None:
        """Store the named fields on a running ``optuna.Trial`` (one user attr each)."""
        for key, value in self.to_user_attrs(*names).items():
            trial.set_user_attr(key, value)


def failure_attrs(reason: str, *, interrupted: bool = False) -> dict[str, Any]:
    """The user attrs that say why a trial failed, and whether an interrupt (not an error) stopped it."""
    rec = TrialRecord(fail_reason=reason, interrupted=True if interrupted else None)
    return {k: v for k, v in rec.to_user_attrs("fail_reason", "interrupted").items() if k != VERSION_KEY}


def record_failure(trial, reason: str, *, interrupted: bool = False, keep: bool = False) -> None:
    """Say on a running ``optuna.Trial`` why it fails; ``keep``: not over a reason already stored."""
    if keep and TrialRecord.from_user_attrs(trial.user_attrs).fail_reason is not None:
        return
    for key, value in failure_attrs(reason, interrupted=interrupted).items():
        trial.set_user_attr(key, value)


# ---------------------------------------------------------------------- feasibility
def constraint_values(t: FrozenTrial) -> list[float]:
    """The trial's constraint values: its ``constraints`` user attr, else Optuna's own record."""
    cons = t.user_attrs.get("constraints")
    if cons is not None:
        return list(cons)
    try:
        named = t.constraints  # Optuna 5: system attrs "constraints:<name>"
    except Exception:
        named = None
    if named:
        return list(named.values())
    legacy = t.system_attrs.get("constraints")
    return list(legacy) if isinstance(legacy, (list, tuple)) else []


def is_feasible(t: FrozenTrial) -> bool:
    """The one feasibility rule (Optuna's convention): every constraint value is <= 0."""
    return all(c <= 0 for c in constraint_values(t))
