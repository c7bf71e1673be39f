"""How the processes that run one sweep agree: the interface both kinds share.

A sweep is run by one lone process (:class:`~ivory_hydra.engine.solo.Solo`, on
SQLite: it holds a lease) or by several workers started with the same command
(:class:`~ivory_hydra.engine.crew.Crew`, on PostgreSQL or a journal file). The
engine walks the plan the same way for both: it takes slots, runs them,
resolves them, and asks who decides, who numbers the task and who closes.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class Coordination(abc.ABC):
    """This process's part in running one sweep."""

    #: Several processes may share the sweep (their results are read back at the end).
    shared = False
    #: Seconds between two looks at work that others still do.
    poll = 1.0

    @property
    def alive(self) -> bool:
        """False once the others took this process for dead: it stops taking work."""
        return True

    def owner(self) -> dict[str, Any]:
        """What a trial records as its creator (``ivory:owner``)."""
        return {}

    @property
    @abc.abstractmethod
    def invocation(self) -> str:
        """This run of the command, among the sweep's runs (its failure budget's key)."""

    @abc.abstractmethod
    def join(self) -> None:
        """Start taking part (a lease, or a place among the workers)."""

    @abc.abstractmethod
    def take(self, step: int, total: int, count: int) -> list[int] | None:
        """Up to ``count`` slot indices of ``step`` for this process to run.

        ``[]``: none now, but others still run some (wait and ask again);
        None: every slot of the step is resolved.
        """

    def resolve(self, step: int, indices: Sequence[int]) -> None:  # noqa: B027 - optional
        """The slots ``indices`` of ``step`` ended (each in its trial)."""

    def adopted(self) -> bool:
        """True once after this process took over the slots of one that died.

        The engine then reads the storage again and fails the dead one's trials.
        """
        return False

    def owner_lives(self, owner: Mapping[str, Any]) -> bool:
        """Whether the creator of a WAITING trial may still start it."""
        return False

    def decision(self, param: str) -> dict[str, Any] | None:
        """The chain decision another process recorded for ``param``, if any."""
        return None

    def decide(self, param: str, decision: dict[str, Any]) -> dict[str, Any]:
        """Record a chain decision unless one was made; return the one that stands."""
        return decision

    def name_task(self, number: Callable[[], str]) -> str:
        """The sweep's task name, made once by ``number()``."""
        return number()

    def shared_parent(self) -> str | None:
        """The MLflow parent run that another process of this sweep made, if any."""
        return None

    def share_parent(self, run_id: str) -> str:
        """Offer ``run_id`` as the sweep's parent run; return the one that stands."""
        return run_id

    def wait(self) -> None:
        """Let others work a moment."""
        time.sleep(self.poll)

    @abc.abstractmethod
    def leave(self, finished: bool) -> bool:
        """Stop taking part; True when this process closes the sweep (exactly one does).

        ``finished``: the walk ended with every step resolved (not a stop).
        """
