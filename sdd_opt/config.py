"""The run configuration: one validated description of a pruning curve.

Every run (and every Optuna trial) is fully described by a :class:`RunConfig`. It is loaded from
YAML (safely), patched by dotted ``--set key=value`` overrides, validated by pydantic with unknown
keys refused, and hashed to name run directories and teacher caches (as OpenLTH names runs by the
hash of their description). Each field carries its help text beside it; ``docs/config.md`` is the
prose version of the same.

Validation is strict, so that a typo never silently becomes a different run: YAML with a key given
twice is refused, ``epochs: true`` is not 1 epoch (no bool/int/str coercion), ``.inf`` and ``.nan``
are refused, an empty file is not "all defaults", and ``prune.levels`` has a hard cap. ``1e-3`` is
read as a number (YAML 1.2), as a researcher writes it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from sdd_opt.errors import UserError
from sdd_opt.renamed import hash_spelling, is_stored, rename_dotted, rename_section

# More pruning rounds than this is a typo (levels: 1000000), not an experiment: at the smallest
# rate anyone uses (0.05) 200 levels keep 0.004 % of the weights.
MAX_LEVELS = 200

# Retraining modes that restart the schedule at prune.rewind_to (rewind: weights too; lr_rewind: only the schedule).
REWINDING = ("rewind", "lr_rewind")


class _Section(BaseModel):
    # strict: no bool -> int, float -> int or str -> number coercion; allow_inf_nan: finite numbers only.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


def _old_names(section: str):
    """A before-validator reading ``section``'s renamed keys (sdd_opt.renamed) under their new names."""

    def read(cls, data: Any, info: ValidationInfo) -> Any:
        return rename_section(section, data, stored=is_stored(info))

    return model_validator(mode="before")(classmethod(read))


def _known_name(kind: str, name: str, info: ValidationInfo) -> str:
    """A built-in name, or a plug-in (sdd_opt.plugins) that imports. A stored one is imported only
    when a worker runs it, so a study's results stay readable where its plug-in is not installed."""
    from sdd_opt import plugins

    if name in _builtin_names(kind):
        return name
    if is_stored(info):  # checked when stored; an entry point may not be installed where results are read
        if ":" in name:
            plugins.import_path(kind, name)
        return name
    if not plugins.is_plugin(kind, name):
        eps = plugins.entry_point_names(kind)
        raise ValueError(f"unknown {'model' if kind == 'model' else 'dataset'} {name!r}; choose one of "
                         f"{', '.join(sorted(_builtin_names(kind)))}, or an import path 'module:function' "
                         f"(docs/plugins.md){'; installed entry points: ' + ', '.join(eps) if eps else ''}")
    plugins.resolve(kind, name)
    return name


def _name_check(kind: str):
    """The ``name`` validator of the data / model section (see :func:`_known_name`)."""

    def check(cls, v: str, info: ValidationInfo) -> str:
        return _known_name(kind, v, info)

    return field_validator("name")(classmethod(check))


def _builtin_names(kind: str):
    if kind == "model":
        from sdd_opt.models import MODELS

        return MODELS
    from sdd_opt.data import DATASETS

    return DATASETS


def _extra_keys(kind: str):
    """Keys beside ``name`` go to a plug-in's builder / loader (it must take them); built-ins take none."""

    def check(self, info: ValidationInfo):
        from sdd_opt import plugins

        extras = dict(self.model_extra or {})
        if self.name in _builtin_names(kind):
            if extras:
                raise ValueError(f"unknown key {next(iter(extras))!r} ({self.name} is built in; keys beside name "
                                 "go to a plug-in's builder or loader, docs/plugins.md)")
        elif not is_stored(info):
            plugins.check_arguments(plugins.resolve(kind, self.name), extras)
        return self

    return model_validator(mode="after")(check)


class _PluginSection(_Section):
    # extra keys are a plug-in's own arguments (checked against its signature in _extra_keys)
    model_config = ConfigDict(extra="allow", validate_assignment=True, strict=True, allow_inf_nan=False)


