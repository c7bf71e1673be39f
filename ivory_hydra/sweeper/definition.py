"""A Hydra sweep's definition: its overrides translated into the engine's one definition.

The params come from ``hydra.sweeper.params`` and the command line (the
command line wins on a key); each becomes a :class:`SweepParam` whose values
keep their override text, or, for a ``zip(...)`` value, a zipped dimension
(:class:`~ivory_hydra.sweeper.overrides.ZipParam`) whose members are params.
:func:`define` turns them into the engine's
:class:`~ivory_hydra.engine.definition.Definition`, which checks them, and
names the sweep's study from what identifies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.plan import Point
from ivory_hydra.core.study_names import definition_digest, previous_study_name, study_name
from ivory_hydra.core.zipped import Row, ZipError, check_name, check_zips, members_of
from ivory_hydra.engine.definition import (
    Definition,
    DefinitionError,
    check_budget_settings,
    check_settings,
)
from ivory_hydra.stores.format import TrialAttr
from ivory_hydra.sweeper.errors import (
    InvalidOverrideError,
    SweepDefinitionError,
    SweepInputError,
)
from ivory_hydra.sweeper.overrides import (
    SweepParam,
    SweepValue,
    ZipParam,
    merge_arguments,
    param_from_override,
    params_arguments,
    zip_members,
    zip_text,
    zipped_param,
)

if TYPE_CHECKING:
    from hydra.types import HydraContext
    from omegaconf import DictConfig

    from ivory_hydra.sweeper.settings import SweeperSettings


def study_name_for(
    job_name: str, sweep: SweepDefinition, exists: Callable[[str], bool] | None = None
) -> str:
    """The default study name: the job, the mode, the swept keys and a digest of the
    definition (:mod:`ivory_hydra.core.study_names`).

    With ``exists`` (whether the storage holds a study of that name), a study that the
    previous release named (``<job>-ivory-<digest>``) for this very definition keeps
    its name, so that it resumes.
    """
    identity = sweep.identity
    digest = definition_digest(identity)
    name = study_name(job_name, str(identity["mode"]), sweep.swept_keys, digest)
    if exists is None or exists(name):
        return name
    previous = previous_study_name(job_name, digest)
    return previous if exists(previous) else name


@dataclass(frozen=True)
class SweepDefinition:
    """The sweep's params and the engine's definition made of them.

    ``params`` are the params of their own, ``zips`` the zipped dimensions; both
    in argument order, as ``order`` names them.
    """

    params: tuple[SweepParam, ...]
    definition: Definition
    zips: tuple[ZipParam, ...] = ()
    order: tuple[str, ...] = ()  # the names of params and zipped dimensions as given

    @property
    def by_name(self) -> dict[str, SweepParam]:
        """The params by config key in argument order, a zipped dimension's members in
        its place."""
        plain = {p.name: p for p in self.params}
        zips = {z.name: z.members for z in self.zips}
        found: dict[str, SweepParam] = {}
        for name in self.order or [*plain, *zips]:
            found.update({m.name: m for m in zips[name]} if name in zips else {name: plain[name]})
        return found

    @property
    def members(self) -> list[SweepParam]:
        """The members of every zipped dimension."""
        return [member for z in self.zips for member in z.members]

    @property
    def swept_keys(self) -> list[str]:
        """The keys whose values differ between configurations (repeats left out), in
        argument order; a zipped dimension by its name."""
        repeat = {name for values in self.definition.plan.repeats for name in values}
        plain = {p.name: p for p in self.params}
        return [
            name if name not in plain else plain[name].key
            for name in self.order or [*plain, *(z.name for z in self.zips)]
            if name not in repeat and (name not in plain or plain[name].swept)
        ]

    @property
    def identity(self) -> dict[str, Any]:
        """What identifies the sweep: its settings and every param's value space.

        ``n_trials``, the sampler and the pruner may change between runs. A
        zipped dimension is identified by its rows.
        """
        plan = self.definition.plan
        return {
            "mode": plan.mode,
            "use_best_param": plan.use_best_param if plan.mode == "chain" else None,
            **self.definition.objectives.stored,
            "params": {
                **{p.key: p.describe() for p in self.params},
                **{z.name: z.describe() for z in self.zips},
            },
        }

    def overrides(self, point: Point) -> list[str]:
        """The job overrides of a point, in argument order (a row's members in its place).

        Params a custom search space added (``+w``) come last.
        """
        by_name = self.by_name
        known = [by_name[n].override(point.params[n]) for n in by_name if n in point.params]
        extra = [f"{k}={v.text}" for k, v in point.params.items() if k not in by_name]
        return known + extra

    def attrs_of(self, point: Point) -> dict[str, Any]:
        """A point's own trial attributes: its overrides."""
        return {TrialAttr.OVERRIDES: " ".join(self.overrides(point))}

    def sampled(self, name: str, value: Any) -> SweepValue | Row:
        """A value a sampler picked, as the override value of its param (or a zipped row)."""
        for zipped in self.zips:
            if zipped.name == name:
                return zipped.sampled(value)
        param = self.by_name.get(name) or SweepParam(name, ())
        return param.sampled(value)


def define(
    settings: SweeperSettings,
    config: DictConfig,
    hydra_context: HydraContext,
    arguments: Sequence[str],
) -> SweepDefinition:
    """Parse the sweep's params and check its definition; nothing is written."""
    mode = settings.mode
    try:  # the settings first: they are wrong whatever the params
        check_settings(
            mode,
            settings.direction,
            settings.metric,
            settings.aggregate,
            settings.heartbeat_interval,
            settings.grace_period,
            settings.storage_retry,
        )
        check_budget_settings(settings.timeout, settings.max_failures)
    except DefinitionError as error:
        raise SweepInputError(f"hydra.sweeper.{error.setting}: {error.message}") from None
    repeat = _names(settings.repeat)
    entries = parse(settings, config, hydra_context, arguments, repeat)
    params = [e for e in entries if isinstance(e, SweepParam)]
    zips = [e for e in entries if isinstance(e, ZipParam)]
    swept = {e.name: list(_values(e)) for e in entries if e.swept}
    optimize = mode == "optimize"
    space = _space([e for e in entries if e.name not in repeat]) if optimize else {}
    rows = {z.name: z.rows for z in zips if z.swept and z.name not in repeat} if optimize else {}
    try:
        definition = Definition.build(
            mode=mode,
            fixed={e.name: _values(e)[0] for e in entries if not e.swept},
            swept={k: v for k, v in swept.items() if k in repeat} if optimize else swept,
            direction=settings.direction,
            metric=settings.metric,
            use_best_param=settings.use_best_param,
            n_trials=settings.n_trials,
            space=space,
            log={p.name for p in (*params, *(m for z in zips for m in z.members)) if p.log},
            defaults=_defaults(config, hydra_context, dict(members_of(swept)))
            if mode == "chain"
            else None,
            sampler=settings.sampler,
            pruner=settings.pruner,
            extend=_extender(settings.custom_search_space, config),
            value_of=lambda value: value.value,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
            storage_retry=settings.storage_retry,
            repeat=repeat,
            aggregate=settings.aggregate,
            rows=rows,
            timeout=settings.timeout,
            max_failures=settings.max_failures,
        )
    except DefinitionError as error:
        raise SweepInputError(f"hydra.sweeper.{error.setting}: {error.message}") from None
    order = tuple(e.name for e in entries)
    return SweepDefinition(tuple(params), definition, tuple(zips), order)


def _values(entry: SweepParam | ZipParam) -> tuple[Any, ...]:
    """A param's values, or a zipped dimension's rows."""
    return entry.rows if isinstance(entry, ZipParam) else entry.values


def check_values(sweep: SweepDefinition, config: DictConfig, hydra_context: HydraContext) -> None:
    """Check that the job config accepts every value (a zipped member's error names its
    dimension); compose nothing per job."""
    from ivory_hydra.sweeper.validation import validate_sweep

    checked = [p.checked() for p in (*sweep.params, *sweep.members)]
    try:
        validate_sweep(hydra_context.config_loader, config, checked)
    except InvalidOverrideError as error:
        owner = next((z for z in sweep.zips for m in z.members if m.name == error.param), None)
        if owner is None:
            raise
        raise InvalidOverrideError(
            f"hydra.sweeper.params.{owner.name}: zipped dimension {owner.name!r}: "
            f"member {error.param!r}: {error}",
            error.param,
        ) from None


def _names(repeat: Any) -> list[str]:
    """``repeat`` as a list of names (one name is a list of one).

    >>> _names("fold"), _names(["fold", "seed"]), _names(None)
    (['fold'], ['fold', 'seed'], [])
    """
    if repeat is None:
        return []
    return [repeat] if isinstance(repeat, str) else [str(name) for name in repeat]


def parse(
    settings: SweeperSettings,
    config: DictConfig,
    hydra_context: HydraContext,
    arguments: Sequence[str],
    repeat: Sequence[str] = (),
) -> list[SweepParam | ZipParam]:
    """Turn config params and command-line overrides into sweep params and zipped
    dimensions, in argument order.

    In optimize mode a repeat param keeps its listed values (every repeat runs).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    # Unresolved: these raw strings may hold ${hydra.job.num} and the like.
    node = OmegaConf.select(config, "hydra.overrides.hydra")
    hydra_overrides = [] if node is None else OmegaConf.to_container(node, resolve=False)
    config_arguments = params_arguments(settings.params, [str(o) for o in hydra_overrides])
    for argument in arguments:
        key, _, value = argument.partition("=")
        if zip_text(value) is not None:
            name = key.lstrip("+~")
            raise SweepDefinitionError(
                f"override {argument!r}: a zipped dimension is written under "
                f"hydra.sweeper.params, quoted: hydra.sweeper.params.{name}='{zip_text(value)}' "
                "(Hydra's own grammar has no zip())"
            )
    merged = merge_arguments(config_arguments, arguments)
    parser = OverridesParser.create(config_loader=hydra_context.config_loader)

    def parsed(argument: str, optimize: bool) -> SweepParam:
        try:
            [override] = parser.parse_overrides([argument])
        except Exception as error:  # noqa: BLE001 - Hydra's parse errors vary
            raise SweepDefinitionError(f"override {argument!r}: {error}") from None
        return param_from_override(override, optimize=optimize)

    entries: list[SweepParam | ZipParam] = []
    for argument in merged:
        key, _, value = argument.partition("=")
        text = zip_text(value)
        if text is not None:
            entries.append(_zipped(key, text, lambda member: parsed(member, False)))
            continue
        listed = key.lstrip("+~") in repeat
        entries.append(parsed(argument, settings.mode == "optimize" and not listed))
    zips = {e.name: [m.name for m in e.members] for e in entries if isinstance(e, ZipParam)}
    if zips:
        others = {e.name: e.swept for e in entries if isinstance(e, SweepParam)}
        try:
            check_zips(
                zips, others, repeat, lambda name: _is_config_key(config, hydra_context, name)
            )
        except ZipError as error:
            raise SweepDefinitionError(f"hydra.sweeper.params.{error.dimension}: {error}") from None
    return entries


def _zipped(name: str, text: str, parsed: Callable[[str], SweepParam]) -> ZipParam:
    """A zipped dimension from its ``zip(...)`` text; errors name the dimension."""
    where = f"hydra.sweeper.params.{name}"
    try:
        check_name(name)
        try:
            members = zip_members(text)
        except ValueError as error:
            raise ZipError(name, str(error)) from None
        params = []
        for key, values in members:
            if key.lstrip("+").split(".")[0].split("/")[0] == "hydra":
                raise ZipError(name, f"member {key!r} is Hydra's own config; a zip sets the job's")
            try:
                params.append(parsed(f"{key}={values}"))
            except SweepInputError as error:
                raise ZipError(name, f"member {key!r}: {error}") from None
        return zipped_param(name, params)
    except ZipError as error:
        raise SweepDefinitionError(f"{where}: {error}") from None


def _is_config_key(config: DictConfig, hydra_context: HydraContext, name: str) -> bool:
    """Whether ``name`` is a key of the primary config or one of its config groups."""
    from ivory_hydra.sweeper.validation import is_config_group

    return name in config or is_config_group(hydra_context.config_loader, name)


def _space(entries: Sequence[SweepParam | ZipParam]) -> dict[str, Any]:
    """Optimize mode's search space: an interval, or the values listed (a zipped
    dimension's rows by their labels)."""
    from optuna.distributions import CategoricalDistribution

    from ivory_hydra.stores.distributions import interval_distribution, optuna_value

    space: dict[str, Any] = {}
    for p in entries:
        if not p.swept:
            continue
        if isinstance(p, ZipParam):
            space[p.name] = CategoricalDistribution(list(dict.fromkeys(p.describe())))
        elif p.space is not None:
            space[p.name] = interval_distribution(p.space)
        else:
            choices = dict.fromkeys(optuna_value(v.value) for v in p.values)
            space[p.name] = CategoricalDistribution(list(choices))
    return space


def _extender(path: str | None, config: DictConfig) -> Any:
    """``custom_search_space``: a function of (config, trial) that adds params."""
    if not path:
        return None
    from hydra.utils import get_method

    try:
        function = get_method(path)
    except Exception as error:  # noqa: BLE001 - import errors of user code
        raise SweepInputError(
            f"hydra.sweeper.custom_search_space={path}: cannot import it: {error}"
        ) from None
    return lambda trial: function(config, trial)


def _defaults(
    config: DictConfig, hydra_context: HydraContext, swept: Mapping[str, Any]
) -> dict[str, Any]:
    """The config value of each swept param, for jobs that run before its chain step.

    A config group's default is its chosen option; an addition (``+key``)
    has none. Hydra applied the range strings to the primary config as plain
    strings, so the defaults come from one composition without the swept keys.
    """
    from omegaconf import OmegaConf

    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    kept = [o for o in task if str(o).split("=", 1)[0].lstrip("+~") not in swept]
    try:
        composed = hydra_context.config_loader.load_sweep_config(
            master_config=config, sweep_overrides=kept
        )
    except Exception:  # noqa: BLE001 - validation already passed; defaults are extras
        return {}
    choices = OmegaConf.select(composed, "hydra.runtime.choices") or {}
    found: dict[str, Any] = {}
    for name in swept:
        if name in choices:
            found[name] = choices[name]
            continue
        try:
            node = OmegaConf.select(composed, name, throw_on_missing=True)
        except Exception:  # noqa: BLE001 - missing, or an interpolation that fails
            continue
        if node is not None and not OmegaConf.is_config(node):
            found[name] = node
    return found
