"""Where studies live: storage URLs, the RDB storage, the artifact store and run directories.

* URL: ``--storage``, else ``$SDD_OPT_STORAGE``, else ``sqlite:///storage/sdd_opt.db``. Any
  SQLAlchemy URL works (``postgresql+psycopg://``, ``mysql+pymysql://``). A password may come
  from ``$SDD_OPT_STORAGE_PASSWORD`` instead of the command line. Passwords are masked in every
  message (:func:`masked`).
* SQLite gets WAL journaling and a long busy timeout, so several local processes (workers, the
  dashboard) can share one file; for several machines use a server database.
* Artifacts (curve CSV/PNG per trial) go to an Optuna ``FileSystemArtifactStore``; the trials'
  run directories (level checkpoints) sit beside it under ``runs/<config hash>``, so a retried
  trial -- or any trial with an identical config -- resumes from the last finished level.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from sdd_opt.errors import UserError, mask_secrets, password_is_ambiguous

DEFAULT_URL = "sqlite:///storage/sdd_opt.db"
ENV_URL = "SDD_OPT_STORAGE"
ENV_PASSWORD = "SDD_OPT_STORAGE_PASSWORD"
ENV_ARTIFACTS = "SDD_OPT_ARTIFACTS"
_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb")


def masked(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to print)."""
    return mask_secrets(url)


def resolve_url(url: Optional[str] = None) -> str:
    """Pick the storage URL (flag, environment, default) and check its form without connecting."""
    flag = "--storage" if url else f"${ENV_URL}"
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
    if password_is_ambiguous(url):  # no part of the URL is printed: where its password ends is unknown
        raise UserError(f"{flag}: the password holds a raw '@', '/', '?' or '#'; percent-encode it (@ as %40, "
                        f"/ as %2F) or leave it out of the URL and set ${ENV_PASSWORD}")
    if url.startswith("grpc://"):
        host, _, port = url[len("grpc://"):].rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--storage {masked(url)}: expected grpc://HOST:PORT")
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise UserError(f"--storage {masked(url)}: malformed storage URL ({str(exc).splitlines()[0][:120]})") from None
    backend = parsed.get_backend_name()
    if backend not in _SCHEMES:
        raise UserError(f"--storage {masked(url)}: unsupported database {backend!r}; use sqlite, postgresql or mysql")
    if backend != "sqlite" and parsed.password is None and os.environ.get(ENV_PASSWORD):
        parsed = parsed.set(password=os.environ[ENV_PASSWORD])
        url = parsed.render_as_string(hide_password=False)
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def default_home(url: str) -> Path:
    """Artifacts and runs sit beside a SQLite file; for servers, under ./storage."""
    if is_sqlite(url):
        from sqlalchemy.engine import make_url

        db = make_url(url).database
        if db and db != ":memory:":
            return Path(db).expanduser().resolve().parent
    return Path("storage").resolve()


@dataclass
class StorageSettings:
    """How a process talks to the storage.

    ``threads``: threads of this process that use the storage at once (1 for a worker's trial
    loop, the thread pool of ``storage serve``); the connection pool is sized from it, plus one
    connection for the heartbeat thread. ``storage_timeout`` (``--storage-timeout``): seconds a storage
    call keeps retrying a
    lost connection or a lock before the process gives up with a clear message.
    ``lock_timeout``: seconds a statement waits for a row lock before it is retried (MySQL's
    ``innodb_lock_wait_timeout``, PostgreSQL's ``lock_timeout``). ``must_exist``: the command only
    reads stored studies (list, status, pareto, export, report, dashboard) or joins one (worker), so a
    SQLite file must already exist and be an Optuna database; nothing is created.
    """

    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = 120
    max_retry: Optional[int] = 3
    threads: int = 1
    storage_timeout: float = 600.0
    lock_timeout: float = 30.0
    connect_timeout: int = 10
    log: Optional[Callable[[str], None]] = None
    must_exist: bool = False  # a command that reads a stored study: create no SQLite file (dbcheck)

    @property
    def pool_size(self) -> int:
        return self.threads + 1


def _engine_kwargs(url: str, settings: StorageSettings) -> dict:
    if is_sqlite(url):
        return {"connect_args": {"timeout": 120}}
    kw = {"pool_pre_ping": True, "pool_size": settings.pool_size, "max_overflow": settings.pool_size,
          "pool_recycle": 1800, "pool_timeout": 30}
    lock_ms = int(settings.lock_timeout * 1000)
    if url.startswith(("mysql", "mariadb")):
        # READ COMMITTED takes no gap locks: far fewer deadlocks between workers inserting attributes.
        kw["isolation_level"] = "READ COMMITTED"
        kw["connect_args"] = {"connect_timeout": settings.connect_timeout, "read_timeout": 120, "write_timeout": 120,
                              "init_command": f"SET SESSION innodb_lock_wait_timeout={max(1, lock_ms // 1000)}"}
    elif url.startswith("postgresql"):
        kw["connect_args"] = {"connect_timeout": settings.connect_timeout, "application_name": "sdd-opt",
                              "keepalives": 1, "keepalives_idle": 30,
                              "keepalives_interval": 10, "keepalives_count": 3,
                              "options": f"-c lock_timeout={lock_ms}"}
    return kw


