"""One retry policy for every store (tenacity): SQLite's locks and lost connections.

Two kinds of error pass, the rest raise at once:

* SQLite's "database is locked": retried at most :data:`LOCK_ATTEMPTS` times
  within :data:`LOCK_DEADLINE` seconds;
* a lost database connection (a server restarted or briefly down): retried
  for :func:`storage_retry` seconds (default :data:`STORAGE_RETRY`), a
  process-wide bound set with :func:`set_storage_retry`.

Both wait a jittered exponential back-off between attempts (the first in
25-50 ms, doubling up to 1-2 s). Calls made inside a retried call are not
retried again: the outermost one retries the whole. While a call is being
retried, MLflow's log of the errors it handles is kept quiet.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default bound, in seconds, of waiting out a lost storage connection.
STORAGE_RETRY = 300.0
LOCK_ATTEMPTS = 8
LOCK_DEADLINE = 60.0  # seconds; each attempt may itself wait SQLite's busy_timeout
BASE_DELAY = 0.05
MAX_DELAY = 2.0

_LOCK_MARKERS = ("database is locked", "database table is locked", "sqlite_busy")
#: A server that answers this refuses us for good: waiting will not help.
_REFUSALS = (
    "authentication failed",
    "password",
    "no pg_hba.conf entry",
    "access denied",
    "permission denied",
    "does not exist",
)

_bound = [STORAGE_RETRY]
_state = threading.local()


def set_storage_retry(seconds: float) -> None:
    """Set how long (seconds) a lost storage connection is waited out, in this process.

    >>> set_storage_retry(120); storage_retry()
    120.0
    >>> set_storage_retry(STORAGE_RETRY)
    """
    if seconds < 0:
        raise ValueError(f"storage_retry must be >= 0 seconds, not {seconds}")
    _bound[0] = float(seconds)


def storage_retry() -> float:
    """How long (seconds) a lost storage connection is waited out, in this process."""
    return _bound[0]


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    seen = 0
    while exc is not None and seen < 10:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


def is_locked_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is SQLite's "database is locked".

    >>> is_locked_error(RuntimeError("(sqlite3.OperationalError) database is locked"))
    True
    >>> is_locked_error(ValueError("nope"))
    False
    """
    return any(
        any(marker in str(error).lower() for marker in _LOCK_MARKERS) for error in _causes(exc)
    )


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a lost or refused database connection.

    That is a gRPC storage proxy's ``UNAVAILABLE`` or ``CANCELLED`` (it stops), or SQLAlchemy's
    ``DBAPIError`` with ``connection_invalidated``, or its
    ``OperationalError``/``InterfaceError`` from a database server's driver,
    also inside Optuna's ``StorageInternalError``. SQLite's errors (it has no
    connection to lose) and a server's refusals (a wrong password, a missing
    database) are not.

    >>> is_connection_error(ValueError("connection refused"))
    False
    """
    grpc = sys.modules.get("grpc")  # a gRPC storage proxy: gone, or stopping, for a moment
    if grpc is not None:
        for error in _causes(exc):
            if isinstance(error, grpc.RpcError) and callable(getattr(error, "code", None)):
                return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    exc_module = sys.modules.get("sqlalchemy.exc")
    if exc_module is None:  # never imported: no SQLAlchemy error can be here
        return False
    for error in _causes(exc):
        if not isinstance(error, exc_module.DBAPIError):
            continue
        if error.connection_invalidated:
            return True
        if not isinstance(error, (exc_module.OperationalError, exc_module.InterfaceError)):
            return False
        if type(error.orig).__module__.startswith("sqlite3"):
            return False
        text = str(error.orig).lower()
        return not any(refusal in text for refusal in _REFUSALS)
    return False


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of the error that caused ``exc``.

    >>> first_line(ValueError("bad\\nmore"))
    'ValueError: bad'
    """
    chain = list(_causes(exc))
    drivers = [error.orig for error in chain if getattr(error, "orig", None) is not None]
    root = drivers[0] if drivers else chain[-1]  # the driver's own words, when there are some
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")


