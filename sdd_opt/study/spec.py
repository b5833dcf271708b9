"""Study files: what to search, how, towards which objectives, within which budget.

A study file (``studies/*.yaml``) is validated like a run config, with errors naming the key::

    name: mnist1d-search
    base: mnist1d_baseline.yaml          # a run config path (relative to this file) or a mapping
    set: {train.epochs: 20}              # dotted overrides of the base, stored with the study
    search_space:
      train.weight_decay: {type: float, low: 1.0e-5, high: 1.0e-2, log: true, zero: true}
      distill.enabled:    {type: categorical, choices: [false, true]}
      distill.alpha:      {type: float, low: 0.1, high: 1.0, when: {distill.enabled: true}}
    sampler: {name: nsga2, seed: 0}
    objectives: [{metric: val_acc, direction: maximize}, {metric: sparsity, direction: maximize}]
    select: {rule: within, epsilon: 0.01}
    constraints: [{metric: sdd_gap, max: 0.02}]
    collapse_floor: 0.15
    repeats: 1
    budget: {n_trials: 30, timeout: null}

The parts that define *what a trial means* (base config, search space, objectives, selection,
constraints, repeats) form the study's identity: they are stored with the study and a resume
with a different identity is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sdd_opt.config import (RunConfig, apply_overrides, build_config, format_validation_error, get_dotted,
                            read_yaml, set_dotted, stable_hash)
from sdd_opt.errors import UserError
from sdd_opt.renamed import is_stored, rename_dotted, rename_metric, rename_when

OBJECTIVE_METRICS = {
    "val_acc": "maximize",      # validation accuracy at the selected level
    "sparsity": "maximize",     # measured sparsity at the selected level
    "sdd_gap": "minimize",      # peak - dip of the validation curve
    "curve_epochs": "minimize",  # epochs in the trial's curves over all seeds (cost; formerly "epochs")
    "curve_hv": "maximize",      # the whole curve's score: HV of its own levels (val acc x decades pruned)
}
SAMPLERS = ("auto", "nsga2", "tpe", "gp", "random", "grid")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One searched config key."""

    type: Literal["float", "int", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    zero: bool = Field(False, description="float only: 0 is also a choice (e.g. no l2), beside the log range")
    choices: Optional[list[Any]] = None
    zero_below: Optional[float] = Field(None, gt=0.0, description="float only: a sampled value below this means 0 "
                                        "(e.g. no l2), so that 'none' lies inside one range the sampler sees whole")
    when: Optional[dict[str, Any]] = Field(None, description="only applies when these keys have these values")
    sample_always: bool = Field(False, description="with 'when': draw it in every trial (the sampler sees the whole "
                                "space) but set it in the config only when 'when' holds")

    @model_validator(mode="after")
    def _check(self) -> "Param":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if any(v is not None for v in (self.low, self.high, self.step)) or self.log or self.zero:
                raise ValueError("categorical takes 'choices' only (no low/high/step/log/zero)")
            if any(not isinstance(c, (type(None), bool, int, float, str)) for c in self.choices):
                raise ValueError("categorical choices must be plain values (number, string, true/false, null)")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} takes low/high, not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) > high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0 (got {self.low}); use zero: true to also try 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0 (got {self.step})")
        if self.zero and self.type != "float":
            raise ValueError("zero: true is for float parameters")
        if self.zero_below is not None:
            if self.type != "float":
                raise ValueError("zero_below is for float parameters")
            if self.zero:
                raise ValueError("zero and zero_below cannot be combined")
            if not self.low < self.zero_below <= self.high:
                raise ValueError(f"zero_below ({self.zero_below}) must lie in ({self.low}, {self.high}]")
        if self.sample_always and not self.when:
            raise ValueError("sample_always goes with 'when'")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int range needs whole numbers")
        return self


class SamplerSpec(_Strict):
    name: Optional[str] = Field(None, description="auto (default: chosen from docs/performance.md section 6), nsga2, tpe, "
                                "gp, random, grid")
    seed: Optional[int] = Field(0, description="makes the sampler reproducible; null: random")
    population_size: Optional[int] = Field(None, gt=1, description="NSGA-II population")
    n_startup_trials: Optional[int] = Field(None, ge=0, description="TPE/GP random start-up trials")

    @field_validator("name")
    @classmethod
    def _known(cls, v):
        if v is not None and v not in SAMPLERS:
            raise ValueError(f"unknown sampler {v!r}; choose one of {', '.join(SAMPLERS)}")
        return v