class DataConfig(_PluginSection):
    name: str = Field("mnist1d", description="Dataset: mnist1d, synthetic1d, synthetic_images, mnist, fashionmnist, "
                                             "cifar10, cifar100, or a plug-in's import path `module:function` "
                                             "(docs/plugins.md).")
    noise: float = Field(0.2, ge=0.0, lt=1.0, description="Fraction of training labels corrupted, in [0, 1).")
    noise_kind: Literal["symmetric", "uniform", "pairflip", "asymmetric"] = Field(
        "symmetric", description="symmetric: exactly floor(noise*N) labels moved to another class; uniform: "
        "with prob. noise a random label (may equal the true one); pairflip: c -> c+1; asymmetric: CIFAR-10 class map.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the training set held out for validation, "
                                                                 "before training.")
    val_labels: Literal["clean", "noisy"] = Field("clean", description="Whether validation labels are the clean or "
                                                                       "the corrupted ones.")
    train_size: Optional[int] = Field(None, gt=0, description="Use only this many training samples (quick runs); "
                                                              "null: all.")
    augment: Optional[bool] = Field(None, description="Random crop + horizontal flip on images; null: on for CIFAR, "
                                                      "off otherwise.")
    data_dir: str = Field("storage/data", description="Where datasets are downloaded or generated and cached.")

    _known_dataset = _name_check("data")
    _plugin_keys = _extra_keys("data")


class ModelConfig(_PluginSection):
    name: str = Field("cnn1d", description="Architecture: cnn1d, mlp, lenet300, resnet18, vgg16, or a plug-in's "
                                           "import path `module:function` (docs/plugins.md).")
    width: int = Field(64, gt=0, description="Channels (cnn1d, resnet18, vgg16 base) or hidden units (mlp).")

    _known_model = _name_check("model")
    _plugin_keys = _extra_keys("model")


class TrainConfig(_Section):
    epochs: int = Field(40, gt=0, description="Epochs per training (per pruning level).")
    batch_size: int = Field(128, gt=0, description="Mini-batch size.")
    lr: float = Field(0.1, gt=0.0, description="Learning rate (the maximum for onecycle).")
    schedule: Literal["onecycle", "cosine", "multistep", "constant"] = Field(
        "onecycle", description="Learning-rate schedule, stepped per iteration.")
    milestones: list[int] = Field(default_factory=lambda: [80, 120], description="Epochs at which multistep "
                                                                                 "multiplies the lr by gamma.")
    gamma: float = Field(0.1, gt=0.0, description="Multistep decay factor.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(False, description="Nesterov momentum.")
    weight_decay: float = Field(0.0, ge=0.0, description="l2 regularization of the student (SGD weight decay); one "
                                                         "remedy for SDD.")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field("fp32", description="Autocast precision; auto: bf16 on "
                                                                                   "CUDA, fp32 on CPU.")
    compile: bool = Field(False, description="torch.compile the model; slower on the 2-core CPU measured "
                                             "(docs/performance.md), try it on GPUs.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:K.")
    threads: Optional[int] = Field(None, gt=0, description="CPU threads for torch; null: 1 (measured best on a shared "
                                                           "CPU, docs/performance.md; more threads change the numbers "
                                                           "slightly).")
    eval_batch_size: int = Field(2048, gt=0, description="Batch size for evaluation passes.")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"must be auto, cpu, cuda or cuda:K (got {v!r})")


