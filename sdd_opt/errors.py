"""User-facing errors.

A :class:`UserError` is a mistake the researcher can fix (a bad key, a range, a URL). The CLI
prints it as one line and exits with code 2 -- no traceback -- and it is always raised before
any training starts or anything is written to a study's storage.
"""

from __future__ import annotations

import re

EXIT_USAGE = 2

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")


class UserError(Exception):
    """A mistake in the user's input; shown as ``error: <message>`` and exit code 2."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; the trial is failed with this reason."""


def mask_secrets(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` URL in ``text`` by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
