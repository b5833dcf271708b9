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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sdd_opt.errors import UserError, mask_secrets

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
    url = url or os.environ.get(ENV_URL) or DEFAULT_URL
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
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
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
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = 120
    max_retry: Optional[int] = 3
    pool_size: int = 5


def _engine_kwargs(url: str, settings: StorageSettings) -> dict:
    if is_sqlite(url):
        return {"connect_args": {"timeout": 120}}
    return {"pool_pre_ping": True, "pool_size": settings.pool_size, "max_overflow": settings.pool_size,
            "pool_recycle": 1800, "pool_timeout": 60}


def _enable_wal(storage) -> None:
    from sqlalchemy import event, text

    with storage.engine.connect() as conn:
        conn.execute(text("PRAGMA journal_mode=WAL"))
        conn.commit()

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn, _record):  # every new connection: wait, don't fail, on a lock
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=120000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def open_storage(url: Optional[str] = None, settings: Optional[StorageSettings] = None):
    """Connect to the study storage; an unreachable or malformed URL is a one-line UserError."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    settings = settings or StorageSettings()
    url = resolve_url(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("grpc://"):
        from optuna.storages import GrpcStorageProxy

        host, _, port = url[len("grpc://"):].rpartition(":")
        return GrpcStorageProxy(host=host, port=int(port))
    callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry) \
        if settings.heartbeat_interval else None
    try:
        storage = optuna.storages.RDBStorage(
            url,
            engine_kwargs=_engine_kwargs(url, settings),
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            heartbeat_stale_trial_callback=callback,
        )
    except (SQLAlchemyError, ModuleNotFoundError, ImportError, OSError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise UserError(f"--storage {masked(url)}: cannot open storage ({type(exc).__name__}: {masked(first)})") from None
    if is_sqlite(url):
        _enable_wal(storage)
    return storage


def artifact_store(path: Path):
    from optuna.artifacts import FileSystemArtifactStore

    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base_path=str(path))


def resolve_artifacts(url: str, artifacts: Optional[str] = None) -> Path:
    value = artifacts or os.environ.get(ENV_ARTIFACTS)
    return Path(value).resolve() if value else default_home(url) / "artifacts"


def runs_dir(artifacts_dir: Path) -> Path:
    return artifacts_dir / "runs"
