"""Models and datasets from outside sdd-opt: an import path ``module:function`` or an entry point.

``model.name`` / ``data.name`` is a built-in name (``MODELS`` / ``DATASETS``), an import path such
as ``mypkg.nets:build``, or the short name of an entry point that an installed package declares in
the group ``sdd_opt.models`` / ``sdd_opt.datasets``. This module is the one place that resolves
them, for every process alike (``study run --jobs N`` children, ``study worker`` on another
machine, gRPC-proxy workers): the module is found on ``sys.path`` (``PYTHONPATH``) and then in the
current directory. docs/plugins.md is the contract a builder and a loader follow.

A plug-in's identity is its import path *and* a hash of its source (the module's file, or every
``.py`` file of its top-level package), so a changed model never reuses a stale run or teacher;
built-in names add nothing to any hash, so stored runs keep their names.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from sdd_opt.errors import UserError

GROUPS = {"model": "sdd_opt.models", "data": "sdd_opt.datasets"}
BUILDER_ARGS = ("width", "input_shape", "num_classes")
LOADER_ARGS = ("data_dir",)
STUDY_ATTR = "sdd_opt.plugins"  # {"model.name=<path>": source hash} of the plug-ins a study was created with


@dataclass(frozen=True)
class Plugin:
    kind: str          # "model" or "data"
    name: str          # as written in the config
    path: str          # module:attr
    fn: Callable
    module_file: str
    version: Optional[str]  # the installed distribution's version, if the module belongs to one
    source_hash: str

    @property
    def field(self) -> str:
        return f"{self.kind}.name"


_CACHE: dict[tuple[str, str], Plugin] = {}
_DATA_CACHE: dict[str, Any] = {}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@functools.lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, str]:
    return {ep.name: f"{ep.module}:{ep.attr}" if ep.attr else ep.value
            for ep in importlib.metadata.entry_points(group=GROUPS[kind])}


def entry_point_names(kind: str) -> list[str]:
    return sorted(_entry_points(kind))


def is_plugin(kind: str, name: str) -> bool:
    """An import path, or an installed entry point's name. (Callers look a name up among the built-ins
    first: a built-in name is never a plug-in, so it adds nothing to any hash.)"""
    return ":" in name or name in _entry_points(kind)


def import_path(kind: str, name: str) -> str:
    """``module:attr`` for an import path or an entry point's short name (ValueError: neither)."""
    if ":" in name:
        module, _, attr = name.partition(":")
        parts = module.split(".") + attr.split(".")
        if not module or not attr or not all(p.isidentifier() for p in parts):
            raise ValueError(f"{name!r} is not an import path 'module:function' (e.g. mypkg.nets:build)")
        return name
    eps = _entry_points(kind)
    if name in eps:
        return eps[name]
    raise ValueError(f"{name!r} is neither an import path 'module:function' nor an installed entry point")


def _import(path: str) -> tuple[Callable, Any]:
    """Import ``module:attr``: ``sys.path`` first, then the current directory; no ``.pyc`` written."""
    module_name, _, attr = path.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    importlib.invalidate_caches()  # a module file written since the last import (tests, notebooks)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, SyntaxError, or whatever the module raises at import
        raise ValueError(f"cannot import {path!r} ({type(exc).__name__}: {_one_line(exc)}); "
                         "the module is looked up on PYTHONPATH, then in the current directory") from None
    finally:
        sys.dont_write_bytecode = keep
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{path} is a {type(obj).__name__}, not a callable")
    return obj, module


def _source_files(module) -> list[Path]:
    """The module's file, or every ``.py`` file of its top-level package (helpers change a model too)."""
    top = sys.modules.get(module.__name__.split(".")[0])
    roots = list(getattr(top, "__path__", []) or [])
    if roots:
        return sorted(p for root in roots for p in Path(root).rglob("*.py"))
    file = getattr(module, "__file__", None)
    return [Path(file)] if file else []


