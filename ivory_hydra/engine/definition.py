"""The definition of a sweep, built and checked once, for both front ends.

The Hydra sweeper and the task API translate their inputs (overrides, Python
values) into the same pieces: the mode, the fixed and swept values, the
search space, the objectives, the sampler and pruner, the liveness timings.
:meth:`Definition.build` checks them all before anything is written, and the
engine, the jobs' ticket and the sampler are made from the result. A bad input
is a :class:`DefinitionError` that names its setting.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.aggregate import check_aggregate
from ivory_hydra.core.budgets import Budget, check_budget
from ivory_hydra.core.objectives import Objectives
from ivory_hydra.core.plan import Plan, check_mode, split_repeats
from ivory_hydra.core.zipped import Row, flatten, members_of
from ivory_hydra.errors import IvoryError
from ivory_hydra.stores.liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL
from ivory_hydra.stores.retry import STORAGE_RETRY

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from ivory_hydra.job.ticket import Ticket
    from ivory_hydra.stores.sampling import Sampling
    from ivory_hydra.stores.study import Study


@dataclass(frozen=True)
class Settings:
    """How the engine scores runs, decides chain steps and keeps runs alive."""

    objectives: Objectives = field(default_factory=Objectives)
    use_best_param: bool = True
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    grace_period: float = GRACE_PERIOD


#: The sampler of optimize mode when none is given.
DEFAULT_SAMPLER = {"_target_": "optuna.samplers.TPESampler"}


class DefinitionError(IvoryError, ValueError):
    """A sweep that cannot be run as defined; ``setting`` names what is wrong."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.message = message
        super().__init__(f"{setting}: {message}")


def build(setting: str, spec: Any, **kwargs: Any) -> Any:
    """An object from a node (``_target_`` and its arguments), or ``spec`` itself.

    >>> build("pruner", {"_target_": "optuna.pruners.NopPruner"}).__class__.__name__
    'NopPruner'
    >>> build("pruner", {"patience": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ivory_hydra.engine.definition.DefinitionError: pruner: give a node with a _target_, ...
    """
    if not isinstance(spec, Mapping):
        return spec
    target = spec.get("_target_")
    if not target:
        raise DefinitionError(setting, f"give a node with a _target_, not {dict(spec)!r}")
    from hydra.utils import instantiate

    try:
        return instantiate(dict(spec), **kwargs)
    except Exception as error:  # noqa: BLE001 - imports and constructors fail in many ways
        cause = error.__cause__ or error
        raise DefinitionError(
            setting, f"cannot make {target}: {type(cause).__name__}: {cause}"
        ) from None


