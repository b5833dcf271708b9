"""Fault tolerance of the study storage: transient database errors are retried inside each call.

Many workers on one PostgreSQL or MySQL/MariaDB database hit errors that say "try again", not
"you are wrong": MySQL deadlocks (1213) and lock-wait timeouts (1205), PostgreSQL serialization
failures (40001), deadlocks (40P01) and lock timeouts (55P03), SQLite's "database is locked", a
full connection pool, and connections lost to a server restart or a network blip. Optuna retries
only the creation of a trial (see optuna/optuna#1496, #1499, #5582); everything else would end
the worker. Here every storage call runs inside :meth:`Retrier.call`:

* a transient error (:func:`classify`) rolls the call back and runs it again after an
  exponential, jittered backoff (0.05 s doubling up to 5 s);
* when the storage stays unreachable (or locked) for longer than ``RetryPolicy.storage_timeout``
  seconds (``--storage-timeout``),
  the call raises :class:`StorageUnavailable`, a :class:`~sdd_opt.errors.UserError` with a
  clear, password-free message, and every later call of this process fails at once, so the
  worker exits instead of hanging; its running trial is then failed by the heartbeat of the
  other workers and retried;
* anything else (a bad value, a missing study) is raised unchanged at the first attempt.

Only the outermost call of a thread retries (Optuna's methods call each other), and calls are
timed per thread, which is what ``benchmarks/storage_overhead.py`` reports.

What happens to a trial whose worker is gone (re-queueing) is :mod:`sdd_opt.study.storage.requeue`.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sdd_opt.errors import UserError, mask_secrets
from sdd_opt.study._optuna_compat import CREATE_NEW_TRIAL, PRIVATE_RDB_METHODS, cached_backend, trial_id_of

# MySQL / MariaDB error codes (pymysql's OperationalError/InternalError args[0]).
_MYSQL_LOCK = {1213: "deadlock", 1205: "lock timeout"}
_MYSQL_CONNECTION = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1158, 1159, 1160, 1161,  # network read/write errors
    1927,  # connection was killed
    2002, 2003,  # can't connect (socket, TCP)
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection (system error)
    4031,  # disconnected by the server because of inactivity
    1290,  # --read-only (a fail-over in progress)
    1836,  # running in read-only mode
}
# PostgreSQL SQLSTATEs.
_PG_STATES = {"40001": "serialization", "40P01": "deadlock", "55P03": "lock timeout", "53300": "connection",
              "57P01": "connection", "57P02": "connection", "57P03": "connection", "25006": "connection"}


def _chain(exc: BaseException):
    """The exception, its causes/contexts, and the DBAPI errors that SQLAlchemy wraps."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def classify(exc: BaseException) -> Optional[str]:
    """Why ``exc`` is worth retrying ("deadlock", "lock timeout", "serialization", "connection",
    "busy", "pool"), or ``None`` when it is not a transient database error."""
    for e in _chain(exc):
        mod = type(e).__module__ or ""
        name = type(e).__name__
        if mod.startswith("sqlalchemy"):
            if getattr(e, "connection_invalidated", False) or name == "DisconnectionError":
                return "connection"
            if name == "TimeoutError":  # QueuePool limit reached
                return "pool"
            continue
        if mod.startswith("pymysql"):
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            if code in _MYSQL_LOCK:
                return _MYSQL_LOCK[code]
            if code in _MYSQL_CONNECTION or (name == "InterfaceError"):
                return "connection"
            continue
        if mod.startswith("psycopg"):
            state = getattr(e, "sqlstate", None)
            if state in _PG_STATES:
                return _PG_STATES[state]
            if state and state.startswith("08"):
                return "connection"
            if name in ("OperationalError", "InterfaceError") and not state:
                return "connection"  # connection refused / closed unexpectedly / the connection is closed
            continue
        if mod == "sqlite3" and name == "OperationalError":
            msg = str(e).lower()
            if "locked" in msg or "busy" in msg:
                return "busy"
            continue
        if mod.startswith("grpc"):
            code = getattr(e, "code", None)
            try:
                code = code() if callable(code) else None
            except Exception:
                code = None
            if code is not None and code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"):
                return "connection"
    return None


def first_line(exc: BaseException) -> str:
    """A short, password-free description of the DBAPI error behind ``exc``."""
    inner = exc
    for e in _chain(exc):
        mod = type(e).__module__ or ""
        if mod.startswith(("pymysql", "psycopg", "sqlite3", "grpc")):
            inner = e
            break
    if (type(inner).__module__ or "").startswith("grpc") and hasattr(inner, "details"):
        try:
            text = f"{inner.code().name}: {inner.details()}"
        except Exception:
            text = str(inner)
    else:
        text = str(inner)
    lines = text.strip().splitlines() or [type(inner).__name__]
    return mask_secrets(f"{type(inner).__name__}: {lines[0][:200]}")


class StorageUnavailable(UserError):
    """The storage stayed unreachable (or locked) for longer than the storage timeout (``--storage-timeout``)."""


@dataclass
class RetryPolicy:
    storage_timeout: float = 600.0  # seconds a call keeps retrying before the worker gives up (--storage-timeout)
    base: float = 0.05    # first backoff
    cap: float = 5.0      # longest backoff


@dataclass
class StorageStats:
    """Counters of one process's storage calls (outermost calls only)."""

    calls: int = 0
    seconds: float = 0.0
    retries: dict = field(default_factory=dict)
    outages: int = 0
    by_thread: dict = field(default_factory=dict)  # thread ident -> [calls, seconds]

    def snapshot(self) -> dict:
        return {"calls": self.calls, "seconds": self.seconds, "retries": dict(self.retries), "outages": self.outages,
                "by_thread": {k: list(v) for k, v in self.by_thread.items()}}


