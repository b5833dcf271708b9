"""The SQLite check before Optuna opens a file: refuses what it must not touch, and writes nothing itself."""

import sqlite3

import pytest

from sdd_opt.errors import UserError
from sdd_opt.study.storage.dbcheck import check_sqlite_file


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_another_programs_database_is_refused_and_left_byte_identical(tmp_path):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for must_exist in (True, False):
        with pytest.raises(UserError, match="another program's SQLite database"):
            check_sqlite_file(f"sqlite:///{db}", must_exist=must_exist)
    assert db.read_bytes() == before and _names(tmp_path) == ["app.db"]


def test_an_optuna_database_in_wal_mode_passes_without_a_trace(tmp_path):
    import optuna

    db = tmp_path / "s.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    optuna.create_study(storage=storage, study_name="x")
    storage.engine.dispose()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    before = (db.read_bytes(), _names(tmp_path))
    check_sqlite_file(f"sqlite:///{db}", must_exist=True)
    assert (db.read_bytes(), _names(tmp_path)) == before


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_text("not a database at all"), "is not a SQLite database"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: None, "no such database file"),
])
def test_read_only_commands_need_an_optuna_file(tmp_path, make, needle):
    db = tmp_path / "s.db"
    make(db)
    with pytest.raises(UserError, match=needle):
        check_sqlite_file(f"sqlite:///{db}", must_exist=True)


def test_a_new_or_empty_file_is_fine_to_create_a_study_in(tmp_path):
    check_sqlite_file(f"sqlite:///{tmp_path / 'new/s.db'}", must_exist=False)
    (tmp_path / "e.db").write_bytes(b"")
    check_sqlite_file(f"sqlite:///{tmp_path / 'e.db'}", must_exist=False)
    assert _names(tmp_path) == ["e.db"]


def test_the_check_keeps_the_locks_of_this_processs_other_connections(tmp_path):
    """A raw open()/close() of the file would drop them (POSIX), letting another process write under a reader."""
    import subprocess
    import sys

    db = tmp_path / "studies.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for table in ("studies", "trials", "version_info"):
        conn.execute(f"CREATE TABLE {table} (id INTEGER)")
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM trials").fetchall()  # a read transaction: holds a SHARED lock
    check_sqlite_file(f"sqlite:///{db}", must_exist=True)
    writer = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
              "try:\n    c.execute('BEGIN EXCLUSIVE')\nexcept sqlite3.OperationalError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", writer, str(db)], capture_output=True, text=True, timeout=60).stdout
    conn.rollback()
    conn.close()
    assert "locked" in out, "another process got an exclusive lock while this one was reading"
