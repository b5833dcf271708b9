"""Ctrl-C and SIGTERM in a worker: both interrupt the running trial, which is then recorded and re-queued.

SIGTERM (what schedulers send) is turned into a :class:`KeyboardInterrupt`, and further signals
are ignored while the interrupted trial is being written, so the record is never half done.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the running trial (or level) stops, then we exit 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def interrupt_reason(exc: BaseException) -> str:
    """What a trial stopped by ``exc`` records as its ``fail_reason``."""
    return f"interrupted ({'SIGTERM' if isinstance(exc, Terminated) else 'Ctrl-C'})"


@contextmanager
def sigterm_as_interrupt():
    """While inside, SIGTERM (``kill``, a scheduler's time limit) raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

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
