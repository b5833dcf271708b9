"""optuna-dashboard on a study storage, with the artifact store attached.

Binds to 127.0.0.1 unless told otherwise. The dashboard only reads: it opens the storage without
heartbeats and, on SQLite, through the same WAL + busy-timeout settings as the workers, so its
polling never makes a worker fail with "database is locked".
"""

from __future__ import annotations

from typing import Callable, Optional


def make_app(storage_url: Optional[str], artifacts: Optional[str]):
    """The dashboard's WSGI app (used by ``serve`` and by tests on a free port)."""
    from optuna_dashboard import wsgi

    from sdd_opt.study.storage import StorageSettings, artifact_store, open_storage, resolve_artifacts, resolve_url

    url = resolve_url(storage_url)
    storage = open_storage(url, StorageSettings(heartbeat_interval=None, grace_period=None, max_retry=None))
    store = artifact_store(resolve_artifacts(url, artifacts))
    return wsgi(storage, artifact_store=store), url


def serve(storage_url: Optional[str], artifacts: Optional[str], host: str = "127.0.0.1", port: int = 8080,
          log: Callable[[str], None] = print) -> None:
    from wsgiref.simple_server import make_server

    from sdd_opt.errors import UserError
    from sdd_opt.study.storage import masked

    app, url = make_app(storage_url, artifacts)
    try:
        httpd = make_server(host, port, app)
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    log(f"optuna-dashboard for {masked(url)} at http://{host}:{port}/  (Ctrl-C to stop)")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        log("dashboard stopped")