def source_hash(module) -> str:
    h = hashlib.sha256()
    for path in _source_files(module):
        h.update(path.name.encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()[:16]


def _version(module) -> Optional[str]:
    top = module.__name__.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def resolve(kind: str, name: str) -> Plugin:
    """The plug-in behind ``name`` (imported once per process); ValueError when it cannot be used."""
    key = (kind, name)
    if key not in _CACHE:
        path = import_path(kind, name)
        fn, module = _import(path)
        _CACHE[key] = Plugin(kind, name, path, fn, str(getattr(module, "__file__", "") or ""),
                             _version(module), source_hash(module))
    return _CACHE[key]


def resolve_or_exit(kind: str, name: str) -> Plugin:
    try:
        return resolve(kind, name)
    except ValueError as exc:
        raise UserError(f"{kind}.name: {exc}") from None


def check_arguments(plugin: Plugin, extras: dict) -> None:
    """The callable takes sdd-opt's arguments and every extra key the user put beside ``name``."""
    required = BUILDER_ARGS if plugin.kind == "model" else LOADER_ARGS
    try:
        params = inspect.signature(plugin.fn).parameters
    except (TypeError, ValueError):
        return  # a builtin or C callable: its call will tell
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    names = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [a for a in required if a not in names]
    if missing:
        raise ValueError(f"{plugin.path} must accept the keyword argument(s) {', '.join(missing)} "
                         f"(docs/plugins.md); it takes ({', '.join(params)})")
    unknown = [k for k in extras if k not in names]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: {plugin.path} takes ({', '.join(params)})")
    extra_required = [n for n, p in params.items() if p.default is p.empty and n not in required
                      and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in extras]
    if extra_required:
        raise ValueError(f"{plugin.path} needs {extra_required[0]!r}: give it beside name under {plugin.kind}:")


# -- models --------------------------------------------------------------------------------------

def build_model(name: str, extras: dict, width: int, input_shape: tuple[int, ...], num_classes: int):
    """Call a plug-in builder; a raise or a result that is no ``nn.Module`` is a UserError."""
    from torch import nn

    plugin = resolve_or_exit("model", name)
    try:
        model = plugin.fn(width=width, input_shape=input_shape, num_classes=num_classes, **extras)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"model.name: {plugin.path} raised {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model.name: {plugin.path} returned {type(model).__name__}, not a torch.nn.Module")
    return _materialized(model, plugin, input_shape)


def _materialized(model, plugin: Plugin, input_shape: tuple[int, ...]):
    """Lazy layers (``nn.LazyLinear``...) get their shapes from one batch of zeros, as masks need them."""
    import torch
    from torch.nn.parameter import UninitializedParameter

    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        try:
            with torch.no_grad():
                model(torch.zeros(2, *input_shape))
        except Exception as exc:
            raise UserError(f"model.name: {plugin.path}: its lazy layers failed on inputs of shape "
                            f"{tuple(input_shape)}: {type(exc).__name__}: {_one_line(exc)}") from None
    return model


# -- datasets ------------------------------------------------------------------------------------

def _tensor(value, what: str, where: str):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        return torch.as_tensor(value)
    except Exception:
        raise UserError(f"data.name: {where} returned {what} as {type(value).__name__}, "
                        "not a tensor or array") from None


def _pair(value, split: str, where: str):
    """``(x, y)`` from a pair of tensors/arrays or a map-style ``torch.utils.data.Dataset``."""
    import torch
    from torch.utils.data import Dataset

    if isinstance(value, Dataset):
        items = [value[i] for i in range(len(value))]  # type: ignore[arg-type]
        if not items:
            return torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
        xs, ys = zip(*items)
        return torch.stack([_tensor(x, f"x_{split}", where) for x in xs]), torch.as_tensor(ys)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _tensor(value[0], f"x_{split}", where), _tensor(value[1], f"y_{split}", where)
    raise UserError(f"data.name: {where} returned '{split}' as {type(value).__name__}; give an (x, y) pair "
                    "or a torch Dataset of (x, y) items")


def _fields(out, where: str) -> dict:
    if all(hasattr(out, k) for k in ("x_train", "y_train", "x_test", "y_test", "num_classes")):  # a RawData
        return {"x_train": out.x_train, "y_train": out.y_train, "x_test": out.x_test, "y_test": out.y_test,
                "num_classes": out.num_classes, "augment": bool(getattr(out, "augment_default", False))}
    if not isinstance(out, dict):
        raise UserError(f"data.name: {where} returned {type(out).__name__}; return a dict with train, test and "
                        "num_classes (docs/plugins.md)")
    missing = [k for k in ("num_classes",) if k not in out]
    if missing:
        raise UserError(f"data.name: {where} returned no 'num_classes'")
    f = {"num_classes": out["num_classes"], "augment": bool(out.get("augment", False))}
    for split in ("train", "test"):
        if split in out:
            f[f"x_{split}"], f[f"y_{split}"] = _pair(out[split], split, where)
        elif f"x_{split}" in out and f"y_{split}" in out:
            f[f"x_{split}"] = _tensor(out[f"x_{split}"], f"x_{split}", where)
            f[f"y_{split}"] = _tensor(out[f"y_{split}"], f"y_{split}", where)
        else:
            raise UserError(f"data.name: {where} returned no '{split}' split (give '{split}': (x, y))")
    return f


