"""One run's trial: started, kept alive and finished by the process that runs it.

Every function here takes the storage and a trial id, so that a job can own
its trial from any process that reaches the storage. Starting is Optuna's own
compare-and-set (WAITING to RUNNING succeeds once); finishing an already
finished trial is refused by the storage, and returns False here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.outcomes import COMPLETE, FAIL, PRUNED, Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.stores.format import BEAT, BeatKeys, TrialAttr
from ivory_hydra.stores.liveness import beat_record

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


def start(storage: BaseStorage, trial_id: int, beating: bool = True) -> bool:
    """Start a WAITING trial (its start time is now); False if someone else did.

    ``beating=False`` records no beat: the trial is started only to be failed.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        claimed = storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    except UpdateFinishedTrialError:
        return False
    if claimed and beating:
        beat(storage, trial_id)
    return claimed


def beat(storage: BaseStorage, trial_id: int) -> None:
    """Record that this process is alive and running the trial.

    The record goes to the storage's beats board (overwritten in place), not
    into the storage: ``storage`` is what ``open_storage`` returned.
    """
    from ivory_hydra.stores.beats import board_of

    board_of(storage).write(BeatKeys.trial(trial_id), beat_record())


def last_beat(storage: BaseStorage, trial: FrozenTrial) -> dict[str, Any] | None:
    """The last liveness record of the process running ``trial``, if any.

    Read from the beats board of ``storage`` (what ``open_storage`` returned);
    a finished trial, or one written before the board existed, keeps it as a
    system attribute. A trial started a moment ago, whose process has not yet
    written its first beat, beats as of its start.
    """
    from ivory_hydra._compat import frozen_trial_id

    return last_beats(storage, [trial])[frozen_trial_id(trial)]


def last_beats(
    storage: BaseStorage, stored: Sequence[FrozenTrial]
) -> dict[int, dict[str, Any] | None]:
    """:func:`last_beat` of each trial (by trial id), read from the board at once."""
    from optuna.trial import TrialState

    from ivory_hydra._compat import frozen_trial_id
    from ivory_hydra.stores.beats import board_of

    keys = {frozen_trial_id(trial): BeatKeys.trial(frozen_trial_id(trial)) for trial in stored}
    on_board = board_of(storage).read_many(list(keys.values())) if keys else {}
    found: dict[int, dict[str, Any] | None] = {}
    for trial in stored:
        trial_id = frozen_trial_id(trial)
        record = on_board.get(keys[trial_id]) or trial.system_attrs.get(BEAT)
        if record is None and trial.state == TrialState.RUNNING and trial.datetime_start:
            # started, its first beat not yet written (it follows the switch): as of its start
            record = {"at": trial.datetime_start.timestamp()}
        found[trial_id] = dict(record) if isinstance(record, Mapping) else None
    return found


def _board_beat(storage: BaseStorage, trial_id: int) -> dict[str, Any] | None:
    from ivory_hydra.stores.beats import board_of

    try:
        return board_of(storage).read(BeatKeys.trial(trial_id))
    except KeyError:  # a storage opened elsewhere has no board
        return None


def forget_beat(storage: BaseStorage, trial_id: int) -> None:
    """Remove a finished trial's heartbeat from the board (best effort)."""
    from ivory_hydra.stores.beats import board_of

    try:
        board_of(storage).delete(BeatKeys.trial(trial_id))
    except Exception as error:  # noqa: BLE001 - a leftover beat is harmless
        log.debug("could not remove the beat of trial %d: %s", trial_id, error)


