"""The budgets of one invocation, as the engine keeps them (a part of the engine's state).

Before it hands out work, the engine asks whether the invocation's budget is
spent (:mod:`ivory_hydra.core.budgets`): past the ``timeout``, or
``max_failures`` failed jobs (0: the first) counted in the ledger by every process of the
sweep. Once it is, no new job starts and the jobs in flight finish; a job
that a budget kept from starting is given back (it runs on resume).
"""

from __future__ import annotations

import logging

from ivory_hydra.core.budgets import Budget, Stop
from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.stores.budget import budget_stop, count_failure
from ivory_hydra.stores.ledger import Ledger

log = logging.getLogger(__name__)


class Budgets:
    """This invocation's budget, and what stopped it."""

    def __init__(self, budget: Budget, ledger: Ledger) -> None:
        self.budget = budget
        self.ledger = ledger
        self.stop: Stop | None = None

    def spent(self) -> bool:
        """Whether the budget is spent (said once, when first found)."""
        if self.stop is None and self.budget.limits:
            self.stop = budget_stop(lambda: self.ledger, self.budget)
            if self.stop is not None:
                log.info("%s: no new job starts; the jobs in flight finish", self.stop.reason)
        return self.stop is not None

    def stopped(self, stop: Stop) -> None:
        """Record what else stopped this invocation (``max_failure_rate``)."""
        self.stop = self.stop or stop

    def count(self, outcome: Outcome) -> None:
        """Count a failure recorded by the engine for a job that could not."""
        count_failure(lambda: self.ledger, self.budget, outcome)
