"""Where a command may write: one-line errors for an output path, checked before any work starts.

``--out`` under a regular file, in a missing or unwritable place, or naming a directory where a
file is expected fails here -- before training, drawing or exporting -- instead of as a traceback
halfway through. Writability is probed by creating and removing a temporary directory, because
permission bits say nothing for root or a read-only mount; the probe leaves the listing unchanged.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from sdd_opt.errors import UserError


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _probe(flag: str, target: Path, where: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".sdd-opt-probe-", dir=where))
    except OSError as exc:
        raise UserError(f"{flag} {target}: cannot write in {where} ({exc.strerror or type(exc).__name__})") from None


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """``path`` can be (or already is) a directory this process can write into."""
    path = Path(path)
    base = _first_existing(path)
    if not base.is_dir():
        what = "is a file" if base == path else f"{base} is a file"
        raise UserError(f"{flag} {path}: {what}, not a directory")
    _probe(flag, path, base)
    return path


def check_output_file(path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` can be written as a file: not a directory, its folder creatable and writable.

    ``suffixes``: the accepted file types (lower case, with the dot), when the writer needs one.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {path}: unsupported file type {path.suffix or '(none)'!r}; use one of "
                        f"{', '.join(suffixes)}")
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, not a directory")
    _probe(flag, path, base)
    return path


# A study name becomes part of file names (``NAME-report.html``, exports): letters, digits, '.', '_'
# and '-', starting with a letter or digit, so no name can climb out of a folder or hide a file.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_study_name(name: str, flag: str = "name") -> str:
    """Refuse a new study name outside the safe set (names already stored stay readable)."""
    if not _SAFE_NAME.fullmatch(name or ""):
        raise UserError(f"{flag} {name!r}: a study name is 1-128 letters, digits, '.', '_' or '-', starting with a "
                        "letter or digit (no '/', spaces or '..' paths)")
    return name


def safe_stem(name: str) -> str:
    """A file name made from ``name`` that stays in its folder (for names stored before the rule)."""
    if _SAFE_NAME.fullmatch(name):
        return name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._") or "study"