class PruneConfig(_Section):
    rate: float = Field(0.2, gt=0.0, lt=1.0, description="Fraction of the remaining weights removed per level, in (0, "
                                                         "1).")
    levels: int = Field(20, ge=0, description="Pruning rounds after the dense training: the curve has levels+1 rows "
                                              f"(at most {MAX_LEVELS}).")
    target_sparsity: Optional[float] = Field(None, gt=0.0, lt=1.0, description="If set, levels = the fewest rounds "
                                                                               "reaching this sparsity.")
    scope: Literal["global", "layer"] = Field("global", description="Rank magnitudes across all layers or within each "
                                                                    "layer.")
    retrain: Literal["rewind", "finetune", "lr_rewind", "scratch"] = Field(
        "rewind", description="After pruning: rewind to saved weights; fine-tune the current ones (whole schedule "
        "again); lr_rewind: keep the current weights and replay the schedule from rewind_to (Renda et al. 2020); "
        "or re-initialize.")
    rewind_to: int = Field(0, ge=0, description="Rewind point of rewind and lr_rewind (0: the start; "
                           "k: after k epochs/iterations).")
    rewind_unit: Literal["epoch", "iteration"] = Field("epoch", description="Unit of rewind_to.")
    collapse_floor: Optional[float] = Field(None, ge=0.0, le=1.0, description="Collapse early stop: no further "
                                                                              "pruning once validation accuracy falls "
                                                                              "below this; a study file's "
                                                                              "`collapse_floor` sets it. Formerly "
                                                                              "`prune.stop_below` (still read).")

    _renamed = _old_names("prune")

    @field_validator("levels")
    @classmethod
    def _levels_capped(cls, v: int) -> int:
        if v > MAX_LEVELS:
            raise ValueError(f"at most {MAX_LEVELS} (a hard cap; at rate 0.05, {MAX_LEVELS} levels keep 0.004 % of "
                             "the weights)")
        return v

    @model_validator(mode="after")
    def _level_cap(self) -> "PruneConfig":
        if self.target_sparsity is not None and self.n_levels > MAX_LEVELS:
            raise ValueError(f"target_sparsity: {self.target_sparsity} at rate {self.rate} needs {self.n_levels} "
                             "levels, "
                             f"more than the cap of {MAX_LEVELS}; raise prune.rate")
        return self

    @property
    def n_levels(self) -> int:
        """Number of pruning rounds, from ``levels`` or ``target_sparsity``."""
        if self.target_sparsity is None:
            return self.levels
        return max(1, math.ceil(math.log(1.0 - self.target_sparsity) / math.log(1.0 - self.rate) - 1e-9))


class TeacherConfig(_Section):
    weight_decay: float = Field(0.005, ge=0.0, description="l2 weight of the dense teacher trained for distillation.")
    epochs: Optional[int] = Field(None, gt=0, description="Teacher epochs; null: train.epochs.")
    checkpoint: Optional[str] = Field(None, description="Use this state_dict (.pt) as the teacher instead of training "
                                                        "one.")
    run: Optional[str] = Field(None, description="Use a level of this earlier run directory as the teacher.")
    level: int = Field(0, ge=0, description="Which level of `run` to use (0: dense).")
    cache_dir: str = Field("storage/teachers", description="Trained teachers are cached here, keyed by the hash of "
                                                           "their config.")


class DistillConfig(_Section):
    enabled: bool = Field(False, description="Distill every pruned student from a dense teacher.")
    alpha: float = Field(0.8, ge=0.0, le=1.0, description="Weight of the KL term: alpha*T^2*KL + (1-alpha)*CE.")
    temperature: float = Field(10.0, gt=0.0, description="Softmax temperature T (> 0).")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)


class AnalysisConfig(_Section):
    sdd_threshold: float = Field(0.01, ge=0.0, description="sdd_present when peak - dip exceeds this (accuracy "
                                                           "fraction).")
    epsilon: float = Field(0.01, ge=0.0, description="Accuracy tolerance below dense for `within_sparsity` (the "
                                                     "highest sparsity within epsilon of dense accuracy); a study's "
                                                     "`select.epsilon` is the same tolerance for the level a trial "
                                                     "reports. Formerly `analysis.within` (still read).")

    _renamed = _old_names("analysis")