class ObjectiveSpec(_Strict):
    metric: str
    direction: Optional[Literal["maximize", "minimize"]] = None

    @field_validator("metric")
    @classmethod
    def _known(cls, v, info: ValidationInfo):
        v = rename_metric(v, stored=is_stored(info))
        if v not in OBJECTIVE_METRICS:
            raise ValueError(f"unknown objective metric {v!r}; choose one of {', '.join(OBJECTIVE_METRICS)}")
        return v

    @property
    def resolved_direction(self) -> str:
        return self.direction or OBJECTIVE_METRICS[self.metric]


class SelectSpec(_Strict):
    rule: Literal["final", "best", "within"] = Field("within", description="which level a trial reports")
    epsilon: float = Field(0.01, ge=0.0, description="for 'within': accuracy tolerance below dense (as the run config's analysis.epsilon)")


class ConstraintSpec(_Strict):
    metric: Literal["sdd_gap", "val_acc", "sparsity", "curve_epochs"]
    max: Optional[float] = None
    min: Optional[float] = None

    _renamed = field_validator("metric", mode="before")(
        classmethod(lambda cls, v, info: rename_metric(v, stored=is_stored(info))))

    @model_validator(mode="after")
    def _one_bound(self) -> "ConstraintSpec":
        if (self.max is None) == (self.min is None):
            raise ValueError("a constraint needs exactly one of 'max' or 'min'")
        return self


class HalvingSpec(_Strict):
    """Successive halving over pruning levels (sdd_opt.study.halving)."""

    rungs: list[float] = Field(description="sparsities at which a trial's partial curve is compared with the others'")
    eta: float = Field(3.0, ge=1.5, description="keep the top 1/eta of the trials that reached a rung")
    min_peers: int = Field(4, ge=1, description="compare only once this many complete trials reached the rung")

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v):
        if not v:
            raise ValueError("at least one rung")
        if any(not 0.0 < r < 1.0 for r in v):
            raise ValueError("rungs are sparsities between 0 and 1 (exclusive)")
        if len(set(v)) != len(v):
            raise ValueError("a rung is listed twice")
        return sorted(v)


class BudgetSpec(_Strict):
    n_trials: Optional[int] = Field(None, gt=0, description="complete trials the study should hold in total")
    timeout: Optional[float] = Field(None, gt=0, description="seconds per worker")


class StudyFile(_Strict):
    name: str = Field(min_length=1, max_length=500)
    description: str = ""
    base: Union[str, dict[str, Any]] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, Param] = Field(default_factory=dict)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    objectives: list[ObjectiveSpec] = Field(default_factory=lambda: [ObjectiveSpec(metric="val_acc"),
                                                                     ObjectiveSpec(metric="sparsity")])
    select: SelectSpec = Field(default_factory=SelectSpec)
    constraints: list[ConstraintSpec] = Field(default_factory=list)
    collapse_floor: Optional[float] = Field(None, ge=0.0, le=1.0, description="stop pruning a trial once val acc < floor (sets prune.collapse_floor)")
    repeats: int = Field(1, ge=1, le=20, description="seeds per trial; objectives are the mean")
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    successive_halving: Optional[HalvingSpec] = Field(None, description="stop trials whose partial curve is beaten at a rung")

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any, info: ValidationInfo) -> Any:
        """Config keys renamed since the file was written (``set``, ``search_space`` and ``when``)."""
        if not isinstance(data, dict):
            return data
        stored, data = is_stored(info), dict(data)
        if isinstance(data.get("set"), dict):
            data["set"] = {rename_dotted(k, stored=stored): v for k, v in data["set"].items()}
        if isinstance(data.get("search_space"), dict):
            data["search_space"] = {rename_dotted(k, stored=stored): rename_when(p, stored=stored)
                                    for k, p in data["search_space"].items()}
        return data

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v):
        if not v:
            raise ValueError("at least one objective")
        names = [o.metric for o in v]
        if len(set(names)) != len(names):
            raise ValueError("an objective metric is listed twice")
        return v