def check_data(f: dict, where: str) -> None:
    """Shapes and labels a run can use: non-empty splits, matching inputs, labels in 0..C-1."""
    import torch

    c = f["num_classes"]
    if isinstance(c, bool) or not isinstance(c, int) or c < 2:
        raise UserError(f"data.name: {where} returned num_classes {c!r}; need a whole number >= 2")
    for split in ("train", "test"):
        x, y = f[f"x_{split}"], f[f"y_{split}"]
        if len(x) == 0 or len(y) == 0:
            raise UserError(f"data.name: {where} returned an empty {split} split")
        if x.dim() < 2 or len(x) != len(y) or y.dim() != 1:
            raise UserError(f"data.name: {where}: x_{split} {tuple(x.shape)} and y_{split} {tuple(y.shape)} do not "
                            f"fit; need x of shape (N, *input_shape) and y of shape (N,)")
        if y.is_floating_point() and not torch.equal(y, y.round()) or y.dtype == torch.bool:
            raise UserError(f"data.name: {where}: y_{split} holds {y.dtype} values; labels are class indices")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= c:
            raise UserError(f"data.name: {where}: y_{split} has labels {lo}..{hi}, outside 0..{c - 1} "
                            f"(num_classes {c})")
        if not torch.isfinite(x.float()).all():
            raise UserError(f"data.name: {where}: x_{split} holds NaN or infinite values")
    if f["x_train"].shape[1:] != f["x_test"].shape[1:]:
        raise UserError(f"data.name: {where}: train inputs {tuple(f['x_train'].shape[1:])} and test inputs "
                        f"{tuple(f['x_test'].shape[1:])} differ in shape")


def load_fields(cfg) -> dict:
    """A plug-in dataset as checked fields (x_train, y_train, x_test, y_test, num_classes, augment;
    ``cfg`` a DataConfig), loaded once per process."""
    plugin = resolve_or_exit("data", cfg.name)
    extras = dict(cfg.model_extra or {})
    key = json.dumps([plugin.path, plugin.source_hash, cfg.data_dir, extras], sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        try:
            out = plugin.fn(data_dir=cfg.data_dir, **extras)
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"data.name: {plugin.path} raised {type(exc).__name__}: {_one_line(exc)}") from None
        f = _fields(out, plugin.path)
        check_data(f, plugin.path)
        _DATA_CACHE[key] = {**f, "x_train": f["x_train"].float(), "y_train": f["y_train"].long(),
                            "x_test": f["x_test"].float(), "y_test": f["y_test"].long()}
    return _DATA_CACHE[key]


def uses_plugins(cfg) -> bool:
    return is_plugin("model", cfg.model.name) or is_plugin("data", cfg.data.name)


# -- identity and provenance ----------------------------------------------------------------------

def _used(cfg) -> list[Plugin]:
    return [resolve_or_exit(kind, name) for kind, name in (("model", cfg.model.name), ("data", cfg.data.name))
            if is_plugin(kind, name)]


def hash_fields(cfg) -> dict:
    """What a plug-in adds to a run's hashes: its import path and source hash ({} for built-ins)."""
    used = _used(cfg)
    return {"plugins": {p.kind: {"path": p.path, "source": p.source_hash} for p in used}} if used else {}


def provenance_of(cfg) -> dict:
    """Where the plug-ins came from: import path, module file, package version, source hash."""
    used = _used(cfg)
    return {"plugins": {p.kind: {"name": p.name, "path": p.path, "file": p.module_file, "version": p.version,
                                 "source": p.source_hash} for p in used}} if used else {}


# -- studies ---------------------------------------------------------------------------------------

def study_names(spec) -> list[tuple[str, str]]:
    """(kind, name) of every plug-in a study's trials may use: the base config's and searched choices."""
    out = [("model", spec.base.model.name), ("data", spec.base.data.name)]
    for kind in ("model", "data"):
        param = spec.search_space.get(f"{kind}.name")
        if param is not None and param.choices:
            out += [(kind, str(c)) for c in param.choices]
    return [(k, n) for k, n in dict.fromkeys(out) if is_plugin(k, n)]


def _current(spec, fresh: bool) -> dict[str, str]:
    out = {}
    for kind, name in study_names(spec):
        p = resolve_or_exit(kind, name)
        mod = sys.modules[p.path.partition(":")[0]]
        out[f"{kind}.name={p.path}"] = source_hash(mod) if fresh else p.source_hash
    return out


def study_attr(spec) -> dict[str, str]:
    """The plug-ins' source hashes a new study stores (empty without plug-ins)."""
    return _current(spec, fresh=False)


def check_study(study, spec, *, fresh: bool = True) -> None:
    """Refuse to take a trial when a plug-in does not import here, or its source differs from the one
    the study was created with (``fresh``: the file as it is now, not as it was imported)."""
    now = _current(spec, fresh=fresh)
    stored = study.user_attrs.get(STUDY_ATTR) or {}
    for key, digest in now.items():
        before = stored.get(key)
        if before is not None and before != digest:
            field, _, path = key.partition("=")
            raise UserError(f"{field}: the source of {path} changed since study {spec.name!r} was created "
                            f"(source hash {before} then, {digest} now); new trials would mix two models: restore "
                            f"it, or run the changed one as a new study (--name)")