def storage_unavailable(url: str) -> Callable[[BaseException, float], BaseException]:
    """The ``unavailable`` of :func:`call` for the Optuna storage (or ledger) at ``url``.

    >>> make = storage_unavailable("postgresql://u:pw@db/x")
    >>> print(make(ValueError("down"), 300.4))  # doctest: +ELLIPSIS
    the Optuna storage postgresql://u:***@db/x could not be reached for 300 s (ValueError: ...
    """
    from ivory_hydra.core.redact import redact_text, redact_url
    from ivory_hydra.errors import StorageUnavailableError

    def make(error: BaseException, seconds: float) -> BaseException:
        return StorageUnavailableError(
            f"the Optuna storage {redact_url(url)} could not be reached for {seconds:.0f} s "
            f"({redact_text(first_line(error))}); what was recorded is kept: run the same "
            "command again to resume once the database is back"
        )

    return make


def _transient(exc: BaseException) -> bool:
    return is_locked_error(exc) or is_connection_error(exc)


def _stop(state: Any) -> bool:
    error = state.outcome.exception()
    if not is_locked_error(error) and is_connection_error(error):
        return state.seconds_since_start >= storage_retry()
    return state.attempt_number >= LOCK_ATTEMPTS or state.seconds_since_start >= LOCK_DEADLINE


def _policy(what: str) -> Any:
    import tenacity

    # Half-jittered exponential back-off: attempt n waits between x/2 and x,
    # x = min(MAX_DELAY, BASE_DELAY * 2**(n-1)).
    half = BASE_DELAY / 2
    wait = tenacity.wait_exponential(multiplier=half, max=MAX_DELAY / 2) + (
        tenacity.wait_random_exponential(multiplier=half, max=MAX_DELAY / 2)
    )

    warned: list[bool] = []

    def before_sleep(state: Any) -> None:
        error = state.outcome.exception()
        if is_connection_error(error) and not is_locked_error(error):
            if not warned:
                warned.append(True)
                log.warning(
                    "Lost the connection to %s (%s); waiting up to %g s for it",
                    what,
                    first_line(error),
                    storage_retry(),
                )
        else:
            log.debug("%s locked, retry %d", what, state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        stop=_stop,
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )


def call(
    fn: Callable[..., T],
    *args: Any,
    what: str = "the store",
    unavailable: Callable[[BaseException, float], BaseException] | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)`` under the policy; ``what`` names the store in logs.

    When a lost connection outlasts :func:`storage_retry`, ``unavailable(error,
    seconds)`` makes the error raised instead of the last one (default: the
    last one is raised).
    """
    if getattr(_state, "active", False):
        return fn(*args, **kwargs)  # the outermost retried call retries the whole
    _install_quiet_filter()
    _state.active = True
    start = time.monotonic()
    try:
        return _policy(what)(fn, *args, **kwargs)
    except Exception as error:
        if unavailable is not None and is_connection_error(error) and not is_locked_error(error):
            raise unavailable(error, time.monotonic() - start) from error
        if is_locked_error(error):
            log.error("%s still locked after %.0f s", what, time.monotonic() - start)
        raise
    finally:
        _state.active = False


def retrying() -> bool:
    """Whether this thread is inside a retried call."""
    return getattr(_state, "active", False)


# ---------------------------------------------------------------- MLflow's log


class _QuietRetried(logging.Filter):
    """Drop MLflow's ERROR log of a lock or connection error that is being retried.

    MLflow logs every SQLAlchemy ``OperationalError`` with a traceback before
    raising it; for a call that is retried that log is noise. Such errors
    outside a retried call (e.g. in user code) are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not retrying():
            return True
        exc = record.exc_info[1] if record.exc_info else None
        locked = any(m in record.getMessage().lower() for m in _LOCK_MARKERS)
        return not (locked or (exc is not None and _transient(exc)))


_quiet: list[logging.Filter] = []


def _install_quiet_filter() -> None:
    if not _quiet:
        from ivory_hydra._compat import MLFLOW_DB_LOGGER

        _quiet.append(_QuietRetried())
        logging.getLogger(MLFLOW_DB_LOGGER).addFilter(_quiet[0])
