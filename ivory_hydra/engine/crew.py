"""Many workers, one sweep: the same command in several processes shares the work.

Workers meet in the storage's ledger (PostgreSQL or a journal file; SQLite
cannot be shared safely). No scheduler of ours runs anywhere: every decision
is an atomic ledger operation.

* **Membership.** Each worker keeps a record ``crew/<study>/<id>`` that it
  rewrites every heartbeat, with the ranges of slots it took and has not
  finished yet. A record whose beats stopped (see
  :mod:`ivory_hydra.stores.liveness`) belongs to a dead worker; the first
  survivor to remove it (compare-and-set) inherits its ranges and runs them.
  A worker stopped by a signal leaves its unfinished ranges the same way.
* **Generations.** Workers started while others of the sweep live join their
  generation; a worker that finds none starts the next one (compare-and-set
  on ``crew/<study>`` so that of several starting together exactly one does).
  A resumed sweep is a new generation: its slot cursors start again.
* **Work.** A step's slots are handed out in ranges by an atomic counter
  (``cursor/<study>/<gen>/<step>``); each range is counted as resolved when
  its jobs ended (``resolved/...``), so that every worker knows when a chain
  step is complete.
* **Decisions.** The first worker to see a chain step complete records its
  winner by compare-and-set (``decision/<study>/<param>``); everyone uses it.
* **The task name.** The first worker to count itself in numbers the task
  (``task/<study>``); the others use its name.
* **The end.** A counter of active workers tells the last one to leave: it
  writes the summary and closes the MLflow parent run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ivory_hydra.stores.ledger import Ledger
from ivory_hydra.stores.liveness import Beater, beat_record, describe, is_stale

log = logging.getLogger(__name__)


class Crew:
    """This worker's place among the workers of one sweep."""

    def __init__(self, ledger: Ledger, study_name: str, *, interval: float, grace: float) -> None:
        self.ledger = ledger
        self.study = study_name
        self.interval = interval
        self.grace = grace
        self.id = uuid.uuid4().hex[:12]
        self.key = f"crew/{study_name}/{self.id}"
        self.generation = 0
        self.started_generation = False
        self.record: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._beater: Beater | None = None
        self._inherited: list[tuple[int, int, int]] = []

    # ------------------------------------------------------------ membership

    def _members(self) -> dict[str, dict[str, Any]]:
        prefix = f"crew/{self.study}/"
        return {k: v for k, v in self.ledger.items(prefix) if isinstance(v, dict) and "pid" in v}

    def join(self) -> int:
        """Join the live workers' generation, or start the next one; return its number.

        A generation lives while its starter or any worker of it lives.
        """
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self.record = beat_record(since=since, generation=None, claims=[])
            self.ledger.compare_and_set(self.key, None, self.record)
        head = f"crew/{self.study}"
        for _ in range(50):
            stored = self.ledger.get(head)
            number = int(stored["number"]) if stored else 0
            if number and self._generation_lives(number, stored.get("starter")):
                self.generation = number
                break
            if self.ledger.compare_and_set(
                head, stored, {"number": number + 1, "starter": self.key}
            ):
                self.generation = number + 1
                self.started_generation = True
                break
            time.sleep(0.05)  # another worker started a generation just now: join it
        else:
            raise RuntimeError(f"could not join the workers of study {self.study!r}")
        self._update(generation=self.generation)
        self.ledger.add(self._active_key, 1)
        self._beater = Beater(self.interval, self._beat, name="ivory-hydra-crew").start()
        return self.generation

    def _generation_lives(self, number: int, starter: str | None) -> bool:
        """True while the starter of generation ``number`` or any worker of it lives.

        The starter's record is written before it takes the head, so a worker
        that reads the head sees a live starter even before it has recorded
        its generation: two workers starting together never start two.
        """
        for key, member in self._members().items():
            if key == self.key or member.get("left") or is_stale(member, self.grace):
                continue
            if key == starter or member.get("generation") == number:
                return True
        return False

    @property
    def _active_key(self) -> str:
        return f"active/{self.study}/{self.generation}"

    def _update(self, **changes: Any) -> None:
        with self._lock:
            if self.record is None:
                return
            new = {**self.record, **changes}
            if self.ledger.compare_and_set(self.key, self.record, new):
                self.record = new
            else:
                self.record = None
                log.error(
                    "This worker was taken for dead by the others of study %r and its work "
                    "given to them; it stops taking work",
                    self.study,
                )

    def _beat(self) -> None:
        assert self.record is not None
        self._update(**{k: v for k, v in beat_record().items() if k != "since"})

    @property
    def alive(self) -> bool:
        """False once the others took this worker for dead."""
        return self.record is not None

    # ------------------------------------------------------------ work

    def take(self, step: int, size: int, count: int) -> range | None:
        """Take the next ``count`` slot indices of ``step`` (None when all are taken)."""
        if not self.alive:
            return None
        for position, (owned_step, start, stop) in enumerate(self._inherited):
            if owned_step == step:
                del self._inherited[position]
                return self._claim(step, range(start, stop))
        start = self.ledger.add(f"cursor/{self.study}/{self.generation}/{step}", count)
        if start >= size:
            return None
        return self._claim(step, range(start, min(start + count, size)))

    def _claim(self, step: int, taken: range) -> range:
        assert self.record is not None
        self._update(claims=[*self.record["claims"], [step, taken.start, taken.stop]])
        return taken

    def finished(self, step: int, taken: range) -> None:
        """The jobs of a taken range ended: count them, and drop the claim."""
        self.ledger.add(f"resolved/{self.study}/{self.generation}/{step}", len(taken))
        if self.record is not None:
            claims = [c for c in self.record["claims"] if c != [step, taken.start, taken.stop]]
            self._update(claims=claims)

    def resolved(self, step: int) -> int:
        """How many slots of ``step`` the workers finished in this generation."""
        return self.ledger.add(f"resolved/{self.study}/{self.generation}/{step}", 0)

    def inherit(self) -> int:
        """Take over the ranges of dead workers; return how many ranges this worker got."""
        got = 0
        for key, member in self._members().items():
            if key == self.key or not is_stale(member, self.grace):
                continue
            if not self.ledger.compare_and_set(key, member, None):
                continue  # another survivor took it
            log.warning(
                "A worker of this sweep stopped (%s); its jobs run again here", describe(member)
            )
            if member.get("generation") == self.generation:
                if not member.get("left"):  # a worker that left counted itself out
                    self.ledger.add(self._active_key, -1)
                for step, start, stop in member.get("claims", []):
                    self._inherited.append((int(step), int(start), int(stop)))
                    got += 1
        return got

    def decide(self, param: str, decision: dict[str, Any]) -> dict[str, Any]:
        """Record a chain decision unless another worker did first; return the one that stands."""
        key = f"decision/{self.study}/{param}"
        if self.ledger.compare_and_set(key, None, decision):
            return decision
        return dict(self.ledger.get(key))

    def name_task(self, number: Callable[[], str]) -> str:
        """The sweep's task name, made once by ``number()`` for all workers.

        The first worker to count itself in calls it (it takes a task number);
        the others wait for its name, and should that worker die first, name
        the task themselves.
        """
        key = f"task/{self.study}"
        if self.ledger.add(f"task-numbering/{self.study}", 1) == 0:
            self.ledger.compare_and_set(key, None, number())
        deadline = time.monotonic() + 30
        while (task := self.ledger.get(key)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if task is None:  # the numbering worker died first
            self.ledger.compare_and_set(key, None, number())
            task = self.ledger.get(key)
        return str(task)

    def decision(self, param: str) -> dict[str, Any] | None:
        """The decision recorded for ``param``, if any."""
        found = self.ledger.get(f"decision/{self.study}/{param}")
        return dict(found) if isinstance(found, dict) else None

    def leave(self) -> bool:
        """Leave the sweep; True when this worker is the last of its generation.

        A worker stopped with ranges unfinished (a signal, an error) keeps its
        record, marked as left: once its process is gone the others inherit
        the ranges, as they would a dead worker's.
        """
        if self._beater is not None:
            self._beater.stop()
        last = self.ledger.add(self._active_key, -1) == 1
        with self._lock:
            if self.record is not None:
                left = {**self.record, "left": True} if self.record["claims"] else None
                self.ledger.compare_and_set(self.key, self.record, left)
                self.record = None
        return last
