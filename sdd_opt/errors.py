"""User-facing errors, and the masking of passwords in anything printed or stored.

A :class:`UserError` is a mistake the researcher can fix (a bad key, a range, a URL). The CLI
prints it as one line and exits with code 2 -- no traceback -- and it is always raised before
any training starts or anything is written to a study's storage.

Passwords are masked by *parsing* each URL found in a text with SQLAlchemy's ``make_url`` (the
same parser that connects), never by a password pattern: SQLAlchemy accepts ``/``, ``:`` and
spaces inside a password, so only its own parser knows where a password ends.
"""

from __future__ import annotations

import re

EXIT_USAGE = 2

# Where a URL may start: ``scheme://`` (finding candidates only; each one is then parsed).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Punctuation that ends a sentence or a quote around a URL rather than belonging to it.
_TRAILING = ".,;:!?)]}'\"`>"


class UserError(Exception):
    """A mistake in the user's input; shown as ``error: <message>`` and exit code 2."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the trial is failed with this reason."""


def password_is_ambiguous(url: str) -> bool:
    """Whether the password of a server URL holds a raw ``@``, ``/``, ``?`` or ``#``.

    Then parsers disagree on where the password ends (SQLAlchemy reads ``u:p@ss/w0rd@host`` as host
    ``ss``; urllib stops a password at ``/``), so such a URL is refused, never guessed at: the user
    percent-encodes the password or passes it in ``$SDD_OPT_STORAGE_PASSWORD``. Both parsers are
    asked; the URL is ambiguous when they disagree or an ``@`` is left outside the host.
    """
    from urllib.parse import unquote, urlsplit

    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return False  # not a URL SQLAlchemy reads: refused as malformed elsewhere, masked by mask_url
    if parsed.get_backend_name() == "sqlite":
        return False
    if "@" in (parsed.host or "") or "@" in (parsed.database or ""):
        return True
    try:
        split = urlsplit(url)
        userinfo, other_password = split.netloc.rpartition("@")[0], split.password
    except ValueError:
        return parsed.password is not None
    if "@" in userinfo:
        return True
    return parsed.password is not None and unquote(other_password or "") != parsed.password


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, as SQLAlchemy parses it.

    A URL SQLAlchemy cannot parse, or whose password is ambiguous (:func:`password_is_ambiguous`),
    but that holds ``user...@host`` loses everything between ``://`` and its last ``@``: when in
    doubt, hide more.
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = None if password_is_ambiguous(url) else make_url(url)
    except Exception:  # ArgumentError, ValueError (a port that is not a number), ...
        parsed = None
    if parsed is not None and "@" not in (parsed.host or ""):
        if parsed.password is None:
            return url
        return parsed.render_as_string(hide_password=True)
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def url_without_password(url: str) -> str:
    """``url`` with no password at all (not even ``***``): what may be *stored*, e.g. in a study note.

    The password is left to ``$SDD_OPT_STORAGE_PASSWORD`` or the user's own configuration.
    """
    from sqlalchemy.engine import URL, make_url

    try:
        parsed = make_url(url)
    except Exception:
        return mask_url(url)
    if password_is_ambiguous(url):  # refused by resolve_url; keep only what follows the last "@"
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    if parsed.password is None or "@" in (parsed.host or ""):
        return mask_url(url)
    bare = URL.create(parsed.drivername, username=parsed.username, host=parsed.host, port=parsed.port,
                      database=parsed.database, query=parsed.query)  # set(password=None) would keep it
    return bare.render_as_string(hide_password=False)


def _candidate_end(text: str, start: int, after_scheme: int) -> int:
    """End of the URL candidate that starts at ``start``: the next whitespace, or -- when the
    credentials seem to hold a space (a ``:`` but no ``@`` yet) -- the token that holds the ``@``."""
    end = _next_space(text, after_scheme)
    if "@" in text[after_scheme:end] or ":" not in text[after_scheme:end]:
        return end
    limit = len(text)
    for stop in (text.find("\n", after_scheme), _scheme_start(text, after_scheme)):
        if stop != -1:
            limit = min(limit, stop)
    at = text.find("@", end, limit)
    return _next_space(text, at) if at != -1 else end


def _next_space(text: str, pos: int) -> int:
    for i in range(pos, len(text)):
        if text[i].isspace():
            return i
    return len(text)


def _scheme_start(text: str, pos: int) -> int:
    m = _SCHEME.search(text, pos)
    return m.start() if m else -1


def mask_secrets(text: str) -> str:
    """Every URL in ``text`` with its password replaced by ``***`` (see :func:`mask_url`)."""
    text = str(text)
    out, pos = [], 0
    while True:
        m = _SCHEME.search(text, pos)
        if m is None:
            break
        end = _candidate_end(text, m.start(), m.end())
        core = text[m.start():end].rstrip(_TRAILING)
        out.append(text[pos:m.start()])
        out.append(mask_url(core) + text[m.start() + len(core):end])
        pos = end
    out.append(text[pos:])
    return "".join(out)
