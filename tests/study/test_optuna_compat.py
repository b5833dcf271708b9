"""Every private Optuna / optuna-dashboard name sdd-opt uses, checked against the installed versions.

If one of these fails after an upgrade, fix ``sdd_opt/study/_optuna_compat.py`` (and only it).
"""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest

from sdd_opt.study import _optuna_compat as compat


@pytest.fixture
def rdb(tmp_path):
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=60, grace_period=120)


def test_storage_and_trial_ids(rdb):
    study = optuna.create_study(storage=rdb, study_name="c")
    storage = compat.storage_of(study)
    assert storage is rdb or compat.cached_backend(storage) is rdb  # Optuna caches an RDBStorage
    trial = study.ask()
    tid = compat.trial_id_of(trial)
    study_id = rdb.get_study_id_from_name("c")
    assert tid == rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    assert compat.trial_id_of(rdb.get_trial(tid)) == tid


def test_with_system_attrs_copies():
    t = optuna.trial.create_trial(value=1.0, system_attrs={"a": 1})
    u = compat.with_system_attrs(t, {"constraints": [0.5]})
    assert u.system_attrs == {"a": 1, "constraints": [0.5]} and t.system_attrs == {"a": 1}


def test_lazy_random_state_is_what_samplers_hold():
    cls = compat.lazy_random_state_class()
    sampler = optuna.samplers.RandomSampler(seed=0)
    states = [v for v in vars(sampler).values() if isinstance(v, cls)]
    assert states and hasattr(states[0], "rng") and hasattr(states[0].rng, "seed")


def test_heartbeat_helpers(rdb, tmp_path):
    assert compat.is_heartbeat_enabled(rdb)
    assert not compat.is_heartbeat_enabled(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'n.db'}"))
    assert isinstance(rdb, compat.base_heartbeat_class())


def test_stale_trial_query_and_override(rdb):
    optuna.create_study(storage=rdb, study_name="s")
    study_id = rdb.get_study_id_from_name("s")
    assert compat.base_stale_trial_ids(optuna.storages.RDBStorage, rdb, study_id) == []
    assert callable(getattr(optuna.storages.RDBStorage, compat.STALE_TRIAL_IDS))
    for name in compat.PRIVATE_RDB_METHODS:  # retried because Optuna's cache calls them
        assert callable(getattr(optuna.storages.RDBStorage, name)), name

    class Mine(optuna.storages.RDBStorage):
        def stale(self, sid):
            return [42]

    compat.override_stale_trial_ids(Mine, Mine.stale)
    assert getattr(Mine, compat.STALE_TRIAL_IDS)(None, study_id) == [42]

    class Beat(compat.base_heartbeat_class()):  # abstract there: the override must make it concrete
        def record_heartbeat(self, trial_id): ...
        def get_heartbeat_interval(self): ...
        def get_heartbeat_stale_trial_callback(self): ...

    compat.override_stale_trial_ids(Beat, lambda self, sid: [7])
    assert getattr(Beat(), compat.STALE_TRIAL_IDS)(0) == [7]


def test_the_storage_classes_built_on_the_overrides_are_concrete():
    pytest.importorskip("grpc")
    from sdd_opt.study.storage import _grpc_class, _rdb_class

    assert not _rdb_class().__abstractmethods__ and not _grpc_class().__abstractmethods__


def test_cached_storage_and_its_backend(rdb):
    cached = compat.cached_storage_class()(rdb)
    assert compat.cached_backend(cached) is rdb and compat.cached_backend(rdb) is None
    assert isinstance(cached, optuna.storages.BaseStorage)


def test_grpc_server_factory(rdb):
    pytest.importorskip("grpc")
    server = compat.make_grpc_server(compat.cached_storage_class()(rdb), "127.0.0.1", 0, ThreadPoolExecutor(1))
    assert hasattr(server, "start") and hasattr(server, "stop")


def test_dashboard_serializer(rdb):
    pytest.importorskip("optuna_dashboard")
    study = optuna.create_study(storage=rdb, study_name="d")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    study_id = rdb.get_study_id_from_name("d")
    out = compat.serialize_frozen_trial(study_id, study.trials[0], rdb.get_study_system_attrs(study_id))
    assert out["number"] == 0 and out["study_id"] == study_id


PRIVATE = re.compile(
    r"\._storage\b|\._trial_id\b|\._system_attrs\b|\._backend\b|_CachedStorage|_lazy_random_state|"
    r"storages\._heartbeat|_grpc\.server|optuna_dashboard\._|\b_get_stale_trial_ids\b|"
    r"[\"'](_create_new_trial|_set_trial_param|_get_trials|_get_best_trial_id)[\"']|"
    r"\b(optuna|optuna_dashboard)(\.\w+)*\._\w+")


def test_no_private_optuna_name_outside_the_compat_module():
    root = Path(__file__).resolve().parents[2] / "sdd_opt"
    hits = []
    for path in [*root.rglob("*.py"), *(root.parent / "benchmarks").rglob("*.py")]:
        if path.name == "_optuna_compat.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line):
                hits.append(f"{path.relative_to(root.parent)}:{n}: {line.strip()}")
    assert not hits, "private Optuna names outside sdd_opt/study/_optuna_compat.py:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_should():
    for line in ("s = study._storage", "from optuna.storages._heartbeat import x", "t._trial_id",
                 "optuna.storages._CachedStorage", "import optuna_dashboard._serializer", '"_get_trials"'):
        assert PRIVATE.search(line), line
