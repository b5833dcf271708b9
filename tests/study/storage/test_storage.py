"""The study storage: transient errors retried inside each call, outages, settings, secrets."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from sdd_opt.errors import UserError
from sdd_opt.study.storage import StorageSettings, faults, open_storage
from sdd_opt.study.storage.faults import Retrier, RetryPolicy, StorageUnavailable, classify
from sdd_opt.testing import run_cli

from ..db import TcpProxy, db_url, server_url, tracked_studies, unique_name  # noqa: F401  (db_url is a fixture)


def _settings(**kw):
    kw.setdefault("log", lambda m: None)
    return StorageSettings(**kw)


# --- which errors are transient ----------------------------------------------------------------

def _wrapped(dbapi_exc):
    """An error as the storage raises it: DBAPI error -> SQLAlchemy error -> StorageInternalError."""
    import sqlalchemy.exc

    sa = sqlalchemy.exc.OperationalError("UPDATE trials ...", {}, dbapi_exc)
    try:
        try:
            raise sa
        except sqlalchemy.exc.SQLAlchemyError as e:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
    except optuna.exceptions.StorageInternalError as outer:
        return outer


def test_classify_known_transient_errors():
    import sqlite3

    import psycopg.errors
    import pymysql

    assert classify(_wrapped(pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"))) == "deadlock"
    assert classify(_wrapped(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"))) == "lock timeout"
    assert classify(_wrapped(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))) == "connection"
    assert classify(_wrapped(pymysql.err.OperationalError(2006, "MySQL server has gone away"))) == "connection"
    assert classify(_wrapped(psycopg.errors.SerializationFailure("could not serialize access"))) == "serialization"
    assert classify(_wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))) == "deadlock"
    assert classify(_wrapped(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))) == "connection"
    assert classify(_wrapped(psycopg.OperationalError("connection failed: Connection refused"))) == "connection"
    assert classify(_wrapped(sqlite3.OperationalError("database is locked"))) == "busy"


def test_classify_leaves_real_mistakes_alone():
    import sqlite3

    import psycopg.errors
    import pymysql

    assert classify(_wrapped(pymysql.err.OperationalError(1054, "Unknown column"))) is None
    assert classify(_wrapped(psycopg.errors.UndefinedColumn("column does not exist"))) is None
    assert classify(_wrapped(sqlite3.OperationalError("no such table: trials"))) is None
    assert classify(ValueError("bad value")) is None
    assert classify(KeyError("study not found")) is None


# --- the retry loop ----------------------------------------------------------------------------

def test_retrier_retries_then_succeeds_and_counts():
    import pymysql

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _wrapped(pymysql.err.OperationalError(1213, "Deadlock found"))
        return "ok"

    r = Retrier(RetryPolicy(storage_timeout=10, base=0.001), "mysql+pymysql://u:pw@h/db", log=lambda m: None)
    assert r.call("set_trial_user_attr", flaky) == "ok"
    assert len(calls) == 3 and r.stats.retries == {"deadlock": 2} and r.stats.calls == 1


def test_retrier_gives_up_with_a_clear_masked_message_and_fails_fast_after():
    import psycopg

    logs = []

    def down():
        raise _wrapped(psycopg.OperationalError("connection failed: Connection refused"))

    r = Retrier(RetryPolicy(storage_timeout=0.3, base=0.01, cap=0.05), "postgresql+psycopg://alice:s3cret@db:5432/x", logs.append)
    t0 = time.monotonic()
    with pytest.raises(StorageUnavailable) as info:
        r.call("get_all_trials", down)
    assert 0.3 <= time.monotonic() - t0 < 2
    msg = str(info.value)
    assert "unreachable for" in msg and "alice:***@db" in msg and "s3cret" not in msg and "This worker stops" in msg
    assert isinstance(info.value, UserError)
    assert logs and all("s3cret" not in m for m in logs)
    t0 = time.monotonic()
    with pytest.raises(StorageUnavailable):  # later calls fail at once
        r.call("get_trial", lambda: "never called")
    assert time.monotonic() - t0 < 0.1


def test_non_transient_errors_are_raised_at_once():
    r = Retrier(RetryPolicy(storage_timeout=10), "sqlite://", log=lambda m: None)
    calls = []

    def bad():
        calls.append(1)
        raise KeyError("no such trial")

    with pytest.raises(KeyError):
        r.call("get_trial", bad)
    assert len(calls) == 1 and r.stats.retries == {}


def test_nested_calls_retry_only_once(sqlite_url):
    storage = open_storage(sqlite_url, _settings())
    study = optuna.create_study(storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    r = storage._retrier
    before = r.stats.calls
    storage.get_all_trials(study._study_id)  # public method calling the private _get_trials
    assert r.stats.calls == before + 1


def test_a_state_change_that_committed_before_the_connection_broke_is_not_an_error(sqlite_url):
    storage = open_storage(sqlite_url, _settings())
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    # first attempt commits and then "loses the connection"; the retry sees a finished trial
    import pymysql
    from optuna.storages import RDBStorage

    state = {"n": 0}

    def commit_then_break(self, trial_id, state_, values=None):
        state["n"] += 1
        if state["n"] == 1:
            RDBStorage.set_trial_state_values(self, trial_id, state_, values)
            raise _wrapped(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
        return RDBStorage.set_trial_state_values(self, trial_id, state_, values)

    assert storage._retrier.call("set_trial_state_values", commit_then_break, storage, trial._trial_id,
                                 TrialState.COMPLETE, [1.0]) is True
    assert storage.get_trial(trial._trial_id).state == TrialState.COMPLETE


# --- settings ----------------------------------------------------------------------------------

def test_sqlite_gets_wal_and_a_busy_timeout(sqlite_url):
    from sqlalchemy import text

    storage = open_storage(sqlite_url, _settings())
    with storage.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 120000


def test_sqlite_on_a_network_filesystem_asks_for_a_server_database(sqlite_url, monkeypatch):
    from sdd_opt.study import storage as st

    monkeypatch.setattr(st, "filesystem_type", lambda path: "nfs4")
    with pytest.raises(UserError, match="network filesystem.*server database"):
        open_storage(sqlite_url, _settings())


def test_pool_and_timeouts_follow_the_threads(db_url):
    from sqlalchemy import text

    storage = open_storage(db_url, _settings(threads=3, lock_timeout=7))
    try:
        assert storage.engine.pool.size() == 4  # 3 threads + the heartbeat thread
        with storage.engine.connect() as conn:
            if storage.engine.name == "mysql":
                assert conn.execute(text("SELECT @@innodb_lock_wait_timeout")).scalar() == 7
                assert "READ-COMMITTED" in conn.execute(text("SELECT @@tx_isolation")).scalar().upper().replace("_", "-")
            else:
                assert conn.execute(text("SHOW lock_timeout")).scalar() == "7s"
    finally:
        storage.engine.dispose()


# --- real servers: locks, deadlocks, outages ---------------------------------------------------

def _raw_connect(url):
    from sqlalchemy import create_engine

    return create_engine(url, isolation_level="READ COMMITTED" if url.startswith("mysql") else None)


def test_real_deadlocks_are_recognised(db_url):
    """Two transactions locking two rows in opposite orders: the server kills one with a deadlock."""
    from sqlalchemy import text

    engine = _raw_connect(db_url)
    table = unique_name("dl").replace("-", "_")
    errors = []
    try:
        with engine.begin() as c:
            c.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v INTEGER)"))
            c.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
        barrier = threading.Barrier(2)

        def tx(first, second):
            try:
                with engine.begin() as c:
                    c.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {first}"))
                    barrier.wait(5)
                    c.execute(text(f"UPDATE {table} SET v = v + 1 WHERE id = {second}"))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=tx, args=a) for a in ((1, 2), (2, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        with engine.begin() as c:
            c.execute(text(f"DROP TABLE {table}"))
        engine.dispose()
    assert len(errors) == 1, errors
    assert classify(errors[0]) == "deadlock"


def test_a_lock_wait_timeout_is_retried_inside_the_call(db_url):
    """Another connection holds the trial's row lock for 2.5 s; with a 1 s lock timeout the storage
    call times out on the server, retries, and succeeds once the lock is gone."""
    from sqlalchemy import text

    storage = open_storage(db_url, _settings(lock_timeout=1, heartbeat_interval=None))
    engine = _raw_connect(db_url)
    with tracked_studies(db_url) as names:
        name = unique_name()
        names.append(name)
        study = optuna.create_study(study_name=name, storage=storage)
        trial = study.ask()
        locked = threading.Event()

        def hold():
            with engine.begin() as c:
                c.execute(text(f"SELECT * FROM trials WHERE trial_id = {trial._trial_id} FOR UPDATE"))
                locked.set()
                time.sleep(2.5)

        holder = threading.Thread(target=hold)
        holder.start()
        assert locked.wait(10)
        t0 = time.monotonic()
        assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.5])
        holder.join()
        assert time.monotonic() - t0 >= 2.0
        assert storage._retrier.stats.retries.get("lock timeout", 0) >= 1
        assert storage.get_trial(trial._trial_id).state == TrialState.COMPLETE
    engine.dispose()
    storage.engine.dispose()


def _proxy_for(url):
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return TcpProxy(u.host, u.port).start()


def test_a_lost_connection_is_retried_until_the_server_is_back(db_url):
    proxy = _proxy_for(db_url)
    logs = []
    storage = open_storage(proxy.url_for(db_url), _settings(storage_timeout=30, heartbeat_interval=None, log=logs.append))
    try:
        with tracked_studies(db_url) as names:
            name = unique_name()
            names.append(name)
            study = optuna.create_study(study_name=name, storage=storage)
            trial = study.ask()
            proxy.stop()  # every connection is cut, new ones are refused: a server restart
            threading.Timer(2.0, proxy.start).start()
            t0 = time.monotonic()
            storage.set_trial_user_attr(trial._trial_id, "level", 3)
            assert time.monotonic() - t0 >= 1.5
            assert storage._retrier.stats.retries.get("connection", 0) >= 1
            assert storage.get_trial(trial._trial_id).user_attrs["level"] == 3
            assert any("retrying for up to 30s" in m for m in logs) and any("succeeded after" in m for m in logs)
    finally:
        storage.engine.dispose()
        proxy.stop()


def test_a_storage_down_for_longer_than_the_limit_ends_with_a_clear_message(capsys):
    url = server_url("postgresql")
    from sqlalchemy.engine import make_url

    secret_url = make_url(url).set(password="s3cret").render_as_string(hide_password=False)  # trust auth ignores it
    proxy = _proxy_for(secret_url)
    logs = []
    storage = open_storage(proxy.url_for(secret_url), _settings(storage_timeout=2, heartbeat_interval=None, log=logs.append))
    try:
        with tracked_studies(url) as names:
            name = unique_name()
            names.append(name)
            study = optuna.create_study(study_name=name, storage=storage)
            trial = study.ask()
            proxy.stop()
            t0 = time.monotonic()
            with pytest.raises(StorageUnavailable) as info:
                storage.set_trial_user_attr(trial._trial_id, "x", 1)
            assert 2 <= time.monotonic() - t0 < 15
            msg = str(info.value)
            assert "unreachable for" in msg and ":***@127.0.0.1" in msg and "s3cret" not in msg
            assert all("s3cret" not in m for m in logs)
            # the heartbeat thread must not die with a traceback when the storage is gone
            storage.record_heartbeat(trial._trial_id)
    finally:
        storage.engine.dispose()
        proxy.stop()


# --- secrets -----------------------------------------------------------------------------------

def test_study_list_and_create_never_print_the_password(capsys, study_file, monkeypatch):
    url = server_url("postgresql")
    from sqlalchemy.engine import make_url

    secret_url = make_url(url).set(password="hunter2").render_as_string(hide_password=False)
    name = unique_name()
    with tracked_studies(url) as names:
        names.append(name)
        code, out, err = run_cli(capsys, "study", "create", str(study_file()), "--storage", secret_url, "--name", name)
        assert code == 0, err
        code, out2, err2 = run_cli(capsys, "study", "list", "--storage", secret_url)
        assert code == 0 and name in out2
        for text_ in (out, err, out2, err2):
            assert "hunter2" not in text_
        assert "postgres:***@" in out2


def test_the_password_can_come_from_the_environment(capsys, monkeypatch):
    url = server_url("postgresql")
    monkeypatch.setenv("SDD_OPT_STORAGE", url)
    monkeypatch.setenv("SDD_OPT_STORAGE_PASSWORD", "from-env-pw")
    from sdd_opt.study.storage import resolve_url

    assert "from-env-pw" in resolve_url(None)
    code, out, err = run_cli(capsys, "study", "list")
    assert code == 0 and "from-env-pw" not in out + err


def test_faults_wraps_every_database_method():
    from optuna.storages import RDBStorage

    from sdd_opt.study.storage import _rdb_class

    cls = _rdb_class()
    for name in faults.RDB_METHODS:
        assert getattr(cls, name) is not getattr(RDBStorage, name), name


def test_storage_serve_is_on_the_command_line(capsys):
    from sdd_opt.cli.app import cli

    assert "storage" in cli.commands
    code, out, _ = run_cli(capsys, "storage", "serve", "--help")
    assert code == 0 and "--port" in out and "127.0.0.1" in out and "grpc://HOST:PORT" in out
