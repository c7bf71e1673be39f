"""What a resume would find in a stored sweep, for the plan preview (nothing is written).

The same reading as the engine's (:mod:`~ivory_hydra.engine.recovery`), without
its writes: finished trials count as the engine counts them (a
:class:`~ivory_hydra.engine.results.Scoreboard`), a chain decision that stands
fixes its param, and an unfinished trial's job runs again (unless a live
process still runs it, which only the sweep itself can tell).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.display import format_value
from ivory_hydra.core.outcomes import FAIL
from ivory_hydra.core.preview import Progress
from ivory_hydra.engine.results import Finished, Scoreboard
from ivory_hydra.stores import trials as stored_trials
from ivory_hydra.stores.format import StudyAttr, TrialAttr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from ivory_hydra.engine.definition import Definition


def progress_of(
    definition: Definition, trials: Iterable[FrozenTrial], study_attrs: Mapping[str, Any]
) -> tuple[Progress, int]:
    """What a resume of ``definition`` would leave out, and how many trials are unfinished."""
    plan = definition.plan
    board = Scoreboard(definition.objectives, final_failures=plan.mode == "optimize")
    kept: dict[str, set[int]] = {}
    unfinished = 0
    for trial in trials:
        slot = trial.user_attrs.get(TrialAttr.SLOT)
        if slot is None:
            continue
        if trial.state.is_finished():
            board.note(Finished.from_trial(trial))
            continue
        unfinished += 1
        for index, record in stored_trials.repeat_records(trial).items():
            if record.get("state") != FAIL:  # a finished repeat is kept when its trial reruns
                kept.setdefault(str(slot), set()).add(index)
    for slot, records in board.kept.items():
        kept.setdefault(slot, set()).update(records)
    winners, decided = _decisions(definition, study_attrs.get(StudyAttr.DECISIONS) or {})
    failed = {slot: run.run_name for slot, run in board.failed.items() if slot not in board.done}
    progress = Progress(frozenset(board.done), kept, failed, winners, decided)
    return progress, unfinished


def _decisions(
    definition: Definition, stored: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The chain decisions that stand: each param's chosen value, and as text."""
    plan = definition.plan
    winners: dict[str, Any] = {}
    decided: dict[str, str] = {}
    if plan.mode != "chain" or not plan.use_best_param:
        return winners, decided
    for step in range(plan.num_steps):
        name = plan.stepping(step)
        decision = stored.get(name) if name is not None else None
        if name is None or not isinstance(decision, Mapping):
            continue
        values = plan.swept[name]
        index = int(decision.get("index", -1))
        if not 0 <= index < len(values):
            continue
        winners[name] = values[index]
        value = definition.value_of(values[index])
        members = value if isinstance(value, Mapping) else {name: value}
        text = " ".join(f"{k}={format_value(v)}" for k, v in members.items())
        if decision.get("run"):
            text += f" ({decision['run']}, score {format_value(decision.get('score'))})"
        decided[name] = text
    return winners, decided