def _set_wal(url: str) -> None:
    """Switch the SQLite file to WAL before any pooled connection opens it (a connection opened
    earlier keeps its old journal mode, and inside a transaction the pragma is ignored)."""
    import sqlite3

    from sqlalchemy.engine import make_url

    db = make_url(url).database
    if not db or db == ":memory:":
        return
    conn = sqlite3.connect(str(Path(db).expanduser()), timeout=120)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _prepare_sqlite(url: str, must_exist: bool) -> None:
    """Refuse what must not be opened (``sdd_opt.study.storage.dbcheck``), then make the folder and switch to WAL.

    Nothing is written before the checks pass: a missing file for a read-only command, a directory,
    a file that is not SQLite or another program's database are one-line errors.
    """
    import sqlite3

    from sdd_opt.study.storage.dbcheck import check_sqlite_file, sqlite_path

    check_sqlite_file(url, must_exist=must_exist)
    check_sqlite_location(url)
    path = sqlite_path(url)
    if path is not None and not must_exist:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _set_wal(url)
    except sqlite3.Error as exc:
        raise UserError(f"--storage {masked(url)}: cannot open the SQLite file ({exc})") from None


def _enable_wal(storage) -> None:
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn, _record):  # every new connection: wait, don't fail, on a lock
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=120000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()  # reopen the pool's connections with the pragmas


_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
               "fuse.sshfs", "fuse.glusterfs", "9p", "afs", "fuse.gcsfuse", "fuse.s3fs")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" when unknown)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return ""
    path = path.resolve()
    best, fstype = "", ""
    for fields in mounts:
        if len(fields) < 3:
            continue
        mnt = fields[1].replace("\\040", " ")
        if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, fields[2]
    return fstype


def check_sqlite_location(url: str) -> None:
    """SQLite is for processes on ONE machine: refuse a database file on a network filesystem."""
    from sqlalchemy.engine import make_url

    db = make_url(url).database
    if not db or db == ":memory:":
        return
    fstype = filesystem_type(Path(db).expanduser().parent)
    if fstype in _NETWORK_FS or fstype.startswith("nfs"):
        raise UserError(
            f"--storage {masked(url)}: the SQLite file is on a network filesystem ({fstype}), where its locks do not "
            f"work and workers on several machines corrupt it; use a server database for several machines, e.g. "
            f"--storage postgresql+psycopg://USER@HOST/DB (see docs/distributed.md)")


def _rdb_class():
    """``optuna.storages.RDBStorage`` with every database call retried (see ``faults``)."""
    global _RDB_CLASS
    if _RDB_CLASS is not None:
        return _RDB_CLASS
    import optuna
    from optuna.storages import RDBStorage

    from sdd_opt.study._optuna_compat import STALE_TRIAL_IDS, base_stale_trial_ids, override_stale_trial_ids
    from sdd_opt.study.record import failure_attrs
    from sdd_opt.study.storage.faults import RDB_METHODS, StorageUnavailable, install_retries
    from sdd_opt.study.storage.requeue import STALE_REASON

    class ResilientRDBStorage(RDBStorage):
        _retrier = None  # set right after __init__

        def record_heartbeat(self, trial_id: int) -> None:
            # Runs in Optuna's heartbeat thread: never let it die with a traceback. If the storage is
            # gone for good, the main thread stops at its next storage call.
            try:
                self._retrier.call("record_heartbeat", RDBStorage.record_heartbeat, self, trial_id)
            except StorageUnavailable:
                pass

        def stale_trial_ids(self, study_id: int) -> list[int]:
            """RDBStorage's stale-trial query, retried, and each stale trial told why it fails."""
            ids = self._retrier.call(STALE_TRIAL_IDS, lambda s, sid: base_stale_trial_ids(RDBStorage, s, sid),
                                     self, study_id)
            grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
            for trial_id in ids:  # say why, while the trial can still be updated
                try:
                    for key, value in failure_attrs(STALE_REASON.format(grace=grace)).items():
                        self.set_trial_user_attr(trial_id, key, value)
                except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
                    pass
            return ids

    override_stale_trial_ids(ResilientRDBStorage, ResilientRDBStorage.stale_trial_ids)
    install_retries(ResilientRDBStorage,
                    tuple(m for m in RDB_METHODS if m not in ("record_heartbeat", STALE_TRIAL_IDS)))
    _RDB_CLASS = ResilientRDBStorage
    return _RDB_CLASS


_RDB_CLASS = None


