"""Chain decisions: each stepped param is fixed at its best value (a part of the engine).

The best value is the one whose run scored best (ties to the earliest; failed,
NaN and unscored runs never win; the first value when none scored). The first
decision recorded stands, for every worker and every rerun. A zipped dimension
steps as one param: its decision fixes every member (its stored value maps each
member to its value).
"""

from __future__ import annotations

import logging
from typing import Any

from ivory_hydra.core.display import format_value
from ivory_hydra.core.zipped import Row
from ivory_hydra.engine.configurations import Configurations
from ivory_hydra.signals import shielded
from ivory_hydra.stores.format import StudyAttr

log = logging.getLogger(__name__)


class Deciding(Configurations):
    """Chain decisions."""

    def decided(self, step: int) -> bool:
        """Whether ``step`` is over: decided by another process (or an earlier run of
        the command) with none of its jobs left to run (its winner is then applied).

        A decision outlives the run of the command that made it; a failed job does
        not: a step decided while one of its jobs failed is walked again, so that
        the job runs again (the decision stands), as a failed job of any step does.
        """
        name = self.plan.stepping(step)
        if name is None or not self.settings.use_best_param:
            return False
        if self.coordination.decision(name) is None:
            return False
        if any(f"{step}.{i}" not in self.board.done for i in range(self.plan.size(step))):
            return False
        self.decide(step)
        return True

    @shielded()
    def decide(self, step: int) -> None:
        """Fix the chain param of ``step`` at its best value (a decision made once stands)."""
        name = self.plan.stepping(step)
        if name is None or not self.settings.use_best_param:
            return
        values = self.plan.swept[name]
        stored = self.decisions.get(name) or self.coordination.decision(name)
        if stored is not None and 0 <= int(stored.get("index", -1)) < len(values):
            self.decisions[name] = stored
        else:
            scores = [self.board.score_of(f"{step}.{i}") for i in range(len(values))]
            index = self.settings.objectives.best_index(scores) or 0
            winner = self.board.done.get(f"{step}.{index}")
            decision = {
                "value": self.value_of(values[index]),
                "index": index,
                "score": winner.outcome.score if winner else None,
                "run": winner.run_name if winner else None,
            }
            self.decisions[name] = self.coordination.decide(name, decision)
            self.study.set_attrs({StudyAttr.DECISIONS: self.decisions})
        winner = self.winners[name] = values[int(self.decisions[name]["index"])]
        value = self.decisions[name]["value"]
        shown = winner.label if isinstance(winner, Row) else format_value(value)
        log.info(f"Chain: {name} is fixed at {shown}")

    def chain_steps(
        self,
    ) -> list[tuple[str, list[Any], list[float | None], int | None, list[float | None]]]:
        """Each chain step as (param, its values, their scores, the winner's index, the
        scores' standard deviations).

        A value's score is None when its run failed, went unscored or has not run.
        With repeats a score is its configuration's aggregate, beside the standard
        deviation of its repeats (None without repeats).
        """
        steps = []
        for step in range(self.plan.num_steps):
            name = self.plan.stepping(step)
            if name is None:
                continue
            values = self.plan.swept[name]
            runs = [self.board.done.get(f"{step}.{i}") for i in range(len(values))]
            scores = [r.outcome.score if r is not None else None for r in runs]
            spreads = [r.std if r is not None and r.score is not None else None for r in runs]
            decision = self.decisions.get(name)
            winner = int(decision["index"]) if decision and "index" in decision else None
            shown = [v.label if isinstance(v, Row) else self.value_of(v) for v in values]
            steps.append((name, shown, scores, winner, spreads))
        return steps
