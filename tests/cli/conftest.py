"""The CLI tests write the same tiny study files as ``tests/study/``."""

from study.conftest import sqlite_url, study_file  # noqa: F401  (fixtures)