def _grpc_class():
    """Optuna's ``GrpcStorageProxy`` with retries and heartbeats (recorded by ``storage serve``)."""
    global _GRPC_CLASS
    if _GRPC_CLASS is not None:
        return _GRPC_CLASS
    from optuna.storages import GrpcStorageProxy

    from sdd_opt.study._optuna_compat import base_heartbeat_class, override_stale_trial_ids
    from sdd_opt.study.storage.faults import GRPC_METHODS, HEARTBEAT_KEY, StorageUnavailable, install_retries

    class HeartbeatGrpcProxy(GrpcStorageProxy, base_heartbeat_class()):
        """A worker's end of ``sdd-opt storage serve``.

        Heartbeats travel as a reserved trial system attribute that the server turns into a real
        RDB heartbeat; the server also fails stale trials, so the stale-trial query is empty here.
        """

        _retrier = None
        heartbeat_interval: Optional[int] = None

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self._retrier.call("record_heartbeat", GrpcStorageProxy.set_trial_system_attr, self, trial_id,
                                   HEARTBEAT_KEY, True)
            except StorageUnavailable:
                pass
            except Exception:  # the trial finished meanwhile
                pass

        def stale_trial_ids(self, study_id: int) -> list[int]:
            return []

        def get_heartbeat_interval(self) -> Optional[int]:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self):
            return None

        def remove_session(self) -> None:
            pass

    override_stale_trial_ids(HeartbeatGrpcProxy, HeartbeatGrpcProxy.stale_trial_ids)
    install_retries(HeartbeatGrpcProxy, GRPC_METHODS)
    _GRPC_CLASS = HeartbeatGrpcProxy
    return _GRPC_CLASS


_GRPC_CLASS = None


def _open_grpc(url: str, settings: StorageSettings):
    from sdd_opt.study.storage.faults import Retrier, RetryPolicy

    try:
        cls = _grpc_class()
    except ImportError:
        raise UserError(f"--storage {url}: the gRPC storage proxy needs grpcio and protobuf "
                        f"(pip install 'sdd-opt[grpc]')") from None
    host, _, port = url[len("grpc://"):].rpartition(":")
    proxy = cls(host=host, port=int(port))
    proxy._retrier = Retrier(RetryPolicy(storage_timeout=settings.storage_timeout), url, settings.log)
    proxy.heartbeat_interval = settings.heartbeat_interval
    try:
        proxy.wait_server_ready(timeout=settings.connect_timeout)
    except ConnectionError:
        raise UserError(f"--storage {url}: no storage proxy answers there (start one with "
                        f"'sdd-opt storage serve --storage URL --port {port}')") from None
    return proxy


def open_storage(url: Optional[str] = None, settings: Optional[StorageSettings] = None):
    """Connect to the study storage; an unreachable or malformed URL is a one-line UserError.

    Returns an RDB storage whose calls retry transient database errors (``faults``), or, for
    ``grpc://HOST:PORT``, a client of ``sdd-opt storage serve`` with the same retries.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from sdd_opt.study.storage.faults import Retrier, RetryPolicy, classify
    from sdd_opt.study.storage.requeue import RequeueStaleTrial

    settings = settings or StorageSettings()
    url = resolve_url(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("grpc://"):
        return _open_grpc(url, settings)
    if is_sqlite(url):
        _prepare_sqlite(url, settings.must_exist)
    callback = RequeueStaleTrial(settings.max_retry, settings.grace_period or 2 * (settings.heartbeat_interval or 0)) \
        if settings.heartbeat_interval else None
    cls = _rdb_class()
    for attempt in range(6):
        try:
            storage = cls(
                url,
                engine_kwargs=_engine_kwargs(url, settings),
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                heartbeat_stale_trial_callback=callback,
            )
            break
        except (SQLAlchemyError, ModuleNotFoundError, ImportError, OSError) as exc:
            # Many workers starting at once race on CREATE TABLE or hit a lock: try again. A server
            # that refuses the connection is a mistake in the URL (or a server down): say so now.
            kind = classify(exc)
            racing = kind in ("deadlock", "lock timeout", "serialization", "busy", "pool") or (
                isinstance(exc, SQLAlchemyError)
                and any(w in str(exc).lower() for w in ("already exists", "duplicate")))
            if racing and attempt < 5:
                time.sleep(0.2 * 2 ** attempt)
                continue
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
            raise UserError(f"--storage {masked(url)}: cannot open storage "
                            f"({type(exc).__name__}: {masked(first)})") from None
    storage._retrier = Retrier(RetryPolicy(storage_timeout=settings.storage_timeout), url, settings.log)
    if is_sqlite(url):
        _enable_wal(storage)
    return storage


def artifact_store(path: Path):
    from optuna.artifacts import FileSystemArtifactStore

    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base_path=str(path))


def resolve_artifacts(url: str, artifacts: Optional[str] = None) -> Path:
    """The local artifacts directory (run directories, teachers); for an ``s3://`` or ``gs://`` store
    (``artifact_stores``), the default one on this machine."""
    value = artifacts or os.environ.get(ENV_ARTIFACTS)
    if value and value.startswith(("s3://", "gs://")):
        value = None
    return Path(value).resolve() if value else default_home(url) / "artifacts"


def runs_dir(artifacts_dir: Path) -> Path:
    return artifacts_dir / "runs"
