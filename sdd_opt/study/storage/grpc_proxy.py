"""``sdd-opt storage serve``: Optuna's gRPC storage proxy in front of a server database.

With hundreds of workers, each holding a pool of database connections, the database's
``max_connections`` becomes the limit. The proxy holds one small pool (its thread pool plus one)
and the workers talk gRPC to it (``--storage grpc://HOST:PORT``).

Optuna's proxy knows nothing of heartbeats, so this server adds them: a worker's heartbeat
arrives as a reserved trial system attribute (:data:`~sdd_opt.study.storage.faults.HEARTBEAT_KEY`) that
is recorded as a real heartbeat row, with the database's clock; and a reaper thread fails the
stale trials of every study every heartbeat interval and re-queues them, exactly like a worker
connected directly. Workers connected directly and through the proxy can be mixed.

The proxy speaks plain (insecure) gRPC without authentication: it binds to 127.0.0.1 unless
``--host`` says otherwise; open it only on a trusted cluster network (or through an SSH tunnel).
"""

from __future__ import annotations

import signal
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from sdd_opt.errors import UserError


def serve_storage(storage_url: Optional[str], host: str = "127.0.0.1", port: int = 13000, *, threads: int = 8,
                  heartbeat_interval: int = 60, grace_period: int = 120, storage_timeout: float = 600.0,
                  log: Callable[[str], None] = print, ready: Optional[threading.Event] = None,
                  stop: Optional[threading.Event] = None) -> None:
    """Serve the storage until Ctrl-C / SIGTERM (or ``stop`` is set)."""
    try:
        import grpc  # noqa: F401

        from sdd_opt.study._optuna_compat import make_grpc_server
    except ImportError:
        raise UserError("storage serve needs grpcio and protobuf (pip install 'sdd-opt[grpc]')") from None
    import optuna

    from sdd_opt.study._optuna_compat import cached_backend, cached_storage_class
    from sdd_opt.study.storage import StorageSettings, masked, open_storage, resolve_url
    from sdd_opt.study.storage.faults import HEARTBEAT_KEY

    url = resolve_url(storage_url)
    if url.startswith("grpc://"):
        raise UserError("--storage: give the database URL to serve, not another proxy")
    rdb = open_storage(url, StorageSettings(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                            threads=threads + 1, storage_timeout=storage_timeout, log=log))

    class ServedStorage(cached_storage_class()):
        def set_trial_system_attr(self, trial_id, key, value):
            if key == HEARTBEAT_KEY:
                cached_backend(self).record_heartbeat(trial_id)
                return
            super().set_trial_system_attr(trial_id, key, value)

    storage = ServedStorage(rdb)
    try:
        server = make_grpc_server(storage, host, port, ThreadPoolExecutor(max_workers=threads))
        server.start()
    except RuntimeError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc})") from None
    stop = stop or threading.Event()

    def reap() -> None:
        while not stop.wait(heartbeat_interval):
            try:
                for s in storage.get_all_studies():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        optuna.storages.fail_stale_trials(optuna.Study(study_name=s.study_name, storage=storage))
            except Exception as exc:  # keep serving; the next round tries again
                log(f"warning: stale-trial check failed ({type(exc).__name__}: {exc})")

    reaper = threading.Thread(target=reap, name="stale-trial-reaper", daemon=True)
    reaper.start()
    log(f"storage proxy for {masked(url)} listening on grpc://{host}:{port} ({threads} threads; "
        f"heartbeat {heartbeat_interval}s, grace {grace_period}s). Workers: --storage grpc://{host}:{port}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log("note: the proxy has no authentication; expose it only on a trusted network")
    if ready is not None:
        ready.set()

    def on_term(signum, frame):
        stop.set()

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (tests)
        old = None
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop(grace=5).wait()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        log("storage proxy stopped")
