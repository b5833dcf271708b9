"""Ctrl-C and SIGTERM in a worker: both interrupt the running trial, which is then recorded and re-queued.

SIGTERM (what schedulers send) is turned into a :class:`KeyboardInterrupt`, and further signals
are ignored while the interrupted trial is being written, so the record is never half done.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the running trial is failed with its reason, then we exit."""


@contextmanager
def sigterm_as_interrupt():
    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    # A worker started in the background by a non-interactive shell inherits SIGINT as *ignored*
    # (and Python then installs no KeyboardInterrupt handler): Ctrl-C / kill -INT must still stop it.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)


@contextmanager
def signals_deferred():
    """Ignore further Ctrl-C / SIGTERM while an interrupted trial is being recorded."""
    try:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
