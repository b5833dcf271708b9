"""Passwords are masked by parsing each URL (SQLAlchemy's rules), wherever it sits in a text."""

import pytest

from sdd_opt.errors import mask_secrets, mask_url, password_is_ambiguous, url_without_password


@pytest.mark.parametrize("url, masked", [
    ("postgresql+psycopg://user:S3c%2Fret@host/db", "postgresql+psycopg://user:***@host/db"),
    # a raw "/" or "@" in the password: parsers disagree where it ends, so all before the last "@" goes
    ("postgresql+psycopg://user:S3c/ret@host/db", "postgresql+psycopg://***@host/db"),
    ("mysql+pymysql://bob:a:b/c@127.0.0.1:3306/db?charset=utf8", "mysql+pymysql://***@127.0.0.1:3306/db?charset=utf8"),
    ("postgresql+psycopg://postgres:p@ss/w0rd@127.0.0.1:5432/test", "postgresql+psycopg://***@127.0.0.1:5432/test"),
    ("mysql+pymysql://root:p@ss@127.0.0.1:3306/test", "mysql+pymysql://***@127.0.0.1:3306/test"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:my pass@h/db", "postgresql://u:***@h/db"),
    ("sqlite:///runs/a@b.db", "sqlite:///runs/a@b.db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("sqlite:///storage/sdd_opt.db", "sqlite:///storage/sdd_opt.db"),
    ("mysql://bob:p@ss:w/rd@h:3306/db", "mysql://***@h:3306/db"),  # unparseable: hide all before the last @
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_mask_secrets_in_free_text():
    text = ("--storage postgresql+psycopg://user:S3c/ret@host/db: cannot open storage; "
            "tried 'mysql+pymysql://bob:hunter2@127.0.0.1:1/db', then postgresql://u:my pass@h/db.\n"
            "see https://optuna.org/ and sqlite:///a.db")
    masked = mask_secrets(text)
    for secret in ("S3c", "ret@", "hunter2", "my pass"):
        assert secret not in masked
    assert masked == ("--storage postgresql+psycopg://***@host/db: cannot open storage; "
                      "tried 'mysql+pymysql://bob:***@127.0.0.1:1/db', then postgresql://u:***@h/db.\n"
                      "see https://optuna.org/ and sqlite:///a.db")


def test_text_without_urls_is_unchanged():
    text = "train.lr: Input should be a finite number (got inf); user:pw@host is not a URL"
    assert mask_secrets(text) == text


def test_url_without_password_stores_none_of_it():
    assert url_without_password("postgresql+psycopg://user:S3c%2Fret@host/db") == "postgresql+psycopg://user@host/db"
    bare = url_without_password("postgresql+psycopg://u:p@ss/w0rd@127.0.0.1:5432/t")
    assert bare == "postgresql+psycopg://127.0.0.1:5432/t"
    assert url_without_password("sqlite:///storage/sdd_opt.db") == "sqlite:///storage/sdd_opt.db"
    assert "p@ss" not in url_without_password("mysql://bob:p@ss:w/rd@h:3306/db")


@pytest.mark.parametrize("url, ambiguous", [
    ("postgresql+psycopg://postgres:p@ss/w0rd@127.0.0.1:5432/test", True),
    ("mysql+pymysql://root:p@ss/w0rd@127.0.0.1:3306/test", True),
    ("postgresql://u:p@ss@h/db", True),
    ("postgresql://u:p/w@h/db", True),
    ("postgresql://u:p#w@h/db", True),
    ("postgresql://u:p%40ss%2Fw0rd@h/db", False),
    ("postgresql://u:my pass@h/db", False),
    ("postgresql://u@h/db?x=a/b@c", False),
    ("sqlite:///runs/a@b.db", False),
])
def test_password_is_ambiguous(url, ambiguous):
    assert password_is_ambiguous(url) is ambiguous