def grid(space: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The grid sampler's values of a search space (every param needs listed values)."""
    from optuna.distributions import CategoricalDistribution

    values = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            values[name] = list(distribution.choices)
        elif getattr(distribution, "step", None) is not None and not distribution.log:
            count = int(round((distribution.high - distribution.low) / distribution.step)) + 1
            values[name] = [distribution.low + i * distribution.step for i in range(count)]
        else:
            raise DefinitionError(
                "sampler",
                f"the grid sampler needs listed values; param {name!r} is continuous "
                "(give it a step or :num)",
            )
    return values


@dataclass(frozen=True)
class Definition:
    """A sweep (or task) as the engine runs it."""

    plan: Plan
    objectives: Objectives
    distributions: Mapping[str, BaseDistribution]  # what each trial records, per param
    space: Mapping[str, BaseDistribution] = field(default_factory=dict)  # optimize mode
    sampler: Any = None  # optimize mode: a node with _target_, a sampler, or None (TPE)
    pruner: Any = None  # a node with _target_, a pruner, or None
    extend: Callable[[Any], None] | None = None  # adds params to a sampled trial
    defaults: Mapping[str, Any] = field(default_factory=dict)  # config values of swept params
    value_of: Callable[[Any], Any] = lambda value: value  # a plan value as stored
    aggregate: str = "mean"  # a configuration's score from its repeats' scores
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    grace_period: float = GRACE_PERIOD
    storage_retry: float = STORAGE_RETRY  # seconds a lost storage connection is waited out
    #: optimize mode: each zipped dimension's rows, which the sampler picks as one
    #: categorical param of the space (a choice is a row's label)
    rows: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)  # timeout and max_failures, per invocation

    @classmethod
    def build(
        cls,
        *,
        mode: str,
        fixed: Mapping[str, Any],
        swept: Mapping[str, list[Any]],
        direction: Any = "minimize",
        metric: Any = None,
        use_best_param: bool = True,
        n_trials: Any = None,
        repeat: Any = (),
        aggregate: Any = "mean",
        space: Mapping[str, BaseDistribution] | None = None,
        log: Collection[str] = (),
        defaults: Mapping[str, Any] | None = None,
        sampler: Any = None,
        pruner: Any = None,
        extend: Callable[[Any], None] | None = None,
        value_of: Callable[[Any], Any] = lambda value: value,
        heartbeat_interval: Any = HEARTBEAT_INTERVAL,
        grace_period: Any = GRACE_PERIOD,
        storage_retry: Any = STORAGE_RETRY,
        rows: Mapping[str, Any] | None = None,
        timeout: Any = None,
        max_failures: Any = None,
    ) -> Definition:
        """Check every piece of a sweep and put them together; raise :class:`DefinitionError`.

        A zipped dimension's values are its rows (:class:`~ivory_hydra.core.zipped.Row`),
        in ``fixed`` or ``swept``, or in optimize mode in ``rows`` with a categorical of
        their labels in ``space``; its members are recorded, each as a param.
        """
        from ivory_hydra.stores.distributions import distributions_for, fits

        objectives = check_settings(
            mode, direction, metric, aggregate, heartbeat_interval, grace_period, storage_retry
        )
        budget = check_budget_settings(timeout, max_failures)
        repeat = [repeat] if isinstance(repeat, str) else list(repeat or ())
        try:
            swept, repeats = split_repeats(swept, repeat)
        except ValueError as error:
            raise DefinitionError("repeat", str(error)) from None
        repeats = tuple(flatten(r) for r in repeats)  # a zipped dimension's rows as repeats
        rows = {k: tuple(v) for k, v in (rows or {}).items() if k not in repeat}
        space = {k: v for k, v in (space or {}).items() if k not in repeat}
        if mode == "optimize":
            if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
                raise DefinitionError(
                    "n_trials", f"optimize mode needs n_trials >= 1 (the total), not {n_trials!r}"
                )
            if not space and extend is None:
                raise DefinitionError(
                    "params",
                    "optimize mode needs a search space: a range (lr=1e-5_1e-1.log), "
                    "interval(), range(), choice() or a list of values, or a "
                    "custom_search_space",
                )
            plan = Plan("optimize", dict(fixed), {}, trials=n_trials, repeats=repeats)
        else:
            plan = Plan(mode, dict(fixed), dict(swept), use_best_param, repeats=repeats)
        values = {k: [value_of(v)] for k, v in flatten(fixed).items()}
        if mode != "optimize":
            values.update({k: [value_of(v) for v in vs] for k, vs in members_of(swept)})
        values.update({k: [value_of(v) for v in vs] for k, vs in members_of(rows)})
        kept = {
            k: d
            for k, d in (defaults or {}).items()
            if k in values and fits(values[k], d, k in log)
        }
        distributions = distributions_for(
            {k: [*vs, kept[k]] if k in kept else vs for k, vs in values.items()}, log
        )
        distributions.update(space)
        definition = cls(
            plan,
            objectives,
            distributions,
            space,
            sampler,
            pruner,
            extend,
            kept,
            _row_aware(value_of),
            aggregate,
            float(heartbeat_interval),
            float(grace_period),
            float(storage_retry),
            rows,
            budget,
        )
        if mode == "optimize":
            definition.make_sampler(0)  # fails here, named, if it cannot be made
        definition.make_pruner()
        return definition

    @property
    def settings(self) -> Settings:
        """How the engine scores, decides and keeps runs alive."""
        return Settings(
            self.objectives, self.plan.use_best_param, self.heartbeat_interval, self.grace_period
        )

    def make_sampler(self, done: int) -> Any:
        """Optimize mode's sampler; on a resumed sweep a seed moves on by the trials made.

        Otherwise a seeded sampler would draw its first points again. A grid
        sampler given as a node gets the search space as its grid.
        """
        spec = self.sampler if self.sampler is not None else DEFAULT_SAMPLER
        if not isinstance(spec, Mapping):
            return spec
        node = dict(spec)
        if node.get("seed") is not None and done:
            node["seed"] = int(node["seed"]) + done
        if str(node.get("_target_", "")).endswith("GridSampler"):
            return build("sampler", node, search_space=grid(self.space))
        return build("sampler", node)

    def make_pruner(self) -> Any:
        """The pruner (None without one)."""
        return None if self.pruner is None else build("pruner", self.pruner)

    def sampling(self, study: Study) -> Sampling:
        """Optimize mode's sampling, once the study is open."""
        from ivory_hydra.stores.sampling import Sampling

        sampler = self.make_sampler(len(study.trials()))
        return Sampling(study.storage, study.name, sampler, self.space, self.extend)

    def ticket(
        self,
        storage: str,
        tracking_uri: str | None,
        study_name: str,
        budget: Budget | None = None,
    ) -> Ticket:
        """What every job of the sweep needs to own its trial, in any process
        (``budget``: this invocation's, once started)."""
        from ivory_hydra.job.ticket import Ticket

        return Ticket(
            storage=storage,
            tracking_uri=tracking_uri,
            objectives=self.objectives,
            study_name=study_name,
            pruner=self.pruner,
            heartbeat_interval=self.heartbeat_interval,
            storage_retry=self.storage_retry,
            budget=budget or self.budget,
        )