class StudySpec:
    """A validated study: the file's settings plus the resolved base run config."""

    def __init__(self, file: StudyFile, base: RunConfig, overrides: list[str], source: str):
        self.file = file
        self.base = base
        self.overrides = overrides
        self.source = source

    name = property(lambda self: self.file.name)
    search_space = property(lambda self: self.file.search_space)

    @property
    def sampling_order(self) -> list[str]:
        """Searched keys, each after the keys its ``when`` depends on (file order otherwise)."""
        return sampling_order(self.file.search_space, self.source)
    objectives = property(lambda self: self.file.objectives)

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction for o in self.file.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.file.objectives]

    @property
    def sampler_name(self) -> str:
        """The sampler to build, with ``auto`` (the default) resolved by :func:`auto_sampler_name`."""
        name = self.file.sampler.name or "auto"
        return auto_sampler_name(len(self.file.objectives)) if name == "auto" else name

    def identity(self) -> dict[str, Any]:
        """What defines the meaning of a trial; a resumed study must match it."""
        f = self.file
        return {
            "directions": self.directions,
            "metrics": self.metric_names,
            "search_space": {k: v.model_dump(exclude_defaults=True) for k, v in f.search_space.items()},
            "base": self.base.describe(),
            "select": f.select.model_dump(),
            "constraints": [c.model_dump(exclude_none=True) for c in f.constraints],
            "collapse_floor": f.collapse_floor,
            "repeats": f.repeats,
        }

    def to_json(self) -> str:
        """Everything needed to rebuild this spec on another machine (stored in the study)."""
        data = self.file.model_dump(mode="json")
        data["base"] = self.base.describe()
        data["set"] = {}
        return json.dumps({"file": data, "overrides": self.overrides, "source": self.source}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "StudySpec":
        obj = json.loads(text)
        file = StudyFile.model_validate(obj["file"], context={"stored": True})
        base = build_config(file.base, source="stored study", stored=True)
        return cls(file, base, obj.get("overrides", []), obj.get("source", "stored study"))

    def identity_hash(self) -> str:
        return stable_hash(self.identity())


def auto_sampler_name(n_objectives: int) -> str:
    """What ``sampler: auto`` builds, chosen from the replay benchmark (docs/performance.md, section 6):
    TPE (multivariate, grouped) for one objective such as ``curve_hv``; NSGA-II for several."""
    return "tpe" if n_objectives == 1 else "nsga2"


def sampling_order(space: dict[str, Param], source: str = "study") -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order:
            return
        if key in visiting:
            raise UserError(f"{source}: search_space.{key}: 'when' conditions form a cycle")
        visiting.add(key)
        for cond in (space[key].when or {}):
            if cond in space:
                visit(cond)
        visiting.discard(key)
        order.append(key)

    for key in space:
        visit(key)
    return order


def _check_space(file: StudyFile, base: RunConfig, source: str) -> None:
    """Every searched key must be a real config key of the right kind; ``when`` keys must exist."""
    base_data = base.describe()
    seen: list[str] = []
    for key in sampling_order(file.search_space, source):
        param = file.search_space[key]
        where = f"{source}: search_space.{key}"
        current = get_dotted(base_data, key, default=KeyError)
        if current is KeyError or isinstance(current, dict):
            raise UserError(f"{where}: unknown config key")
        for cond in (param.when or {}):
            if cond not in seen and get_dotted(base_data, cond, default=KeyError) is KeyError:
                raise UserError(f"{where}: 'when' refers to {cond!r}, which is neither a config key nor searched before it")
        # each bound must itself be a valid value of the key
        probe_values = param.choices if param.type == "categorical" else [param.low, param.high]
        for value in probe_values:
            if param.type == "int":
                value = int(value)
            trial = apply_overrides(base_data, [])
            set_dotted(trial, key, value)
            try:
                RunConfig.model_validate(trial)
            except ValidationError as exc:
                raise UserError(f"{where}: value {value!r} is invalid: {format_validation_error(exc, 'config')}") from None
        seen.append(key)


def parse_study(data: dict[str, Any], source: str, overrides: list[str] | None = None,
                base_dir: Path | None = None, name: str | None = None) -> StudySpec:
    """Validate a study mapping; ``overrides`` are the CLI's ``--set`` (applied after the file's ``set``)."""
    data = dict(data)
    if name:
        data["name"] = name
    try:
        file = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None
    if isinstance(file.base, str):
        base_path = Path(file.base)
        if not base_path.is_absolute() and base_dir is not None:
            candidate = base_dir / base_path
            base_path = candidate if candidate.exists() else base_path
        base_data = read_yaml(base_path)
        base_data.pop("provenance", None)
        base_source = str(base_path)
    else:
        base_data, base_source = dict(file.base), f"{source}: base"
    all_overrides = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in file.set.items()]
    all_overrides += list(overrides or [])
    base = build_config(apply_overrides(base_data, all_overrides), source=base_source)
    if file.collapse_floor is not None:
        base.prune.collapse_floor = file.collapse_floor
    _check_space(file, base, source)
    if file.sampler.name == "grid":
        from sdd_opt.study.grid import grid_of

        grid_of(file.search_space, source)  # raises when a range cannot be gridded
    return StudySpec(file, base, all_overrides, source)


def load_study_spec(path: str | Path, overrides: list[str] | None = None, name: str | None = None) -> StudySpec:
    path = Path(path)
    return parse_study(read_yaml(path), str(path), overrides, base_dir=path.parent, name=name)
