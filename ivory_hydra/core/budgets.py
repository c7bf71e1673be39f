"""Budgets: ``timeout`` and ``max_failures``, and whether one is spent.

Pure: the settings checked, the deadline of an invocation, the rule that stops
it, and what a job returns when a budget kept it from starting. The count of
failures lives in the storage's ledger (:mod:`ivory_hydra.stores.budget`), so
that the workers of one sweep share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ivory_hydra.core.outcomes import BUDGET_SPENT, FAIL, Outcome

TIMEOUT = "timeout"
MAX_FAILURES = "max_failures"


def check_budget(timeout: Any, max_failures: Any) -> None:
    """Raise ``ValueError`` (``"<setting>: <why>"``) for a budget that cannot be kept.

    >>> check_budget(None, None), check_budget(1.5, 0)
    (None, None)
    >>> check_budget(0, None)
    Traceback (most recent call last):
    ...
    ValueError: timeout: must be a positive number of seconds or null, not 0
    >>> check_budget(None, -1)
    Traceback (most recent call last):
    ...
    ValueError: max_failures: must be a whole number >= 0 or null, not -1
    """
    if timeout is not None:
        number = not isinstance(timeout, bool) and isinstance(timeout, (int, float))
        if not number or math.isnan(timeout) or timeout <= 0:
            raise ValueError(
                f"{TIMEOUT}: must be a positive number of seconds or null, not {timeout!r}"
            )
    if max_failures is not None:
        whole = not isinstance(max_failures, bool) and isinstance(max_failures, int)
        if not whole or max_failures < 0:
            raise ValueError(
                f"{MAX_FAILURES}: must be a whole number >= 0 or null, not {max_failures!r}"
            )


def counts_as_failure(outcome: Outcome) -> bool:
    """Whether a run's outcome spends the failure budget: its own code failed (a run cut
    short from outside, or left by a budget, did not).

    >>> counts_as_failure(Outcome(FAIL, None, "ValueError: x", "ValueError"))
    True
    >>> counts_as_failure(Outcome(FAIL, None, "stopped", "Interrupted"))
    False
    """
    return outcome.failed and not outcome.killed


@dataclass(frozen=True)
class Stop:
    """Why a budget stopped an invocation: the setting, and a line that says so."""

    setting: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """As ``results.yaml`` shows it (``stopped_by``)."""
        return {"setting": self.setting, "reason": self.reason}


@dataclass(frozen=True)
class Budget:
    """The budgets of one invocation, as the engine and every job read them.

    ``deadline`` is a wall-clock time (``time.time()``): jobs in other processes
    compare it with their own clock. ``failures_key`` names the ledger record
    that counts this invocation's failures (shared by the workers of one sweep).
    """

    timeout: float | None = None
    max_failures: int | None = None
    deadline: float | None = None
    failures_key: str | None = None

    def started(self, now: float, failures_key: str) -> Budget:
        """The budget of an invocation that started at ``now``.

        >>> Budget(timeout=60).started(1000.0, "k").deadline
        1060.0
        """
        deadline = None if self.timeout is None else now + self.timeout
        return replace(self, deadline=deadline, failures_key=failures_key)

    @property
    def limits(self) -> bool:
        """Whether any budget is set."""
        return self.timeout is not None or self.max_failures is not None

    @property
    def counts_failures(self) -> bool:
        """Whether failures are counted (``max_failures`` is set)."""
        return self.max_failures is not None and self.failures_key is not None

    def spent(self, now: float, failures: int = 0) -> Stop | None:
        """The stop, once the deadline passed or ``max_failures`` jobs failed (0: the first).

        >>> budget = Budget(timeout=30, max_failures=2).started(0.0, "k")
        >>> budget.spent(10.0, 1) is None
        True
        >>> budget.spent(31.0).reason
        'timeout=30 s passed'
        >>> budget.spent(10.0, 2).reason
        'max_failures=2: 2 jobs failed'
        >>> Budget(max_failures=0).spent(0.0, 1).reason
        'max_failures=0: 1 job failed'
        >>> Budget(max_failures=0).spent(0.0, 0) is None
        True
        """
        if self.deadline is not None and now >= self.deadline:
            return Stop(TIMEOUT, f"{TIMEOUT}={self.timeout:g} s passed")
        if self.max_failures is not None and failures >= max(self.max_failures, 1):
            jobs = "1 job" if failures == 1 else f"{failures} jobs"
            return Stop(MAX_FAILURES, f"{MAX_FAILURES}={self.max_failures}: {jobs} failed")
        return None


@dataclass(frozen=True)
class NotStarted:
    """What a job returns when a budget kept it from starting: it runs on resume."""

    reason: str

    @property
    def outcome(self) -> Outcome:
        """Its outcome: left by the budget, not a failure.

        >>> NotStarted("timeout=5 s passed").outcome.left
        True
        """
        return Outcome(FAIL, None, f"not started: {self.reason}", BUDGET_SPENT)
