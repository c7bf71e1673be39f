"""Compose a sweep's config files once, not once per job.

Hydra's launchers call ``config_loader.load_sweep_config(master, overrides)``
for every job, and Hydra composes each job's config from the files again:
defaults list, repository loads, merges, deep copies (about 2/3 of the time of
a no-op job with the basic launcher). :func:`compose_once` gives the launcher a
:class:`ComposeOnceLoader` instead, which composes once per *shape* and serves
the other jobs of that shape from a copy.

How Hydra builds a job's config (``ConfigLoaderImpl._load_configuration_impl``),
in two halves:

1. *Composition from files*: parse the overrides, read the primary config (its
   ``hydra.searchpath`` may add config sources), build the defaults list from
   the config group overrides, load and merge every config of the list, set
   the root to struct mode. Its input is the config name, the config group
   overrides (``model=large``, ``+db=mysql``, ``~db``, ``hydra/launcher=basic``),
   a ``hydra.searchpath`` override and the files. Value overrides (``a=1``,
   ``+x=1``, ``++x=1``, ``~x``, ``hydra.job.chdir=true``) play no part in it:
   Hydra sets them aside (``Overrides.config_overrides``).
2. *The job's own part*: apply the value overrides to the composed config in
   their order, then derive from the overrides
   ``hydra.overrides.hydra`` and ``hydra.overrides.task`` (their input lines),
   ``hydra.runtime.choices`` (the defaults list's choices), ``hydra.job.env_set``
   (``os.environ`` of every ``hydra.job.env_copy`` key),
   ``hydra.runtime.version``, ``version_base``, ``cwd`` and ``config_sources``,
   ``hydra.job.name`` (Hydra's task name, unless the config sets one),
   ``hydra.job.override_dirname`` (from the task overrides and
   ``hydra.job.config.override_dirname``) and ``hydra.job.config_name``; then
   ``load_sweep_config`` copies the master config's resolver cache.

Both halves are Hydra's private code, replayed in ``ivory_hydra/_compat.py``:
half 1 by ``compose_defaults``, half 2 by ``finish_composition``.

The loader keeps the result of half 1 (the *base*) per shape and, for every
job of that shape, deep-copies it and runs half 2 with Hydra's own functions,
in Hydra's order, reading the job's config as Hydra does. Two jobs have the
same shape when their override lists (the master's ``hydra.overrides.hydra``
followed by the job's overrides) have the same config name and, position by
position, the same override type (``=``, ``+``, ``++``, ``~``), key and
package, and the same text wherever the override feeds half 1: a config group
override, a ``hydra.searchpath`` override, or a dict value on a key Hydra read
as a value override (whether a dict on a group's key is a group override
depends on the group existing). The values of all other overrides may differ:
their effect is half 2, which is replayed in full. Half 1 is thus the same
function of the same input for every job of a shape, and half 2 is Hydra's
code on an identical copy: the served config equals Hydra's, key by key,
``hydra`` node included (``tests/sweeper/test_composition.py`` checks every
job of many sweeps). The loader falls back to the real loader (Hydra composes
the job) when:

* the real loader is not Hydra's ``ConfigLoaderImpl``, or the installed
  Hydra's composition code is not the code replayed here (a digest of its
  source, ``_compat.HYDRA_COMPOSITION_SHA256``; the same in Hydra 1.3.0 to 1.3.8);
* an override is a sweep (``a=1,2``): Hydra rejects it in a job's config;
* anything fails (an override Hydra cannot parse, an unknown key, a value of
  the wrong type, ``+`` on an existing key, a missing environment variable):
  Hydra then composes the job and raises its own error, word for word.

Jobs of a new shape (another config group option) compose a new base. At most
:attr:`ComposeOnceLoader.max_bases` bases are kept (least recently used
first out). Threads that ask at once for the first jobs of one shape may each
compose it; the jobs are right either way.

What serving changes: config files are read when a base is composed, not for
every job. A file edited, or a ``ConfigStore`` entry replaced, in the middle of
a sweep reaches the jobs Hydra composes after it, but not the jobs served from
an older base (they get the configs the sweep started with). Warnings Hydra
emits while composing (a deprecated automatic schema match, an unavailable
search path) come once per base instead of once per job.

The speed-up, measured with Hydra's basic launcher on ``tests/apps/sweep/conf``
(100 no-op jobs, ``test_100_jobs_launch_faster_with_the_wrapper``, three runs
on a shared 2-core machine): 7.9 to 13.0 s without the loader, 3.1 to 4.9 s
with it, 2.5x to 2.6x every time. ``load_sweep_config`` alone went from 56 to
99 ms a job to 7 to 13 ms (6.3x to 7.8x; a served job is mostly the deep copy
and Hydra's own half 2). What is left of a job's time is Hydra's ``run_job``
(its output folder, the three YAML files of ``.hydra/``, logging).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType

from ivory_hydra._compat import (
    DefaultsComposition,
    compose_defaults,
    composition_matches,
    finish_composition,
    is_hydra_config_loader,
)

if TYPE_CHECKING:
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.core.override_parser.types import Override
    from hydra.plugins.config_source import ConfigSource
    from hydra.types import HydraContext, RunMode
    from omegaconf import DictConfig

log = logging.getLogger(__name__)


def can_serve(config_loader: Any) -> bool:
    """Whether :class:`ComposeOnceLoader` can serve jobs for this config loader."""
    return is_hydra_config_loader(config_loader) and composition_matches()


@dataclass
class _Base:
    """One composition from files (half 1), and what its jobs share."""

    config: Any
    fixed: dict[int, str]  # position -> input line, where an override feeds half 1
    config_positions: tuple[int, ...]  # where the value overrides are
    known_choices: dict[str, str | None]
    sources: list[tuple[str, str, str]]


def _structure(config_name: str | None, overrides: Sequence[Override]) -> tuple[Any, ...]:
    """What two jobs of one shape share whatever their values: type, key, package.

    A ``hydra.searchpath`` override decides the config sources, hence which
    keys are config groups: its whole text is part of the structure.
    """
    items: list[Any] = [config_name]
    for override in overrides:
        item: tuple[Any, ...] = (override.type, override.key_or_group, override.package)
        if override.key_or_group == "hydra.searchpath":
            item += (override.input_line,)
        items.append(item)
    return tuple(items)


class ComposeOnceLoader(ConfigLoader):
    """A config loader that composes a sweep's jobs from one composition per shape.

    Every method delegates to the real loader, except ``load_sweep_config``
    (see the module's documentation for when it serves and when it falls
    back). It pickles without its bases (each process composes its own) and
    is safe to share between threads.

    ``served`` counts the jobs built from a base composed earlier; ``composed``
    the jobs whose config was composed from files (a new base, or a fallback);
    ``fell_back`` the part of those the real loader composed.

    >>> from hydra import initialize
    >>> from hydra.core.config_store import ConfigStore
    >>> from hydra.core.global_hydra import GlobalHydra
    >>> from hydra.types import RunMode
    >>> ConfigStore.instance().store(name="ivory_doctest_compose", node={"lr": 0.1, "n": 1})
    >>> with initialize(version_base="1.3", config_path=None, job_name="doctest"):
    ...     real = GlobalHydra.instance().config_loader()
    ...     master = real.load_configuration("ivory_doctest_compose", ["lr=1,2"], RunMode.MULTIRUN)
    ...     loader = ComposeOnceLoader(real)
    ...     jobs = [loader.load_sweep_config(master, [f"lr={lr}"]) for lr in (1, 2, 3)]
    ...     hydra_job = real.load_sweep_config(master, ["lr=3"])
    >>> [job.lr for job in jobs], jobs[2].hydra.overrides.task, jobs[2] == hydra_job
    ([1, 2, 3], ['lr=3'], True)
    >>> loader.composed, loader.served
    (1, 2)
    """

    def __init__(self, real: ConfigLoader, max_bases: int = 32) -> None:
        self.real = real
        self.max_bases = max_bases
        self._setup()

    def _setup(self) -> None:
        self.served = 0
        self.composed = 0
        self.fell_back = 0
        self._serving = can_serve(self.real)
        self._bases: OrderedDict[tuple[Any, ...], list[_Base]] = OrderedDict()
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {"real": self.real, "max_bases": self.max_bases}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.real = state["real"]
        self.max_bases = state["max_bases"]
        self._setup()

    def __getattr__(self, name: str) -> Any:
        """Attributes of the real loader that the ``ConfigLoader`` interface does not name."""
        if name.startswith("__") or "real" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.real, name)

    @property
    def stats(self) -> dict[str, int]:
        """The counters, and the number of bases kept."""
        with self._lock:
            bases = sum(len(kept) for kept in self._bases.values())
            return {
                "served": self.served,
                "composed": self.composed,
                "fell_back": self.fell_back,
                "bases": bases,
            }

    # ------------------------------------------------------------ the one it changes

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        """The config of one job of the sweep: Hydra's, composed once per shape."""
        if self._serving:
            try:
                served = self._serve(master_config, list(sweep_overrides))
            except Exception as error:  # noqa: BLE001 - Hydra composes it and raises its own error
                log.debug(f"composing {list(sweep_overrides)} with Hydra: {error!r}")
            else:
                if served is not None:
                    return served
        with self._lock:
            self.composed += 1
            self.fell_back += 1
        return self.real.load_sweep_config(master_config, list(sweep_overrides))

    def _serve(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig | None:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        hydra_overrides = OmegaConf.to_container(master_config.hydra.overrides.hydra)
        assert isinstance(hydra_overrides, list)
        overrides = [*hydra_overrides, *sweep_overrides]
        config_name = master_config.hydra.job.config_name
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        if any(override.is_sweep_override() for override in parsed):
            return None
        structure = _structure(config_name, parsed)
        with self._lock:
            base = self._find(structure, parsed)
            if base is not None:
                cfg = copy.deepcopy(base.config)
        if base is None:
            composition = compose_defaults(self.real, config_name, overrides)
            base = self._keep(structure, composition)
            cfg = composition.config  # this job takes the composition; the base has a copy
            counter = "composed"
        else:
            counter = "served"
        config_overrides = [parsed[i] for i in base.config_positions]
        finish_composition(
            cfg, parsed, config_overrides, base.known_choices, base.sources, config_name
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)
        return cfg

    def _find(self, structure: tuple[Any, ...], parsed: list[Override]) -> _Base | None:
        kept = self._bases.get(structure)
        if not kept:
            return None
        for base in kept:
            if all(parsed[i].input_line == line for i, line in base.fixed.items()):
                self._bases.move_to_end(structure)
                return base
        return None

    def _keep(self, structure: tuple[Any, ...], composition: DefaultsComposition) -> _Base:
        parsed = composition.overrides
        value_override = {id(override) for override in composition.config_overrides}
        positions = tuple(i for i, o in enumerate(parsed) if id(o) in value_override)
        fixed = {
            i: o.input_line
            for i, o in enumerate(parsed)
            if i not in positions or isinstance(o.value(), dict)
        }
        base = _Base(
            config=copy.deepcopy(composition.config),
            fixed=fixed,
            config_positions=positions,
            known_choices=composition.known_choices,
            sources=composition.sources,
        )
        with self._lock:
            self._bases.setdefault(structure, []).append(base)
            self._bases.move_to_end(structure)
            while sum(len(kept) for kept in self._bases.values()) > self.max_bases:
                oldest = next(iter(self._bases))
                self._bases[oldest].pop(0)
                if not self._bases[oldest]:
                    del self._bases[oldest]
        return base

    # ------------------------------------------------------------ delegated

    def load_configuration(
        self,
        config_name: str | None,
        overrides: list[str],
        run_mode: RunMode,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        """The real loader's composition."""
        return self.real.load_configuration(
            config_name=config_name,
            overrides=overrides,
            run_mode=run_mode,
            from_shell=from_shell,
            validate_sweep_overrides=validate_sweep_overrides,
        )

    def get_search_path(self) -> ConfigSearchPath:
        """The real loader's search path."""
        return self.real.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        """The real loader's config sources."""
        return self.real.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        """The real loader's config groups under ``parent_name``."""
        return self.real.list_groups(parent_name)

    def get_group_options(
        self,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        """The real loader's options of a config group."""
        return self.real.get_group_options(
            group_name, results_filter=results_filter, config_name=config_name, overrides=overrides
        )

    def compute_defaults_list(
        self, config_name: str | None, overrides: list[str], run_mode: RunMode
    ) -> Any:
        """The real loader's defaults list."""
        return self.real.compute_defaults_list(config_name, overrides, run_mode)


def compose_once(hydra_context: HydraContext) -> HydraContext:
    """Hydra's context with a :class:`ComposeOnceLoader`, for a sweep's launcher.

    The context comes back as it is when its loader cannot be served (not
    Hydra's own, or a Hydra whose composition code is not the one replayed)
    or is one already.
    """
    from hydra.types import HydraContext

    loader = hydra_context.config_loader
    if isinstance(loader, ComposeOnceLoader) or not can_serve(loader):
        return hydra_context
    return HydraContext(config_loader=ComposeOnceLoader(loader), callbacks=hydra_context.callbacks)
