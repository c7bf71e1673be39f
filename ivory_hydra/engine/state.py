"""What one engine holds while it walks a plan: its settings, stores and progress.

The engine's concepts (recovery, issuing runs, chain decisions, opening and
closing, the walk) are written in modules of their own as parts of one
:class:`~ivory_hydra.engine.engine.Engine`; this is the state they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.budgets import Budget
from ivory_hydra.core.plan import Point
from ivory_hydra.engine.budgets import Budgets
from ivory_hydra.engine.results import Scoreboard

if TYPE_CHECKING:
    from ivory_hydra.engine.coordination import Coordination
    from ivory_hydra.engine.definition import Definition
    from ivory_hydra.stores.ledger import Ledger
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.sampling import Sampling
    from ivory_hydra.stores.study import Study
    from ivory_hydra.stores.trials import Assignment


@dataclass
class Configuration:
    """A configuration issued by this process: its trial, MLflow run and repeats."""

    trial_id: int
    number: int
    name: str
    point: Point
    params: dict[str, Any]  # the configuration's own (no repeat param)
    run_id: str | None
    missing: list[int]  # the repeats still to run
    concluded: bool = False
    repeats: dict[int, Assignment] = field(default_factory=dict)  # issued here


class EngineState:
    """The state shared by the engine's parts."""

    def __init__(
        self,
        *,
        study: Study,
        ledger: Ledger,
        coordination: Coordination,
        mirror: MlflowMirror,
        experiment: str,
        task: str,
        definition: Definition,
        parent_run_id: str | None = None,
        attrs_of: Callable[[Point], dict[str, Any]] = lambda point: {},
        sampling: Sampling | None = None,
        wrap: Callable[[str, Any], Any] = lambda name, value: value,
        show: Callable[[str], None] = print,
        budget: Budget | None = None,
    ) -> None:
        self.study = study
        self.ledger = ledger
        self.coordination = coordination
        self.mirror = mirror
        self.experiment = experiment
        self.task = task
        self.definition = definition
        self.plan = definition.plan
        self.distributions = dict(definition.distributions)
        self.settings = definition.settings
        self.parent_run_id = parent_run_id
        self.value_of = definition.value_of  # a plan value as it is shown and stored
        self.attrs_of = attrs_of  # a point's own trial attributes (its overrides)
        self.defaults = dict(definition.defaults)  # config values of params not yet stepped
        self.sampling = sampling  # optimize mode
        self.wrap = wrap  # a sampled value as a plan value
        self.show = show  # prints a run line
        self.budgets = Budgets(budget or definition.budget, ledger)  # this invocation's
        self.board = Scoreboard(self.settings.objectives, final_failures=sampling is not None)
        self.decisions: dict[str, dict[str, Any]] = {}
        self.winners: dict[str, Any] = {}
        self.elsewhere: dict[str, int] = {}  # slot -> trial id a live process elsewhere runs
        self.waiting: dict[str, tuple[int, int]] = {}  # slot -> (step, index) taken, not ours
        self.in_flight: list[Assignment] = []  # handed out, not yet collected
        self.collected: set[int] = set()  # trial ids
        self.configurations: dict[int, Configuration] = {}  # with repeats: by trial id
        self.collected_repeats: set[tuple[int, int | None]] = set()  # (trial id, repeat)
        self.pruner = definition.make_pruner()  # prunes configurations across repeats
        self._pruning_study: Any = None
        self.issued = 0  # runs handed out by this process (and not given back unrun)
        self.mine: set[int] = set()  # their trial numbers
        self.walked = False  # the walk ended with every step resolved
        self.closed = False
        self.closer: bool | None = None  # this process closes the sweep (once it left)
        self.mirror_lags = False  # the closer left MLflow behind the storage

    @property
    def names(self) -> list[str]:
        """The MLflow metric name of each objective."""
        return self.settings.objectives.metric_names

    @property
    def done(self) -> int:
        """How many runs of the plan finished (complete or unscored)."""
        return len(self.board.done)

    def trial_id(self, number: int) -> int:
        """The storage's id of a trial of this study."""
        return self.study.storage.get_trial_id_from_study_id_trial_number(
            self.study.study_id, number
        )
