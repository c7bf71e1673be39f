"""The failure budget's count, kept in the ledger, and the check that every process makes.

One ledger record per invocation (:meth:`~ivory_hydra.stores.format.Keys.failures`)
counts its failed jobs; every process that records a failure adds one by
compare-and-set, so the workers of one sweep and the jobs of every launcher
share it. Reading it writes nothing. The ledger is asked for (``ledger()``)
only when failures are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ivory_hydra.core.budgets import Budget, Stop, counts_as_failure
from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.stores.ledger import Ledger


def failures(ledger: Callable[[], Ledger], budget: Budget) -> int:
    """How many jobs of the invocation failed so far (0 when failures are not counted)."""
    if not budget.counts_failures:
        return 0
    return int(ledger().get(str(budget.failures_key)) or 0)


def count_failure(ledger: Callable[[], Ledger], budget: Budget, outcome: Outcome) -> None:
    """Count ``outcome`` against the failure budget if it is a failure that counts."""
    if not budget.counts_failures or not counts_as_failure(outcome):
        return
    records, key = ledger(), str(budget.failures_key)
    while True:
        current = records.get(key)
        if records.compare_and_set(key, current, int(current or 0) + 1):
            return


def budget_stop(ledger: Callable[[], Ledger], budget: Budget) -> Stop | None:
    """The stop if the invocation's budget is spent now, else None."""
    if not budget.limits:
        return None
    now = time.time()
    stop = budget.spent(now)  # the deadline first: it needs no read
    return stop or budget.spent(now, failures(ledger, budget))