class RunConfig(_Section):
    seed: int = Field(0, ge=0, description="Seeds data noise, split, init and batch order.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    provenance: Optional[dict[str, Any]] = Field(None, description="Written by sdd-opt (versions, host); ignored on "
                                                                   "load.")

    @model_validator(mode="after")
    def _cross_checks(self) -> "RunConfig":
        if self.prune.retrain in REWINDING and self.prune.rewind_to > 0 and self.prune.rewind_unit == "epoch" \
                and self.prune.rewind_to >= self.train.epochs:
            raise ValueError(f"prune.rewind_to: must be below train.epochs ({self.train.epochs}) when rewinding to an "
                             "epoch")
        return self

    # -- identity -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The config as plain data, without provenance (what defines the run)."""
        return self.model_dump(mode="json", exclude={"provenance"})

    def hash(self) -> str:
        """Short stable hash of the run description (names run directories, as OpenLTH does); renamed
        keys are hashed under their old spelling, so stored runs keep their names."""
        from sdd_opt.plugins import hash_fields

        return stable_hash({**hash_spelling(self.describe()), **hash_fields(self)})


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- loading -------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice and reads ``1e-3`` as a float."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.MarkedYAMLError):
    def __init__(self, key: Any, first, mark):
        super().__init__(problem=f"duplicate key {key!r} (first given on line {first.line + 1})", problem_mark=mark)


# YAML 1.1 (PyYAML) reads 1e-3 as a string; YAML 1.2 and every researcher read a number.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text strictly; errors become one line naming ``source``, line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise UserError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UserError(f"{source}: malformed YAML at {where}: {_one_line(exc.problem)}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: malformed YAML: {_one_line(exc)}") from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def read_text(path: str | Path) -> str:
    """A text file's contents, with one-line errors for a missing, unreadable or non-UTF-8 file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a YAML file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the file as UTF-8") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping safely and strictly; an empty file (or one of only comments) is refused."""
    path = Path(path)
    data = load_yaml_text(read_text(path), str(path))
    if data is None:
        raise UserError(f"{path}: empty file; write the keys to change (an empty mapping {{}} means all defaults)")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """Split ``key.sub=value``; the value is read as a YAML scalar/list (so 1e-3, true, [1,2] work)."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {item!r}: empty key")
    key = rename_dotted(key)  # an old name overrides the value under its new name
    if not raw.strip():
        return key, None
    try:
        value = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise UserError(f"--set {item!r}: {exc.problem}") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"{key}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return data


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """First pydantic error as ``source: dotted.key: reason``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict):
            msg += f" (got {err['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {loc}: {msg}{suffix}" if loc else f"{source}: {msg}{suffix}"


def blamed_source(exc: ValidationError, source: str, overrides: list[str] | None) -> str:
    """``--set KEY=VALUE`` when the first error is at (or under) a key set on the command line, else ``source``.

    The last ``--set`` of a key wins, so it is the one named.
    """
    loc = ".".join(str(p) for p in exc.errors()[0]["loc"])
    for item in reversed(overrides or []):
        key = parse_override(item)[0]
        if loc and (loc == key or loc.startswith(key + ".")):
            return f"--set {item}"
    return source


def build_config(data: dict[str, Any], source: str = "config", *, stored: bool = False,
                 blame: list[str] | None = None) -> RunConfig:
    """Validate a run config; ``stored``: data sdd-opt wrote itself (old key names read without a warning).

    ``blame``: the ``--set`` items applied to ``data``; an error at one of their keys names that
    ``--set``, not the file it was applied to.
    """
    data = dict(data)
    data.pop("provenance", None)
    try:
        return RunConfig.model_validate(data, context={"stored": stored})
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, blamed_source(exc, source, blame))) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *,
                stored: bool = False) -> RunConfig:
    """Load a run config from YAML (or defaults when ``path`` is None) and apply ``--set`` overrides."""
    data = read_yaml(path) if path is not None else {}
    return build_config(apply_overrides(data, overrides), source=str(path) if path else "config", stored=stored,
                        blame=overrides)


def dump_config(cfg: RunConfig, path: str | Path, provenance: dict[str, Any] | None = None) -> None:
    data = cfg.describe()
    if provenance:
        data["provenance"] = provenance
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