def _row_aware(value_of: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``value_of`` that stores a zipped row as its members' values.

    >>> _row_aware(str)(Row("arch", 0, (("model", "vit"), ("lr", 0.1))))
    {'model': 'vit', 'lr': '0.1'}
    """

    def stored(value: Any) -> Any:
        if isinstance(value, Row):
            return {name: value_of(v) for name, v in value.members}
        return value_of(value)

    return stored


def check_budget_settings(timeout: Any, max_failures: Any) -> Budget:
    """The budget of every invocation, checked (a front end checks it first); raises
    :class:`DefinitionError`."""
    try:
        check_budget(timeout, max_failures)
    except ValueError as error:
        setting, _, message = str(error).partition(": ")
        raise DefinitionError(setting, message) from None
    return Budget(None if timeout is None else float(timeout), max_failures)


def check_settings(
    mode: Any,
    direction: Any = "minimize",
    metric: Any = None,
    aggregate: Any = "mean",
    heartbeat_interval: Any = HEARTBEAT_INTERVAL,
    grace_period: Any = GRACE_PERIOD,
    storage_retry: Any = STORAGE_RETRY,
) -> Objectives:
    """Check the settings that need no params (a front end checks them first); return
    the objectives. Raises :class:`DefinitionError`."""
    try:
        check_mode(mode)
    except ValueError as error:
        raise DefinitionError("mode", str(error)) from None
    try:
        objectives = Objectives.of(direction, metric)
    except ValueError as error:
        setting, _, message = str(error).partition(": ")
        raise DefinitionError(setting, message) from None
    if mode == "chain" and not objectives.single:
        raise DefinitionError(
            "direction",
            "chain mode fixes each param at its best value, so it takes one direction, "
            "not a list; use mode=optimize for several objectives",
        )
    try:
        check_aggregate(aggregate)
    except ValueError as error:
        raise DefinitionError("aggregate", str(error)) from None
    _check_liveness(heartbeat_interval, grace_period)
    if isinstance(storage_retry, bool) or not isinstance(storage_retry, (int, float)):
        raise DefinitionError("storage_retry", f"a number of seconds, not {storage_retry!r}")
    if storage_retry < 0:
        raise DefinitionError("storage_retry", f"must be >= 0 seconds, not {storage_retry}")
    return objectives


def _check_liveness(interval: Any, grace: Any) -> None:
    for setting, value in (("heartbeat_interval", interval), ("grace_period", grace)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise DefinitionError(setting, f"must be a positive number of seconds, not {value!r}")
    if grace <= interval:
        raise DefinitionError(
            "grace_period",
            f"{grace:g} s must be longer than heartbeat_interval ({interval:g} s)",
        )
