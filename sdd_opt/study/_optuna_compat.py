"""The one place that touches private Optuna and optuna-dashboard names.

Optuna gives no public way to do these (it has moved ``_grpc/server.py`` once already), so every
private name sdd-opt relies on lives here, behind a small function, and
``tests/study/test_optuna_compat.py`` checks each one against the installed versions: an upgrade
that renames one fails there, loudly, instead of somewhere in a worker. The rest of ``sdd_opt``
imports from here and otherwise uses Optuna's public API (a test greps for private names).
"""

from __future__ import annotations

import abc
import copy
from typing import Any, Callable

import optuna

# Private storage methods that Optuna's own cache calls directly, so retries must wrap them too.
PRIVATE_RDB_METHODS = ("_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id",
                       "_get_stale_trial_ids")
CREATE_NEW_TRIAL = "_create_new_trial"  # what _CachedStorage.create_new_trial calls on its backend
STALE_TRIAL_IDS = "_get_stale_trial_ids"  # RDBStorage's query behind optuna.storages.fail_stale_trials


def storage_of(study: optuna.Study):
    """The storage object a study talks to (``Study._storage``; Optuna has no public accessor)."""
    return study._storage


def trial_id_of(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of a trial (``_trial_id``): what storage calls take, unlike ``trial.number``."""
    return trial._trial_id


def with_system_attrs(trial: optuna.trial.FrozenTrial, extra: dict[str, Any]) -> optuna.trial.FrozenTrial:
    """A shallow copy of ``trial`` whose system attrs also hold ``extra`` (FrozenTrial has no setter)."""
    out = copy.copy(trial)
    out._system_attrs = {**trial.system_attrs, **extra}
    return out


def lazy_random_state_class() -> type:
    """The wrapper in which Optuna's samplers keep their numpy RandomState."""
    from optuna.samplers._lazy_random_state import LazyRandomState

    return LazyRandomState


def is_heartbeat_enabled(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled as enabled

    return enabled(storage)


def base_heartbeat_class() -> type:
    """The mixin Optuna checks (``isinstance``) before it starts a trial's heartbeat thread."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return BaseHeartbeat


def cached_storage_class() -> type:
    """The in-process cache Optuna puts in front of an RDBStorage (what its gRPC server serves)."""
    from optuna.storages import _CachedStorage

    return _CachedStorage


def cached_backend(storage):
    """The storage behind a ``_CachedStorage`` (or None for any other storage)."""
    return getattr(storage, "_backend", None)


def make_grpc_server(storage, host: str, port: int, executor):
    """Optuna's gRPC storage server (not exported; ``run_grpc_proxy_server`` blocks and owns signals)."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, executor)


def base_stale_trial_ids(base_cls: type, storage, study_id: int) -> list[int]:
    """Call the base class's ``_get_stale_trial_ids`` (for an override that adds to it)."""
    return getattr(base_cls, STALE_TRIAL_IDS)(storage, study_id)


def override_stale_trial_ids(cls: type, method: Callable[[Any, int], list[int]]) -> None:
    """Make ``cls``'s stale-trial query ``method`` (Optuna calls it from ``fail_stale_trials``).

    It is abstract in ``BaseHeartbeat``: the class's abstract-method set is recomputed after.
    """
    setattr(cls, STALE_TRIAL_IDS, method)
    abc.update_abstractmethods(cls)


def serialize_frozen_trial(study_id: int, trial, study_system_attrs: dict) -> dict:
    """optuna-dashboard's JSON form of a trial (for the "Best Trial" marks the plots add)."""
    from optuna_dashboard._serializer import serialize_frozen_trial as serialize

    return serialize(study_id, trial, study_system_attrs)
