"""The invocation's budget as a job sees it, in the job's own process.

A job handed to a launcher may start long after its batch was issued (joblib
queues a batch behind ``n_jobs`` workers). It checks the budget its ticket
carries before it starts: past the deadline, or with the failure budget
spent, it does not run the app and is given back. Once its stores are open
(which can take seconds: MLflow's import, a store that lags) it reads the
deadline again. A job that fails counts against the failure budget as it
records its outcome.
"""

from __future__ import annotations

import logging

from ivory_hydra.core.budgets import Stop
from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores.budget import budget_stop, count_failure
from ivory_hydra.stores.ledger import Ledger

log = logging.getLogger(__name__)


def _ledger(ticket: Ticket) -> Ledger:
    from ivory_hydra.stores.ledger import ledger_for

    return ledger_for(ticket.storage_url)


def spent_before_start(ticket: Ticket) -> Stop | None:
    """The stop if the budget is spent as the job is about to start, else None.

    A job whose process cannot read the failure count runs, as it runs when it
    cannot reach the storage at all (the sweeper then records its outcome).
    """
    try:
        return budget_stop(lambda: _ledger(ticket), ticket.budget)
    except Exception as error:  # noqa: BLE001 - e.g. ${oc.env:...} unset, a store out of reach
        log.debug("the failure budget cannot be read from this job: %s", error)
        return None


def count_job_failure(ticket: Ticket, outcome: Outcome) -> None:
    """Count a failure the job recorded against the failure budget (if it counts)."""
    count_failure(lambda: _ledger(ticket), ticket.budget, outcome)
