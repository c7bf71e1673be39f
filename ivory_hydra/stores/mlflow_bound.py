"""MLflow calls that never hold their caller past a deadline, and the outages they reveal.

MLflow's own waits are long: SQLite's busy timeout (20 s, then the stores' lock
retries for up to a minute), a tracking server's HTTP retries (minutes by
default). Every MLflow call ivory-hydra makes goes through :func:`bounded`: it
runs in a daemon thread, and its caller waits for it at most the seconds it
was given. A call that fails, or outlives its deadline, reveals an *outage* of
that store in this process:

* the first prints one warning naming the store (password hidden) and saying
  that the mirror catches up; later failures of the same outage print nothing;
* while a call of the outage still hangs, later calls are skipped at once;
* a call that hung may still end: its result is dropped, and its success (or
  that of any later call) ends the outage.

Callers get :class:`MirrorLagging` for a call skipped, failed or cut short, and
leave the rest to the closer or the next run of the command, which derive
MLflow from the Optuna storage. The log records of MLflow (and of the stores'
own retries) made inside these calls are kept out of the user's log: the
outage's one line says it all. Nothing here imports :mod:`mlflow`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ivory_hydra._compat import MLFLOW_DB_LOGGER
from ivory_hydra.core.redact import redact_text, redact_url
from ivory_hydra.errors import IvoryError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default of ``hydra.sweeper.mlflow.timeout``: the seconds ivory-hydra's own MLflow
#: calls may hold one job in total (and the sweeper, per call).
DEFAULT_TIMEOUT = 5.0

#: Loggers whose records inside a bounded call are the outage's, already told in one line:
#: MLflow's store errors (with tracebacks), its HTTP client's retries, the stores' retries.
QUIETED_LOGGERS = (
    MLFLOW_DB_LOGGER,
    "mlflow.utils.rest_utils",
    "mlflow.utils.request_utils",
    "urllib3.connectionpool",
    "ivory_hydra.stores.retry",
)


class MirrorLagging(IvoryError):
    """An MLflow call was skipped, failed or cut short: the mirror lags the storage."""


@dataclass
class _Outage:
    hanging: int = 0  # calls still running past their deadline
    told: bool = False  # its one line was printed


_lock = threading.Lock()
_outages: dict[str, _Outage] = {}
_inside = threading.local()


def lagging(store: str) -> bool:
    """Whether an outage of ``store`` is known in this process (a call hangs, or the
    last one failed)."""
    return store in _outages


def bounded(fn: Callable[..., T], *args: Any, store: str, seconds: float, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, waited for at most ``seconds``; raise :class:`MirrorLagging`
    when it is skipped (a call to ``store`` still hangs), fails or runs out of time.

    A bounded call made inside another runs directly, under the outer one's deadline.
    """
    if getattr(_inside, "active", False):
        return fn(*args, **kwargs)
    with _lock:
        outage = _outages.get(store)
        if outage is not None and outage.hanging:
            raise MirrorLagging(f"MLflow ({redact_url(store)}) still does not answer")
    if seconds <= 0:
        raise MirrorLagging("no time left for MLflow")
    _quiet_loggers()
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        _inside.active = True
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box["error"] = error
        with _lock:
            done.set()
            outage = box.get("late")  # its caller went on: only its outage learns the end
            if outage is not None:
                outage.hanging -= 1
                if "error" not in box and _outages.get(store) is outage:
                    del _outages[store]  # it answered after all: the store is back

    threading.Thread(target=work, name="ivory-hydra-mlflow", daemon=True).start()
    done.wait(seconds)
    with _lock:
        if not done.is_set():
            box["late"] = _outages.setdefault(store, _Outage())
            box["late"].hanging += 1
        elif "error" not in box:
            _outages.pop(store, None)  # it answers: an outage, if any, is over
            return box["value"]
    error = box.get("error")
    if error is not None and not isinstance(error, Exception):
        raise error  # KeyboardInterrupt, SystemExit
    reason = f"no answer within {seconds:.1f} s" if "late" in box else _first_line(error)
    _lost(store, reason)
    raise MirrorLagging(f"MLflow ({redact_url(store)}): {redact_text(reason)}") from error


def _lost(store: str, reason: str) -> None:
    """Tell an outage of ``store`` once."""
    with _lock:
        outage = _outages.setdefault(store, _Outage())
        if outage.told:
            return
        outage.told = True
    log.warning(
        "MLflow (%s) cannot be reached: %s. The sweep goes on without it; the mirror "
        "catches up at the end of the sweep, or when the same command runs again",
        redact_url(store),
        redact_text(reason),
    )


def _first_line(error: BaseException) -> str:
    from ivory_hydra.stores.retry import first_line

    return first_line(error)


@dataclass
class Budget:
    """What MLflow calls may still take of one job, in seconds (``timeout`` in total)."""

    store: str
    seconds: float = DEFAULT_TIMEOUT
    spent: float = field(default=0.0)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:func:`bounded` with the time left; the time it takes is spent."""
        start = time.monotonic()
        try:
            return bounded(fn, *args, store=self.store, seconds=self.left, **kwargs)
        finally:
            self.spent += time.monotonic() - start

    @property
    def left(self) -> float:
        """Seconds left."""
        return self.seconds - self.spent


# ------------------------------------------------------------ the outage's one line


class _QuietInside(logging.Filter):
    """Drop warnings and errors logged inside a bounded call (they are the outage's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING or not getattr(_inside, "active", False)


_quiet: list[logging.Filter] = []


def _quiet_loggers() -> None:
    if not _quiet:
        _quiet.append(_QuietInside())
        for name in QUIETED_LOGGERS:
            logging.getLogger(name).addFilter(_quiet[0])
