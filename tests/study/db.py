"""Helpers for tests against the real local database servers.

URLs: ``$SDD_OPT_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
and ``$SDD_OPT_TEST_MYSQL_URL`` (default ``mysql+pymysql://root@127.0.0.1:3306/test``). A server
that does not answer within two seconds skips its tests with the reason. Studies get unique
names and are deleted afterwards, because CI reuses the servers.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Optional

import pytest

SERVERS = {
    "postgresql": os.environ.get("SDD_OPT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("SDD_OPT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
_REASONS: dict[str, Optional[str]] = {}


def unreachable(url: str) -> Optional[str]:
    """Why the server of ``url`` cannot be used (``None`` when it can)."""
    if url in _REASONS:
        return _REASONS[url]
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    reason = None
    try:
        with socket.create_connection((u.host or "127.0.0.1", u.port or (5432 if "postgres" in url else 3306)), 2):
            pass
        args = {"connect_timeout": 2}
        engine = create_engine(url, connect_args=args)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except ModuleNotFoundError as exc:
        reason = f"driver {exc.name} is not installed (pip install -e '.[dev]')"
    except Exception as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:160]
        reason = f"{u.get_backend_name()} server not reachable at {u.host}:{u.port} ({first}); start it or set " \
                 f"SDD_OPT_TEST_{'POSTGRES' if 'postgres' in url else 'MYSQL'}_URL"
    _REASONS[url] = reason
    return reason


def server_url(kind: str) -> str:
    """The URL of the ``kind`` server, or skip the test with the reason."""
    url = SERVERS[kind]
    reason = unreachable(url)
    if reason:
        pytest.skip(reason)
    return url


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_studies(url: str, *names: str) -> None:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        for name in names:
            try:
                optuna.delete_study(study_name=name, storage=storage)
            except KeyError:
                pass
    finally:
        storage.engine.dispose()


@pytest.fixture(params=["postgresql", "mysql"])
def db_url(request):
    """Each real server in turn (skipped when not running)."""
    return server_url(request.param)


@contextmanager
def tracked_studies(url: str):
    """Yield a list to append study names to; they are deleted at the end."""
    names: list[str] = []
    try:
        yield names
    finally:
        delete_studies(url, *names)


@contextmanager
def tracked_study(url: str):
    """Yield one unique study name; the study is deleted at the end."""
    with tracked_studies(url) as names:
        names.append(unique_name())
        yield names[0]


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 in front of a database: stop it to cut every connection
    (what a server restart or a network outage looks like to a worker), start it again to recover."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: Optional[socket.socket] = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.2)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()
        return self

    def _accept(self, srv: socket.socket) -> None:
        while self._server is srv:
            try:
                client, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(None)
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            srv.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def url_for(self, url: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