class Retrier:
    """Runs storage calls with retries (see the module docstring); one per storage object."""

    def __init__(self, policy: RetryPolicy, describe: str, log: Optional[Callable[[str], None]] = None):
        self.policy = policy
        self.describe = mask_secrets(describe)
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.stats = StorageStats()
        self.dead: Optional[str] = None
        self.claimed_trials: list[int] = []  # trials this process created or took from the queue (clean-up)
        self._local = threading.local()
        self._lock = threading.Lock()

    def call(self, name: str, fn: Callable, *args, **kwargs):
        if getattr(self._local, "depth", 0):
            return fn(*args, **kwargs)
        if self.dead:
            raise StorageUnavailable(self.dead)
        self._local.depth = 1
        t0 = time.perf_counter()
        try:
            return self._retry(name, fn, args, kwargs)
        finally:
            self._local.depth = 0
            dt = time.perf_counter() - t0
            with self._lock:
                self.stats.calls += 1
                self.stats.seconds += dt
                entry = self.stats.by_thread.setdefault(threading.get_ident(), [0, 0.0])
                entry[0] += 1
                entry[1] += dt

    def _retry(self, name: str, fn: Callable, args, kwargs):
        from optuna.exceptions import UpdateFinishedTrialError

        attempt, started, kind, announced = 0, 0.0, None, False
        while True:
            try:
                out = fn(*args, **kwargs)
            except UpdateFinishedTrialError:
                # A retried state change whose first attempt did commit before the connection broke.
                if attempt and name == "set_trial_state_values" and self._already_set(args, kwargs):
                    return True
                raise
            except Exception as exc:
                kind = classify(exc)
                if kind is None:
                    raise
                now = time.monotonic()
                started = started or now
                waited = now - started
                if waited >= self.policy.storage_timeout:
                    self.dead = (f"storage {self.describe} unreachable for {waited:.0f}s "
                                 f"({kind}: {first_line(exc)}; gave up after {attempt + 1} attempts of {name}). "
                                 f"This worker stops; its running trial is failed and retried by the other workers "
                                 f"after the heartbeat grace period. Start it again when the database is back.")
                    with self._lock:
                        self.stats.outages += 1
                    raise StorageUnavailable(self.dead) from None
                attempt += 1
                with self._lock:
                    self.stats.retries[kind] = self.stats.retries.get(kind, 0) + 1
                if not announced and (kind in ("connection", "pool") or attempt >= 3):
                    announced = True
                    self.log(f"storage: {kind} in {name} ({first_line(exc)}); retrying for up to "
                             f"{self.policy.storage_timeout:.0f}s")
                delay = min(self.policy.cap, self.policy.base * 2 ** (attempt - 1))
                time.sleep(min(delay * random.uniform(0.5, 1.0), max(0.0, self.policy.storage_timeout - waited) + 0.01))
                continue
            if announced:
                self.log(f"storage: {name} succeeded after {attempt} retries ({time.monotonic() - started:.1f}s)")
            self._note_claim(name, out, args, kwargs)
            return out

    def _note_claim(self, name: str, out, args, kwargs) -> None:
        from optuna.trial import FrozenTrial, TrialState

        tid = None
        if name in ("create_new_trial", CREATE_NEW_TRIAL) and out is not None:
            tid = out if isinstance(out, int) else trial_id_of(out) if isinstance(out, FrozenTrial) else None
        elif name == "set_trial_state_values" and out is True:
            state = kwargs.get("state", args[2] if len(args) > 2 else None)
            if state == TrialState.RUNNING:
                tid = args[1]
        if tid is not None:
            with self._lock:
                self.claimed_trials.append(tid)

    def _already_set(self, args, kwargs) -> bool:
        self_, trial_id, *rest = args
        state = kwargs.get("state", rest[0] if rest else None)
        try:
            return self_.get_trial(trial_id).state == state
        except Exception:
            return False


def install_retries(cls: type, methods: tuple[str, ...]) -> None:
    """Replace ``methods`` of ``cls`` (a storage subclass with a ``_retrier``) by retrying versions."""
    for name in methods:
        original = getattr(cls, name, None)
        if original is None:
            continue

        def make(name=name, original=original):
            def method(self, *args, **kwargs):
                return self._retrier.call(name, original, self, *args, **kwargs)

            method.__name__ = name
            method.__doc__ = original.__doc__
            return method

        setattr(cls, name, make())


# Methods that touch the database (RDBStorage) or the proxy (GrpcStorageProxy); Optuna's cache
# calls some private ones directly, so they are wrapped too (named in the compat module).
RDB_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "get_best_trial", "record_heartbeat", "get_trial_user_attrs", "get_trial_system_attrs",
) + PRIVATE_RDB_METHODS
GRPC_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
)
# A gRPC worker's heartbeat: this trial system attribute is never stored; `storage serve` turns it
# into a heartbeat row of the RDB storage (the database's clock decides what is stale).
HEARTBEAT_KEY = "sdd_opt:heartbeat"


def retrier_of(storage: Any) -> Optional[Retrier]:
    """The :class:`Retrier` behind a study's storage (through Optuna's cache), if any."""
    for obj in (storage, cached_backend(storage)):
        r = getattr(obj, "_retrier", None)
        if isinstance(r, Retrier):
            return r
    return None
