"""``ivory_hydra.trial()``: the running job's own trial, from inside the job."""

from __future__ import annotations

from typing import Any

from ivory_hydra.job.session import JobSession, current_session


class JobTrial:
    """The trial of the job running in this thread: its number and params, and pruning."""

    def __init__(self, session: JobSession) -> None:
        self._session = session

    @property
    def number(self) -> int:
        """The trial's number in its study (the job's ``hydra.job.num``)."""
        return self._session.assignment.number

    @property
    def params(self) -> dict[str, Any]:
        """The job's swept and fixed values, as recorded in the trial."""
        return dict(self._session.assignment.params)

    def report(self, value: float, step: int) -> None:
        """Record an intermediate value at ``step`` (for pruners and the dashboard)."""
        self._session.report(value, step)

    def should_prune(self) -> bool:
        """Whether the sweep's pruner would stop this job now."""
        return self._session.should_prune()

    def __repr__(self) -> str:
        return f"JobTrial(number={self.number}, params={self.params!r})"


def trial() -> JobTrial | None:
    """The trial of the job running in this thread, or None outside a sweep.

    >>> trial() is None
    True
    """
    session = current_session()
    return None if session is None else JobTrial(session)
