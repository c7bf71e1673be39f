"""SIGTERM and SIGHUP handled like Ctrl-C, so that a stopped sweep cleans up.

``timeout``, SLURM's pre-emption and ``docker stop`` send SIGTERM, which by
default kills Python without running ``finally`` blocks: the batch in flight
would stay RUNNING. Inside :func:`interrupts`, the first SIGINT, SIGTERM or
SIGHUP raises :class:`Interrupted` (a ``KeyboardInterrupt``) in the main
thread; a second one exits at once with the signal's code.

A signal must not land inside a write to a store: an exception raised in the
middle of a database call can leave a SQLite write transaction open, and the
clean-up's own writes then wait on that lock (a measured 60 s hang). Writes
run inside :func:`shielded`, which holds a first signal until the block ends.

Python drops an exception raised while a weak reference's callback or a
``__del__`` runs (it only prints "Exception ignored in ..."), and a signal
handler may run right there. :func:`check`, called where a job starts and where
a batch is handed out, raises a stop signal whose :class:`Interrupted` was lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(KeyboardInterrupt):
    """The process got a stop signal; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The exit code that says which signal stopped the process (143 for SIGTERM).

        >>> Interrupted(signal.SIGTERM).exit_code
        143
        """
        return 128 + self.signum


def exit_code(error: BaseException) -> int:
    """The exit code for a sweep stopped by ``error`` (130 for a plain Ctrl-C).

    >>> exit_code(KeyboardInterrupt()), exit_code(Interrupted(signal.SIGHUP))
    (130, 129)
    """
    return error.exit_code if isinstance(error, Interrupted) else 128 + signal.SIGINT


_received: list[int] = []
_shield = {"depth": 0, "pending": None, "active": False}


def received() -> int | None:
    """The stop signal received inside the current :func:`interrupts` block, if any."""
    return _received[-1] if _received else None


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """Turn stop signals into :class:`Interrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _shield["pending"] = None

    def handler(signum: int, _frame: Any) -> None:
        if _received:
            os._exit(128 + signum)
        _received.append(signum)
        if _shield["depth"]:
            _shield["pending"] = signum  # raised when the shielded block ends
            return
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    _shield["active"] = True
    try:
        yield
    finally:
        _shield["active"] = False
        for signum, old in previous.items():
            signal.signal(signum, old)


def check() -> None:
    """Raise again a stop signal received inside :func:`interrupts`, in case its
    :class:`Interrupted` was dropped; call it only where no clean-up runs (the sweep
    is over once a stop signal came, so raising it twice changes nothing).

    >>> check()  # outside interrupts(): nothing to raise
    """
    if (
        _shield["active"]
        and _received
        and not _shield["depth"]
        and threading.current_thread() is threading.main_thread()
    ):
        raise Interrupted(_received[-1])


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold a stop signal while the block runs (it writes to a store); raise it after.

    A second signal still exits at once. Other threads are never interrupted.

    >>> with shielded():
    ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _shield["depth"] += 1
    try:
        yield
    finally:
        _shield["depth"] -= 1
        signum = _shield["pending"] if not _shield["depth"] else None
        if signum is not None:
            _shield["pending"] = None
            raise Interrupted(signum)