def set_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Set user attributes of an unfinished trial."""
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def set_params(
    storage: BaseStorage,
    trial_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
) -> None:
    """Record params of an unfinished trial (a zipped row's members, once it is sampled)."""
    from ivory_hydra.stores.distributions import trial_param

    for name, value in params.items():
        distribution = distributions[name]
        internal = distribution.to_internal_repr(trial_param(value, distribution))
        storage.set_trial_param(trial_id, name, internal, distribution)


def outcome_attrs(outcome: Outcome) -> dict[str, Any]:
    """The trial attributes that record an outcome's reason and error type.

    >>> outcome_attrs(Outcome("fail", None, "ValueError: x", "ValueError"))
    {'reason': 'ValueError: x', 'error': 'ValueError'}
    """
    attrs = {}
    if outcome.reason:
        attrs[TrialAttr.REASON] = outcome.reason
    if outcome.error:
        attrs[TrialAttr.ERROR] = outcome.error
    return attrs


def finish(
    storage: BaseStorage,
    trial_id: int,
    outcome: Outcome,
    attrs: Mapping[str, Any] | None = None,
    *,
    start_if_waiting: bool = False,
    beat: Mapping[str, Any] | None = None,
) -> bool:
    """Finish a trial with ``outcome``; False if it was finished already.

    The last heartbeat of the process that ran it moves from the beats board
    into the trial (system attribute ``ivory:beat``); that process, finishing
    its own trial, gives its ``beat`` instead (the board is not read).
    ``start_if_waiting`` is for a trial whose job may never have started it: it
    is started first, so that it has a start time.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    state = {COMPLETE: TrialState.COMPLETE, FAIL: TrialState.FAIL, PRUNED: TrialState.PRUNED}
    values = None if outcome.state == FAIL else outcome.objectives
    try:
        if start_if_waiting:
            storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        set_attrs(storage, trial_id, {**(attrs or {}), **outcome_attrs(outcome)})
        last = beat if beat is not None else _board_beat(storage, trial_id)
        if last is not None:  # who ran it, kept with the trial (one record, not every beat)
            storage.set_trial_system_attr(trial_id, BEAT, last)
        storage.set_trial_state_values(trial_id, state[outcome.state], values)
    except UpdateFinishedTrialError:
        return False
    forget_beat(storage, trial_id)
    return True


def trial_outcome(trial: FrozenTrial) -> Outcome | None:
    """The outcome a finished trial records (None while it is unfinished)."""
    from optuna.trial import TrialState

    names = {TrialState.COMPLETE: COMPLETE, TrialState.FAIL: FAIL, TrialState.PRUNED: PRUNED}
    if trial.state not in names:
        return None
    values = None if trial.state == TrialState.FAIL else trial.values
    several = values is not None and len(values) > 1
    return Outcome(
        names[trial.state],
        values[0] if values and not several else None,
        trial.user_attrs.get(TrialAttr.REASON),
        trial.user_attrs.get(TrialAttr.ERROR),
        tuple(values) if several else None,
    )


def join(storage: BaseStorage, trial_id: int) -> bool:
    """Start a configuration's WAITING trial, or join it RUNNING (its repeats share
    it); False once it finished."""
    from optuna.trial import TrialState

    return start(storage, trial_id) or storage.get_trial(trial_id).state == TrialState.RUNNING


def record_repeat(
    storage: BaseStorage,
    trial_id: int,
    repeat: int,
    outcome: Outcome,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Record one repeat's outcome in its configuration's trial; False once it finished.

    A complete repeat's score (one objective) is also the trial's intermediate
    value at step ``repeat``, for the pruner and optuna-dashboard.
    """
    from optuna.exceptions import UpdateFinishedTrialError

    record: dict[str, Any] = {"state": outcome.state, **outcome_attrs(outcome), **(extra or {})}
    if outcome.state == COMPLETE and outcome.values is not None:
        record["values"] = list(outcome.values)
    elif outcome.state == COMPLETE:
        record["score"] = outcome.score
    try:
        if outcome.state == COMPLETE and outcome.score is not None:
            storage.set_trial_intermediate_value(trial_id, repeat, outcome.score)
        storage.set_trial_user_attr(trial_id, TrialAttr.repeat(repeat), record)
    except UpdateFinishedTrialError:
        return False
    return True


def repeat_records(trial: FrozenTrial) -> dict[int, dict[str, Any]]:
    """The records of a configuration's repeats, by repeat index."""
    return repeat_records_of(trial.user_attrs)


def repeat_records_of(attrs: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The repeat records among a trial's user attributes, by repeat index.

    >>> repeat_records_of({"slot": "0.1", "repeat/2": {"state": "complete"}})
    {2: {'state': 'complete'}}
    """
    prefix = TrialAttr.REPEAT_PREFIX
    return {
        int(key[len(prefix) :]): dict(value)
        for key, value in attrs.items()
        if key.startswith(prefix) and isinstance(value, Mapping)
    }


def repeat_outcome(record: Mapping[str, Any]) -> Outcome:
    """The outcome a repeat's record holds.

    >>> repeat_outcome({"state": "complete", "score": 0.5}).score
    0.5
    """
    values = record.get("values")
    return Outcome(
        str(record.get("state")),
        record.get("score"),
        record.get(TrialAttr.REASON),
        record.get(TrialAttr.ERROR),
        tuple(values) if values else None,
    )


@dataclass(frozen=True)
class Assignment:
    """One run handed out to be run: its trial, numbers, params and MLflow child run.

    ``number`` is the trial's number in its study. A sweep launches the job
    with its run number (``run#N``) as ``hydra.job.num``, so job numbers, job
    folders and run names agree and continue across resumes. With repeats,
    ``repeat`` says which repeat of its configuration (its trial) the run is.
    """

    trial_id: int
    number: int
    run_name: str
    point: Point
    params: dict[str, Any]
    mlflow_run_id: str | None = None
    repeat: int | None = None
    run_number: int | None = None

    @property
    def job(self) -> int:
        """The job's number: its ``hydra.job.num`` and its folder's name."""
        return self.number if self.run_number is None else self.run_number
