"""Many workers, one sweep: the same command in several processes shares the work.

Workers meet in the storage's ledger (PostgreSQL or a journal file; SQLite
cannot be shared safely). No scheduler of ours runs anywhere: every decision
is one atomic ledger operation, and every change that spans several records
writes the new state before it removes the old, so that a worker may die
between any two writes and the others still converge.

* **Membership.** Each worker keeps a record ``member/<study>/<id>`` (where it
  runs, its generation) and beats beside it (:mod:`ivory_hydra.stores.beats`).
  A worker whose beats stopped (see :mod:`ivory_hydra.stores.liveness`) is dead.
  A worker reads its own record back, to learn whether the others took it for
  dead, only when that can have happened: after a late beat (half the grace
  period since the last one), and once per grace period (another host's clock
  may run ahead); not at every beat.
* **Generations.** Workers started while others of the sweep live join their
  generation; a worker that finds none starts the next one (compare-and-set on
  ``crew/<study>``, which names its starter: the starter's record exists before
  it takes the head, so two workers starting together never start two). A
  resumed sweep is a new generation: its slots are handed out again.
* **Slots.** A step's slots are handed out by an atomic counter (a hint), and
  each slot is owned through its own record ``slot/<study>/<gen>/<step>/<i>``,
  made by compare-and-set: ``{"owner"}``, then ``{"owner", "done"}`` once its
  job ended. A slot whose owner died (or left) is taken over by
  compare-and-set on that one record; a slot the counter handed to a worker
  that died before recording it is found as a gap. A step is resolved when all
  its slot records say done. A worker with nothing left to take reads them
  again only when the step's count of ended slots (a hint) says all are done,
  or once per heartbeat interval (a worker may have died): one small read a
  second per idle worker, not every slot and worker record.
* **Decisions.** The first worker to see a chain step resolved records its
  winner by compare-and-set (``decision/<study>/<param>``); everyone uses it.
* **The task name.** The first worker to count itself in numbers the task.
* **The end.** A worker that leaves marks its record left (or removes it when
  it owns nothing unfinished); one that sees no other live worker of its
  generation competes, by compare-and-set on ``closer/<study>/<gen>``, to
  close the sweep: exactly one writes the summary and closes the MLflow
  parent. If every worker dies instead, the next run of the command does it.
  A worker that waits for the others to leave reads their records again when
  the generation's count of working workers says all left, or once per
  heartbeat interval (one may have died).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ivory_hydra.engine.coordination import Coordination
from ivory_hydra.stores.beats import Beats
from ivory_hydra.stores.format import BeatKeys, Keys
from ivory_hydra.stores.ledger import Ledger
from ivory_hydra.stores.liveness import HOST, Beater, beat_record, describe, is_stale

log = logging.getLogger(__name__)

#: Seconds the other workers wait for the first one to number the task.
TASK_NAMING_WAIT = 30.0


class Crew(Coordination):
    """This worker's place among the workers of one sweep."""

    shared = True

    def __init__(
        self, ledger: Ledger, beats: Beats, study_name: str, *, interval: float, grace: float
    ) -> None:
        self.ledger = ledger
        self.beats = beats
        self.study = study_name
        self.interval = interval
        self.grace = grace
        self.poll = min(1.0, interval)
        self.id = uuid.uuid4().hex[:12]
        self.key = Keys.member(study_name, self.id)
        self.generation = 0
        self.started_generation = False
        self._record: dict[str, Any] | None = None
        self._alive = True
        self._beater: Beater | None = None
        self._spent: set[int] = set()  # steps whose counter is used up
        self._owned: set[tuple[int, int]] = set()  # (step, index) taken, not yet resolved
        self._scanned: dict[int, float] = {}  # step: when its slot records were last read
        self._counted = False  # in the generation's count of working workers
        self._seen: tuple[float, dict[str, Any]] = (0.0, {})  # when, the workers' records
        self._beaten = 0.0  # when the last beat written was made
        self._checked = 0.0  # when this worker's record was last read back
        self._adopted = False
        self._announced: set[str] = set()

    # ------------------------------------------------------------ membership

    @property
    def alive(self) -> bool:
        return self._alive

    def owner(self) -> dict[str, Any]:
        return {"host": HOST, "pid": os.getpid(), "worker": self.key}

    @property
    def invocation(self) -> str:
        """The generation: the workers that run at the same time share one invocation,
        and a later run of the command starts the next (a fresh failure budget)."""
        return f"generation-{self.generation}"

    def _beat_key(self, key: str) -> str:
        """The beats board key of the worker whose record is ``key``."""
        return BeatKeys.worker(self.study, key.rsplit("/", 1)[-1])

    def _beat(self) -> None:
        made = time.monotonic()
        self.beats.write(self._beat_key(self.key), beat_record())
        late = made - self._beaten > self.grace / 2
        self._beaten = made
        if self._record is not None and (late or made - self._checked > self.grace):
            self._checked = made
            if self.ledger.get(self.key) is None:
                self._lost()

    def _lost(self) -> None:
        if self._alive:
            log.error(
                "This worker was taken for dead by the others of study %r and its work "
                "given to them; it stops taking work",
                self.study,
            )
        self._alive = False
        self._record = None

    def _members(self) -> dict[str, dict[str, Any]]:
        """Every worker's record, with its latest beat."""
        prefix = Keys.members(self.study)
        beats = dict(self.beats.items(BeatKeys.workers(self.study)))
        return {
            key: {**record, **beats.get(self._beat_key(key), {})}
            for key, record in self.ledger.items(prefix)
            if isinstance(record, Mapping)
        }

    def _working(self, member: Mapping[str, Any] | None) -> bool:
        """Whether a worker still works: it lives and has not left."""
        return member is not None and not member.get("left") and not is_stale(member, self.grace)

    def join(self) -> None:
        """Join the live workers' generation, or start the next one.

        A generation lives while its starter or any worker of it works.
        """
        self._record = beat_record(since=time.strftime("%Y-%m-%d %H:%M:%S"), generation=None)
        self.ledger.compare_and_set(self.key, None, self._record)
        self._beaten = self._checked = time.monotonic()
        self.beats.write(self._beat_key(self.key), beat_record())
        head = Keys.crew(self.study)
        for _ in range(100):
            stored = self.ledger.get(head)
            number = int(stored["number"]) if stored else 0
            if number and self._generation_lives(number, stored.get("starter")):
                self.generation = number
                break
            new = {"number": number + 1, "starter": self.key}
            if self.ledger.compare_and_set(head, stored, new):
                self.generation = number + 1
                self.started_generation = True
                break
            time.sleep(0.05)  # another worker started a generation just now: join it
        else:
            raise RuntimeError(f"could not join the workers of study {self.study!r}")
        self._update(generation=self.generation)
        self.ledger.add(Keys.working(self.study, self.generation), 1)
        self._counted = True
        self._beater = Beater(self.interval, self._beat, name="ivory-hydra-crew").start()

    def _generation_lives(self, number: int, starter: str | None) -> bool:
        for key, member in self._members().items():
            if key == self.key or not self._working(member):
                continue
            if key == starter or member.get("generation") == number:
                return True
        return False

    def _update(self, **changes: Any) -> None:
        if self._record is None:
            return
        new = {**self._record, **changes}
        if self.ledger.compare_and_set(self.key, self._record, new):
            self._record = new
        else:
            self._lost()

    # ------------------------------------------------------------ slots

    def _slot(self, step: int, index: int) -> str:
        return Keys.slot(self.study, self.generation, step, index)

    def _own(self, step: int, indices: Iterable[int], expected: Any = None) -> list[int]:
        mine = {"owner": self.key}
        got = [
            i for i in indices if self.ledger.compare_and_set(self._slot(step, i), expected, mine)
        ]
        self._owned.update((step, i) for i in got)
        return got

    def take(self, step: int, total: int, count: int) -> list[int] | None:
        if not self._alive:
            return []
        while step not in self._spent:
            start = self.ledger.add(Keys.cursor(self.study, self.generation, step), count)
            if start >= total:
                self._spent.add(step)
                break
            got = self._own(step, range(start, min(start + count, total)))
            if got:
                return got
        if not self._scan_due(step, total):
            return []
        return self._scan(step, total, count)

    def _scan_due(self, step: int, total: int) -> bool:
        """Whether to read the step's slot records now (see the module's doc)."""
        now = time.monotonic()
        last = self._scanned.get(step)
        if last is not None and now - last < self.interval:
            ended = self.ledger.add(Keys.ended(self.study, self.generation, step), 0)
            if ended < total:
                return False
        self._scanned[step] = now
        return True

    def _scan(self, step: int, total: int, count: int) -> list[int] | None:
        """After the counter: gaps left by workers that died, and dead workers' slots."""
        prefix = Keys.slots(self.study, self.generation, step)
        records = {int(key[len(prefix) :]): value for key, value in self.ledger.items(prefix)}
        if len(records) >= total and all(r.get("done") for r in records.values()):
            return None
        got = self._own(step, [i for i in range(total) if i not in records][:count])
        members = self._members()
        for index, record in sorted(records.items()):
            owner = record.get("owner")
            if len(got) >= count or record.get("done") or owner == self.key:
                continue
            if self._working(members.get(owner)):
                continue
            if self._own(step, [index], expected=record):
                records[index] = {"owner": self.key}
                got.append(index)
                self._adopted = True
                self._announce(str(owner), members.get(owner))
        self._forget(members, records)
        return got

    def _announce(self, key: str, member: Mapping[str, Any] | None) -> None:
        if key in self._announced:
            return
        self._announced.add(key)
        what = "left" if member and member.get("left") else "stopped"
        log.warning(
            "A worker of this sweep %s (%s); its jobs run again here", what, describe(member)
        )

    def _forget(self, members: Mapping[str, Any], records: Mapping[int, Any]) -> None:
        """Remove the records of dead workers that own nothing unfinished any more."""
        owners = {r.get("owner") for r in records.values() if not r.get("done")}
        for key, member in members.items():
            if key != self.key and key not in owners and not self._working(member):
                stored = self.ledger.get(key)
                if stored is not None:
                    self.ledger.compare_and_set(key, stored, None)
                    self.beats.delete(self._beat_key(key))

    def resolve(self, step: int, indices: Sequence[int]) -> None:
        mine = {"owner": self.key}
        ended = 0
        for index in indices:
            self._owned.discard((step, index))
            done = {**mine, "done": True}
            if self.ledger.compare_and_set(self._slot(step, index), mine, done):
                ended += 1
            else:
                log.debug("slot %d.%d was taken over by another worker", step, index)
        if ended:
            self.ledger.add(Keys.ended(self.study, self.generation, step), ended)

    def adopted(self) -> bool:
        adopted, self._adopted = self._adopted, False
        return adopted

    def owner_lives(self, owner: Mapping[str, Any]) -> bool:
        """Asked once per trial another worker created: the records read for one trial
        serve the next ones for a poll interval, unless they do not know the creator
        (it joined since)."""
        worker = owner.get("worker")
        if not worker:
            return False
        read, members = self._seen
        if time.monotonic() - read > self.poll or str(worker) not in members:
            read, members = self._seen = time.monotonic(), self._members()
        return self._working(members.get(str(worker)))

    # ------------------------------------------------------------ agreements

    def decision(self, param: str) -> dict[str, Any] | None:
        found = self.ledger.get(Keys.decision(self.study, param))
        return dict(found) if isinstance(found, Mapping) else None

    def decide(self, param: str, decision: dict[str, Any]) -> dict[str, Any]:
        key = Keys.decision(self.study, param)
        if self.ledger.compare_and_set(key, None, decision):
            return decision
        return dict(self.ledger.get(key))

    def name_task(self, number: Callable[[], str]) -> str:
        """The first worker to count itself in calls ``number()`` (it takes a task
        number); the others wait for its name, and should it die first, name the
        task themselves.
        """
        key = Keys.task(self.study)
        if self.ledger.add(Keys.task_numbering(self.study), 1) == 0:
            self.ledger.compare_and_set(key, None, number())
        deadline = time.monotonic() + TASK_NAMING_WAIT
        while (task := self.ledger.get(key)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if task is None:  # the numbering worker died first
            self.ledger.compare_and_set(key, None, number())
            task = self.ledger.get(key)
        return str(task)

    def shared_parent(self) -> str | None:
        found = self.ledger.get(Keys.parent(self.study))
        return None if found is None else str(found)

    def share_parent(self, run_id: str) -> str:
        key = Keys.parent(self.study)
        if self.ledger.compare_and_set(key, None, run_id):
            return run_id
        return str(self.ledger.get(key))

    # ------------------------------------------------------------ the end

    def leave(self, finished: bool) -> bool:
        """Leave; True when this worker closes the sweep.

        A worker that owns unfinished slots (a signal stopped it) keeps its
        record, marked left, so that the others take them over at once. One
        whose walk ``finished`` waits (at most the grace period) for the other
        workers of its generation to leave or die: the last one out closes.
        """
        if self._beater is not None:
            self._beater.stop()
        if self._record is not None:
            left = {**self._record, "left": True} if self._owned else None
            if self.ledger.compare_and_set(self.key, self._record, left):
                self._record = left
            if left is None:
                self.beats.delete(self._beat_key(self.key))
        self._alive = False
        working = Keys.working(self.study, self.generation)
        if self._counted:
            self._counted = False
            self.ledger.add(working, -1)
        deadline = time.monotonic() + self.grace + self.interval
        while self._others_work():
            if not finished or time.monotonic() > deadline:
                return False  # a live worker of this generation closes it
            read = time.monotonic()
            while time.monotonic() - read < self.interval and self.ledger.add(working, 0) > 0:
                time.sleep(self.poll)
        return self.ledger.compare_and_set(Keys.closer(self.study, self.generation), None, self.key)

    def _others_work(self) -> bool:
        """Whether another worker of this generation (or one joining) still works."""
        return any(
            key != self.key
            and self._working(member)
            and member.get("generation") in (self.generation, None)
            for key, member in self._members().items()
        )
