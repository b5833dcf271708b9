"""What a SQLite storage URL points at, checked without writing a byte.

Opening a file with Optuna's RDB storage creates it (and its folder) if it is missing, adds
Optuna's tables to any SQLite database and switches it to WAL journaling -- right for ``study
create``, wrong for ``study list`` with a typo in the path or for another program's database.
So before any connection is made:

* read-only commands (list, status, pareto, export, report, dashboard) need an existing file that
  is an Optuna database;
* every command refuses a directory, a file that is not SQLite, and another program's SQLite
  database (one with tables, none of them Optuna's), which is left byte-identical.

The file is read through a read-only connection (``mode=ro``; ``immutable`` when no ``-wal`` file
shows a writer), so the check itself creates no journal, no ``-shm`` and no ``-wal``. The file is
never opened outside SQLite (no header read with ``open()``): closing any descriptor of a file
drops every POSIX lock this process holds on it, so a raw read while another connection of the
same process uses the database lets a second process write under it -- the corruption of
https://www.sqlite.org/howtocorrupt.html section 2.2 (seen as "database disk image is malformed"
in a dashboard that had checked the file it then served). SQLite's own connections share those
locks per file and are safe.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Optional

from sdd_opt.errors import UserError, mask_secrets

OPTUNA_TABLES = {"studies", "trials", "version_info"}


def sqlite_path(url: str) -> Optional[Path]:
    """The file behind a ``sqlite:///`` URL (None for in-memory or non-SQLite URLs)."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    db = make_url(url).database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).expanduser()


def sqlite_tables(path: Path) -> set[str]:
    """Names of the tables in the SQLite file ``path``, read without writing anything."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if not os.path.exists(f"{path}-wal"):
        uri += "&immutable=1"  # no writer: read the file as it is, touching nothing beside it
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


def check_sqlite_file(url: str, *, must_exist: bool) -> None:
    """Refuse what Optuna must not open at ``url`` (see the module docstring).

    ``must_exist``: a read-only command -- the file must exist and hold Optuna's tables.
    """
    path = sqlite_path(url)
    if path is None:
        return
    flag = f"--storage {mask_secrets(url)}"
    if not os.path.lexists(path):
        if must_exist:
            raise UserError(f"{flag}: no such database file {path} (a study is created by 'sdd-opt study create' "
                            "or 'sdd-opt study run'; check the path)")
        return
    if path.is_dir():
        raise UserError(f"{flag}: {path} is a directory, not a SQLite database file")
    if path.stat().st_size == 0:
        if must_exist:
            raise UserError(f"{flag}: {path} is an empty file, not an Optuna database")
        return  # SQLite makes an empty file a new database: fine to create a study in
    if not os.access(path, os.R_OK):
        raise UserError(f"{flag}: cannot read {path} (permission denied)")
    try:
        tables = sqlite_tables(path)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise UserError(f"{flag}: {path} is not a SQLite database") from None
        raise UserError(f"{flag}: {path} is not a readable SQLite database ({exc})") from None
    if tables and not OPTUNA_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise UserError(f"{flag}: {path} is another program's SQLite database (tables: {shown}), not an Optuna "
                        "one; sdd-opt leaves it untouched -- give another file")
    if not tables and must_exist:
        raise UserError(f"{flag}: {path} holds no Optuna studies (an empty SQLite database)")
