"""ComposeOnceLoader: every job's config equals Hydra's own composition, key by key.

Each sweep below builds a master config as ``--multirun`` does, then asks for
every job's config twice: from the wrapper (``ComposeOnceLoader``) and from a
plain ``ConfigLoaderImpl`` (Hydra). The two must be equal

* raw: ``OmegaConf.to_container(cfg, resolve=False)``, compared key by key
  (the assertion names the keys that differ), ``hydra`` node included;
* resolved: every key resolved on its own, with the value or the error
  (type and message) it gives: a job config has keys that cannot resolve yet
  (``hydra.job.num`` is ``???`` until the launcher sets it, so do
  ``hydra.runtime.output_dir`` and the job log file that reads it);
* node by node: type of every value (``OmegaConf.get_type``), interpolation
  and missing markers, struct and read-only flags.

Nothing is left out. The one field that could differ between two
compositions is a timestamp: ``hydra.run.dir`` and ``hydra.sweep.dir`` read
``${now:...}``, whose value Hydra caches in the config; a job's config gets
the master's cache (``load_sweep_config`` copies it). ``master_config`` resolves
both in the master first, as a sweep does before launching, so that the two
compositions of a job read the same cached time (otherwise they resolve
``now`` when compared, and two compositions a second apart would differ).
Where there is no such cache (``load_configuration``, and the copies of the
hydra node a launched job gets), the ``frozen_now`` fixture stops Hydra's clock.

Errors must be Hydra's: same exception type, message and cause.

The last part runs real launches (Hydra's BasicLauncher, and joblib's in a
slow test) with and without the wrapper, and a slow test measures 100 jobs.
"""

from __future__ import annotations

import copy
import datetime
import importlib.util
import itertools
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.utils import create_config_search_path
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.core.plugins import Plugins
from hydra.core.utils import JobRuntime, JobStatus, setup_globals
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext, RunMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ValidationError

from ivory_hydra import _compat
from ivory_hydra.sweeper.composition import ComposeOnceLoader, compose_once

APPS = Path(__file__).parents[1] / "apps"
CONF = APPS / "composition" / "conf"
SWEEP_CONF = APPS / "sweep" / "conf"
EXTRA = APPS / "composition" / "extra"
EXTRA2 = APPS / "composition" / "extra2"


@dataclass
class Inner:
    depth: int = 2
    width: float = 1.0


@dataclass
class TypedConfig:
    lr: float = 0.1
    steps: int = 10
    name: str = "typed"
    opt: int | None = None
    tags: list[str] = field(default_factory=lambda: ["a"])
    inner: Inner = field(default_factory=Inner)


ConfigStore.instance().store(name="ivory_composition_typed", node=TypedConfig)


@pytest.fixture(autouse=True)
def job_name():
    """Hydra's resolvers (``now``, ``hydra``) and task name (``JobRuntime``), as an app has."""
    setup_globals()
    runtime = JobRuntime()
    saved = runtime.get("name")
    runtime.set("name", "composition_app")
    yield
    runtime.set("name", saved)


class FrozenClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9)


@pytest.fixture(autouse=True)
def hydra_version_base():
    """Hydra's process-wide version base as it was.

    Loading the sweep app sets version_base 1.3, which would change later in-process
    Hydra runs of this test session (chdir, job logging).
    """
    from hydra.version import VersionBase

    base = VersionBase.instance().version_base
    yield
    VersionBase.instance().version_base = base


@pytest.fixture
def frozen_now(monkeypatch):
    """``${now:...}``, as Hydra's ``now`` resolver reads it, stands still.

    Where no master's resolver cache is copied in, each read of ``hydra.run.dir``
    and ``hydra.sweep.dir`` resolves ``now`` again: in ``load_configuration``,
    and in a launched job's ``HydraConfig`` and ``JobReturn.hydra_cfg`` (copies
    that lose the cache). Two compositions a second apart differ there, with or
    without the wrapper; a fixed clock keeps those two keys in the comparison.
    """
    import hydra.core.utils

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)


def hydra_loader(conf: Path = CONF) -> ConfigLoaderImpl:
    """A plain Hydra config loader over a config dir (as ``Hydra.create_main_hydra2``)."""
    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf)))


def master_config(loader: Any, config_name: str, overrides: list[str]) -> DictConfig:
    """The sweep's config, composed as ``--multirun`` does; its timestamps resolved once."""
    master = loader.load_configuration(config_name, overrides, RunMode.MULTIRUN)
    _ = master.hydra.sweep.dir, master.hydra.run.dir  # caches ${now:...} (module docstring)
    return master


# ------------------------------------------------------------------ comparing configs


def flat(value: Any, path: str = "") -> dict[str, Any]:
    """A plain container as {dotted path: leaf}; empty containers are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(flat(item, f"{path}[{index}]"))
        return out
    return {path: (type(value).__name__, value)}


def type_name(kind: Any) -> Any:
    """A type by its import path: configs pickled back from worker processes may carry
    equal copies of a class (cloudpickle ships some by value), not the class itself."""
    return f"{kind.__module__}.{kind.__qualname__}" if isinstance(kind, type) else kind


def nodes(cfg: Any, path: str = "") -> dict[str, Any]:
    """Every node's resolved value (or error), type, markers and flags, by path."""
    out: dict[str, Any] = {}
    if OmegaConf.is_dict(cfg):
        keys: list[Any] = list(cfg.keys())
    elif OmegaConf.is_list(cfg):
        keys = list(range(len(cfg))) if not cfg._is_none() and not cfg._is_missing() else []
    else:
        return out
    out[path or "<root>"] = (
        "container",
        type(cfg).__name__,
        type_name(OmegaConf.get_type(cfg)),
        OmegaConf.is_struct(cfg),
        OmegaConf.is_readonly(cfg),
    )
    for key in keys:
        where = f"{path}.{key}" if path else str(key)
        marks = (
            type_name(OmegaConf.get_type(cfg, key)) if OmegaConf.is_dict(cfg) else None,
            OmegaConf.is_interpolation(cfg, key),
            OmegaConf.is_missing(cfg, key),
        )
        try:
            value = cfg[key]
        except Exception as error:  # noqa: BLE001 - the error is part of what must be equal
            out[where] = ("error", marks, type(error).__name__, str(error))
            continue
        if OmegaConf.is_config(value):
            if OmegaConf.is_interpolation(cfg, key):
                out[where] = ("points to", marks, OmegaConf.to_container(value, resolve=False))
            else:
                out.update(nodes(value, where))
        else:
            out[where] = ("value", marks, type(value).__name__, value)
    return out


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    keys = sorted(set(left) | set(right))
    missing = object()
    return [
        f"{key}: wrapper {left.get(key, missing)!r} != hydra {right.get(key, missing)!r}"
        for key in keys
        if left.get(key, missing) != right.get(key, missing)
    ]


def assert_same_config(served: DictConfig, composed: DictConfig, job: Any = None) -> None:
    """Equal raw (key by key, hydra node included), resolved, and node by node."""
    raw = differences(
        flat(OmegaConf.to_container(served, resolve=False)),
        flat(OmegaConf.to_container(composed, resolve=False)),
    )
    assert not raw, f"job {job}: raw configs differ:\n" + "\n".join(raw)
    resolved = differences(nodes(served), nodes(composed))
    assert not resolved, f"job {job}: resolved configs differ:\n" + "\n".join(resolved)
    assert served == composed


def outcome(loader: Any, master: DictConfig, job: list[str]) -> Any:
    """The job's config, or its error as (type, message, cause type, cause message)."""
    try:
        return loader.load_sweep_config(master, list(job))
    except Exception as error:  # noqa: BLE001 - compared with Hydra's own error
        cause = error.__cause__
        return (
            type(error),
            str(error),
            type(cause) if cause is not None else None,
            str(cause) if cause is not None else None,
        )


def check_sweep(
    config_name: str,
    jobs: list[list[str]],
    master_overrides: list[str] | None = None,
    conf: Path = CONF,
    before_job: Any = None,
    **options: Any,
) -> ComposeOnceLoader:
    """Every job from the wrapper and from Hydra: equal configs, or equal errors."""
    hydra = hydra_loader(conf)
    wrapper = ComposeOnceLoader(hydra_loader(conf), **options)
    master = master_config(hydra, config_name, master_overrides or [])
    for number, job in enumerate(jobs):
        if before_job is not None:
            before_job(number)
        served = outcome(wrapper, master, job)
        composed = outcome(hydra, master, job)
        if isinstance(composed, DictConfig):
            assert isinstance(served, DictConfig), f"job {job}: Hydra composed it, wrapper {served}"
            assert_same_config(served, composed, job)
        else:
            assert served == composed, f"job {job}: errors differ"
    stats = wrapper.stats
    assert stats["served"] + stats["composed"] == len(jobs), stats
    return wrapper


# ------------------------------------------------------------------ values: served, equal

VALUE_JOBS = [
    ["a=1", "b=0.5", "s=word", "flag=true", "items=[1,2,3]", "maybe=null", "nested.x=5"],
    ["a=-3", "b=1e-3", "s='two words'", "flag=False", "items=[]", "maybe=7", "nested.x=6"],
    ["a=1_000", "b=1.5e3", "s=''", "flag=TRUE", "items=[a,'b,c']", "maybe='null'", "nested.x=0"],
    ["a=int(3.0)", "b=inf", "s=str(5)", "flag=false", "items=null", "maybe=3.5", "nested.x=-1"],
    ["a=0", "b=-0.25", "s='ünï cødé'", "flag=true", "items=[[1],[2,3]]", "maybe=[1]", "nested.x=2"],
    ["a=7", "b=2", "s=true", "flag=true", "items=[null,1.5,x]", "maybe={k: 1}", "nested.x=3"],
]


def test_values_of_every_kind_are_served_and_equal_hydra():
    wrapper = check_sweep("config", VALUE_JOBS, ["a=0,1", "b=0.5"])
    assert wrapper.stats == {"served": 5, "composed": 1, "fell_back": 0, "bases": 1}


def test_nested_keys_and_keys_of_the_chosen_group_option_are_served():
    jobs = [
        [f"nested.deep.y={y}", f"nested.deep.z=[{z}]", f"model.penalty={p}", "model.name=m"]
        for y, z, p in [(1, "a", 0.5), (2, "'b,c'", 1), (3, "", -1.5), (4, "x,y", 2e-3)]
    ]
    wrapper = check_sweep("config", jobs)
    assert (wrapper.served, wrapper.composed) == (3, 1)


def test_quoted_values_with_commas_and_equal_signs():
    values = [
        "'a,b'",
        "'x=y'",
        '"it\'s"',
        "'a=1,b=2'",
        r"a\,b",
        "'with  spaces'",
        "'[not, a, list]'",
        "'${a}'",
        "\"double 'and' single\"",
        r"'back\\slash'",
    ]
    jobs = [[f"s={value}", "a=1"] for value in values]
    wrapper = check_sweep("config", jobs)
    assert (wrapper.served, wrapper.composed) == (len(values) - 1, 1)
    hydra = hydra_loader()
    master = master_config(hydra, "config", [])
    texts = [wrapper.load_sweep_config(master, job).s for job in jobs[:5]]
    assert texts == ["a,b", "x=y", "it's", "a=1,b=2", "a,b"]


def test_interpolations_reading_swept_keys_and_the_hydra_node():
    jobs = [
        ["a=1", "b=2.5"],
        ["a=2", "b=${a}"],  # an interpolation as the value: Hydra's own apply replays it
        ["a=${nested.x}", "b=0.0"],
        ["a='${nested.deep.y}'", "b=1"],
    ]
    wrapper = check_sweep("config", jobs)
    assert (wrapper.served, wrapper.composed) == (3, 1)
    master = master_config(hydra_loader(), "config", [])
    cfg = wrapper.load_sweep_config(master, ["a=9", "b=${a}"])
    assert (cfg.copy_of_a, cfg.b, cfg.text_of_a_and_b, cfg.penalty) == (9, 9, "a=9,b=9", 0.5)
    assert OmegaConf.to_container(cfg, resolve=False)["b"] == "${a}"
    # Hydra writes the text of the overrides: here an interpolation, resolved when read
    assert OmegaConf.to_container(cfg.hydra.job)["override_dirname"] == "a=9,b=${a}"
    assert cfg.hydra.job.override_dirname == "a=9,b=9"
    # ${hydra.job.num} is ??? until the launcher sets it, in both (nodes() compares the error)
    assert OmegaConf.is_missing(cfg.hydra.job, "num")


def test_a_group_option_change_composes_again_and_equals_hydra():
    jobs = [
        [f"a={a}", f"model={model}", f"model.penalty={a / 10}"]
        for model, a in itertools.product(["small", "large", "huge"], range(3))
    ]
    # interleaved too: each shape keeps its own base
    jobs += [
        [f"a={a}", f"model={model}", "model.penalty=1"]
        for a in range(3)
        for model in ["huge", "small", "large"]
    ]
    wrapper = check_sweep("config", jobs, ["a=0,1,2", "model=small,large,huge"])
    assert wrapper.stats == {"served": 15, "composed": 3, "fell_back": 0, "bases": 3}


def test_bases_are_bounded_least_recently_used_first_out():
    jobs = [[f"a={a}", f"model={model}"] for a in range(2) for model in ["small", "large", "huge"]]
    wrapper = check_sweep("config", jobs, max_bases=2)
    assert wrapper.stats == {"served": 0, "composed": 6, "fell_back": 0, "bases": 2}
    jobs = [[f"a={a}", f"model={model}"] for model in ["small", "large", "huge"] for a in range(3)]
    wrapper = check_sweep("config", jobs, max_bases=2)
    assert wrapper.stats == {"served": 6, "composed": 3, "fell_back": 0, "bases": 2}


@pytest.mark.parametrize(
    "jobs",
    [
        pytest.param([["+extra=1"], ["+extra=2"], ["+extra=[1,2]"], ["+extra=null"]], id="add"),
        pytest.param([["++a=5"], ["++a=6"], ["++new=1"], ["++new=2"]], id="force-add"),
        pytest.param([["~b"], ["~b=0.0"], ["~b=1.0"], ["~nested.x"], ["~nested.x=1"]], id="delete"),
        pytest.param([["+a=1"], ["+a=2"]], id="add-existing-key-fails"),
        pytest.param([["a=1", "++a=2"], ["a=3", "++a=2"], ["a=4", "~a"]], id="same-key-twice"),
        pytest.param([["++a=1"], ["a=2"], ["+a=3"], ["~a"]], id="prefix-changes"),
        pytest.param(
            [["+model.size=1", "model.penalty=1"], ["+model.size=2", "model.penalty=2"]],
            id="add-into-group-option",
        ),
        pytest.param(
            [["nested={x: 5}"], ["nested={x: 6}"], ["nested={new: 1}"], ["++nested={new: 1}"]],
            id="dict-values",
        ),
        pytest.param(
            [["model={name: m, penalty: 2}"], ["model=large"], ["model={penalty: 3}"]],
            id="dict-value-on-a-group-key",
        ),
        pytest.param([["~model"], ["~model=small"], ["~model=large"]], id="group-deletion"),
        pytest.param([["model=large"], ["+model=large"], ["++model=large"]], id="group-add"),
    ],
)
def test_additions_deletions_and_dict_values_equal_hydra(jobs):
    check_sweep("config", jobs)


def test_dict_values_and_group_overrides_never_share_a_base():
    wrapper = check_sweep(
        "config", [["model={penalty: 3}"], ["model={penalty: 4}"], ["model=large"], ["model=small"]]
    )
    assert wrapper.stats["served"] == 0


def test_errors_are_hydras_own():
    jobs = [
        ["a=1", "b=1.0"],  # the base
        ["a=1", "nokey=1"],  # unknown key
        ["a=1,2", "b=1.0"],  # a sweep in a job's overrides
        ["a=1", "model=nope"],  # unknown group option
        ["a=[1", "b=1.0"],  # does not parse
        ["a=1", "+b=2"],  # + on an existing key
        ["a=1", "~nokey"],  # delete a missing key
        ["a=1", "~b=5.0"],  # delete with the wrong value
        ["a=1", "nested.x.y=1"],  # a key under a value
        ["a=2", "b=2.0"],  # served again after all that
    ]
    wrapper = check_sweep("config", jobs)
    assert wrapper.served == 1
    assert wrapper.fell_back == 8


def test_a_typed_config_converts_and_rejects_values_as_hydra_does():
    jobs = [
        ["lr=1", "steps=5", "opt=null", "tags=[x,y]", "inner.depth=4"],
        ["lr=0.5", "steps=6", "opt=3", "tags=[]", "inner.depth=5"],
        ["lr=1e-2", "steps=7", "opt=null", "tags=[1,2]", "inner.width=3"],
        ["lr=abc", "steps=7", "opt=null", "tags=[1,2]", "inner.depth=5"],  # wrong type
        ["lr=1", "steps=1.5", "opt=null", "tags=[1,2]", "inner.depth=5"],
        ["lr=1", "steps=5", "opt=x", "tags=[1,2]", "inner.depth=5"],
        ["lr=1", "steps=5", "opt=3", "tags=[[1]]", "inner.depth=5"],  # Hydra takes it
        ["lr=1", "steps=5", "opt=3", "tags=null", "inner.depth=5"],  # not Optional
        ["lr=1", "steps=5", "opt=3", "tags=[a]", "inner=5"],
        ["lr=1", "steps=5", "opt=3", "tags=[a]", "inner.nokey=5"],
        ["lr=[1]", "steps=5", "opt=3", "tags=[a]", "inner.depth=5"],
        ["lr=2", "steps=8", "opt=4", "tags=[z]", "inner.depth=6"],
    ]
    wrapper = check_sweep("ivory_composition_typed", jobs)
    # new keys (inner.width, inner, inner.nokey) are new shapes: 4 bases, 3 jobs served
    assert wrapper.stats == {"served": 3, "composed": 9, "fell_back": 7, "bases": 4}
    hydra = hydra_loader()
    master = master_config(hydra, "ivory_composition_typed", [])
    error = outcome(wrapper, master, jobs[3])
    assert error[:2] == (ConfigCompositionException, "Error merging override lr=abc")
    assert error[2] is ValidationError
    assert error[3].startswith("Value 'abc' of type 'str' could not be converted to Float")
    cfg = wrapper.load_sweep_config(master, jobs[0])
    assert OmegaConf.get_type(cfg) is TypedConfig
    assert OmegaConf.get_type(cfg, "inner") is Inner
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    task = copy.deepcopy(cfg)
    with open_dict(task):
        del task["hydra"]
    assert OmegaConf.to_object(task) == TypedConfig(
        lr=1.0, steps=5, opt=None, tags=["x", "y"], inner=Inner(depth=4)
    )


# ------------------------------------------------------------------ the hydra node


def test_override_dirname_follows_its_settings():
    jobs = [
        ["seed=1", "a=1", "s='x,y'"],
        ["seed=2", "a=2", r"s=k\=v"],
        ["seed=3", "a=3", "s='a=b'"],
    ]
    wrapper = check_sweep("dirname", jobs, ["seed=1,2,3"])
    assert (wrapper.served, wrapper.composed) == (2, 1)
    master = master_config(hydra_loader(), "dirname", [])
    cfg = wrapper.load_sweep_config(master, ["seed=5", "s='x,y'", "a=4"])
    assert cfg.hydra.job.override_dirname == "a:4__s:'x,y'"
    # the settings from the master's hydra overrides
    hydra_overrides = [
        "hydra.job.config.override_dirname.kv_sep=-",
        "hydra.job.config.override_dirname.item_sep=+",
        "hydra.job.config.override_dirname.exclude_keys=[seed,s]",
    ]
    wrapper = check_sweep("dirname", jobs, hydra_overrides)
    assert (wrapper.served, wrapper.composed) == (2, 1)
    master = master_config(hydra_loader(), "dirname", hydra_overrides)
    cfg = wrapper.load_sweep_config(master, ["seed=5", "a=4", "b=1.5"])
    assert cfg.hydra.job.override_dirname == "a-4+b-1.5"
    assert list(cfg.hydra.overrides.hydra) == hydra_overrides
    assert list(cfg.hydra.overrides.task) == ["seed=5", "a=4", "b=1.5"]


def test_hydra_value_overrides_in_a_job_are_served():
    jobs = [
        ["a=1", "hydra.job.chdir=true", "hydra.job.config.override_dirname.kv_sep=_"],
        ["a=2", "hydra.job.chdir=false", "hydra.job.config.override_dirname.kv_sep=:"],
        ["a=3", "hydra.job.chdir=null", "hydra.job.config.override_dirname.kv_sep='='"],
    ]
    wrapper = check_sweep("config", jobs, ["hydra.verbose=true"])
    assert (wrapper.served, wrapper.composed) == (2, 1)


def test_hydra_group_overrides_compose_again():
    jobs = [
        ["a=1", "hydra/job_logging=none"],
        ["a=2", "hydra/job_logging=disabled"],
        ["a=3", "hydra/job_logging=none"],
    ]
    wrapper = check_sweep("config", jobs, ["hydra/hydra_logging=none"])
    assert (wrapper.served, wrapper.composed) == (1, 2)


def test_job_name_from_the_config_from_hydra_or_from_an_override():
    jobs = [["tag=a"], ["tag=b"], ["tag=???"], ["tag=${s}"]]
    wrapper = check_sweep("named", jobs)
    assert wrapper.served == 3
    master = master_config(hydra_loader(), "named", [])
    assert wrapper.load_sweep_config(master, ["tag=b"]).hydra.job.name == "run_b"
    jobs = [
        ["a=1", "hydra.job.name=custom"],
        ["a=2", "hydra.job.name=???"],  # missing: Hydra's task name
        ["a=3", "hydra.job.name=${s}"],
        ["a=4", "hydra.job.name=other"],
    ]
    wrapper = check_sweep("config", jobs)
    assert wrapper.served == 3
    master = master_config(hydra_loader(), "config", [])
    names = [
        OmegaConf.to_container(wrapper.load_sweep_config(master, job).hydra.job)["name"]
        for job in jobs
    ]
    assert names == ["custom", "composition_app", "${s}", "other"]


def test_the_task_name_is_read_for_every_job():
    runtime = JobRuntime()

    def rename(number):
        runtime.set("name", f"task_{number}")

    check_sweep("config", [[f"a={a}"] for a in range(3)], before_job=rename)


def test_env_set_reads_the_environment_for_every_job(monkeypatch):
    def set_variable(number):
        monkeypatch.setenv("IVORY_COMPOSITION_VAR", f"value {number}")

    set_variable("of the master")  # its composition copies it too
    jobs = [[f"a={a}"] for a in range(3)]
    wrapper = check_sweep("env", jobs, before_job=set_variable)
    assert wrapper.served == 2
    master = master_config(hydra_loader(), "env", [])
    cfg = wrapper.load_sweep_config(master, ["a=9"])
    assert cfg.hydra.job.env_set == {"IVORY_COMPOSITION_VAR": "value 2"}

    def unset_at_the_second_job(number):
        set_variable(number)
        if number == 1:
            monkeypatch.delenv("IVORY_COMPOSITION_VAR")

    wrapper = check_sweep("env", jobs, before_job=unset_at_the_second_job)  # Hydra's KeyError
    assert wrapper.stats == {"served": 1, "composed": 2, "fell_back": 1, "bases": 1}


def test_the_working_directory_is_read_for_every_job(tmp_path, monkeypatch):
    def move(number):
        (tmp_path / str(number)).mkdir()
        monkeypatch.chdir(tmp_path / str(number))

    check_sweep("config", [[f"a={a}"] for a in range(3)], before_job=move)


def test_search_paths_from_the_master_and_from_jobs():
    searchpath = [f"hydra.searchpath=[file://{EXTRA}]"]
    jobs = [["+opt=one", "a=1"], ["+opt=two", "a=2"], ["+opt=one", "a=3"], ["+opt=two", "a=4"]]
    wrapper = check_sweep("config", jobs, searchpath)
    assert (wrapper.served, wrapper.composed) == (2, 2)
    jobs = [
        [f"hydra.searchpath=[file://{EXTRA}]", "+opt=one", "a=1"],
        [f"hydra.searchpath=[file://{EXTRA2}]", "+opt=one", "a=2"],
        [f"hydra.searchpath=[file://{EXTRA}]", "+opt=one", "a=3"],
        [f"hydra.searchpath=[file://{EXTRA2}]", "+opt=one", "a=4"],
        [f"hydra.searchpath=[file://{EXTRA2}]", "+opt=two", "a=5"],  # not in extra2: fails
    ]
    wrapper = check_sweep("config", jobs)
    assert wrapper.stats == {"served": 2, "composed": 3, "fell_back": 1, "bases": 2}
    master = master_config(hydra_loader(), "config", [])
    assert wrapper.load_sweep_config(master, jobs[3]).opt.level == 10


# ------------------------------------------------------------------ generated values


def _text(value: Any) -> str:
    """Override text of a value (strings quoted, quotes escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(_text(item) for item in value) + "]"
    return repr(value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, width=32),
    st.text(st.sampled_from("ab ,=:[]{}'-x0"), max_size=6),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
keys = st.sampled_from(["a", "b", "s", "flag", "items", "maybe", "nested.x", "nested.deep.z"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chosen=st.lists(keys, min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_generated_value_sweeps_equal_hydra(chosen, data):
    jobs = [[f"{key}={_text(data.draw(values))}" for key in chosen] for _ in range(3)]
    check_sweep("config", jobs)


# ------------------------------------------------------------------ the loader itself


def test_compose_once_wraps_hydras_loader_once_and_keeps_the_callbacks():
    callbacks = Callbacks(OmegaConf.create({"hydra": {"callbacks": {}}}))
    context = HydraContext(config_loader=hydra_loader(), callbacks=callbacks)
    wrapped = compose_once(context)
    assert isinstance(wrapped.config_loader, ComposeOnceLoader)
    assert wrapped.config_loader.real is context.config_loader
    assert wrapped.callbacks is callbacks
    assert compose_once(wrapped) is wrapped


def test_compose_once_leaves_other_loaders_alone(monkeypatch):
    class OtherLoader(ConfigLoaderImpl):
        pass

    other = HydraContext(
        config_loader=OtherLoader(create_config_search_path(str(CONF))), callbacks=None
    )
    assert compose_once(other) is other
    # a ComposeOnceLoader made anyway never serves: Hydra composes every job
    loader = ComposeOnceLoader(other.config_loader)
    master = master_config(hydra_loader(), "config", [])
    for a in range(3):
        assert_same_config(
            loader.load_sweep_config(master, [f"a={a}"]),
            hydra_loader().load_sweep_config(master, [f"a={a}"]),
        )
    assert loader.stats == {"served": 0, "composed": 3, "fell_back": 3, "bases": 0}


def test_another_hydra_composition_code_turns_serving_off(monkeypatch):
    monkeypatch.setattr(_compat, "HYDRA_COMPOSITION_SHA256", "0" * 64)
    _compat.composition_matches.cache_clear()
    try:
        context = HydraContext(config_loader=hydra_loader(), callbacks=None)
        assert compose_once(context) is context
        loader = ComposeOnceLoader(hydra_loader())
        master = master_config(hydra_loader(), "config", [])
        loader.load_sweep_config(master, ["a=1"])
        loader.load_sweep_config(master, ["a=2"])
        assert loader.stats["fell_back"] == 2
    finally:
        monkeypatch.undo()
        _compat.composition_matches.cache_clear()


def test_other_methods_are_the_real_loaders(frozen_now):
    real = hydra_loader()
    loader = ComposeOnceLoader(real)
    assert loader.get_search_path() is real.get_search_path()
    assert loader.get_sources() == real.get_sources()
    assert "model" in loader.list_groups("")
    assert loader.get_group_options("model") == ["huge", "large", "small"]
    assert "model" in loader.get_group_options("", results_filter=ObjectType.GROUP)
    assert sorted(loader.get_group_options("", results_filter=None)) == sorted(
        real.get_group_options("", results_filter=None)
    )
    assert loader.repository is real.repository  # any other attribute
    defaults = loader.compute_defaults_list("config", ["model=large"], RunMode.RUN)
    assert "model/large" in [d.config_path for d in defaults.defaults]
    assert_same_config(
        loader.load_configuration("config", ["a=1"], RunMode.RUN),
        real.load_configuration("config", ["a=1"], RunMode.RUN),
    )


def test_it_pickles_without_its_bases_and_serves_after():
    loader = ComposeOnceLoader(hydra_loader(), max_bases=5)
    master = master_config(hydra_loader(), "config", [])
    loader.load_sweep_config(master, ["a=1"])
    loader.load_sweep_config(master, ["a=2"])
    context = HydraContext(config_loader=loader, callbacks=Callbacks(master))
    copied = pickle.loads(pickle.dumps(context)).config_loader
    assert isinstance(copied, ComposeOnceLoader)
    assert copied.max_bases == 5
    assert copied.stats == {"served": 0, "composed": 0, "fell_back": 0, "bases": 0}
    for a in range(3):
        assert_same_config(
            copied.load_sweep_config(master, [f"a={a}"]),
            hydra_loader().load_sweep_config(master, [f"a={a}"]),
        )
    assert (copied.served, copied.composed) == (2, 1)
    assert len(pickle.dumps(loader)) == len(pickle.dumps(ComposeOnceLoader(hydra_loader(), 5)))


def test_threads_share_one_loader():
    loader = ComposeOnceLoader(hydra_loader())
    hydra = hydra_loader()
    master = master_config(hydra, "config", [])
    jobs = [[f"a={a}", f"model={'small' if a % 2 else 'large'}"] for a in range(24)]
    start = threading.Barrier(6)

    def serve(job):
        if job[0] in {f"a={a}" for a in range(6)}:
            start.wait(timeout=30)
        return loader.load_sweep_config(master, job)

    with ThreadPoolExecutor(max_workers=6) as pool:
        served = list(pool.map(serve, jobs))
    for job, cfg in zip(jobs, served, strict=True):
        assert_same_config(cfg, hydra.load_sweep_config(master, job), job)
    stats = loader.stats
    assert stats["served"] + stats["composed"] == len(jobs)
    # threads that start together may each compose the first job of a shape
    assert stats["fell_back"] == 0 and stats["composed"] <= 6 * 2


def test_a_served_config_is_the_jobs_own():
    loader = ComposeOnceLoader(hydra_loader())
    master = master_config(hydra_loader(), "config", [])
    first = loader.load_sweep_config(master, ["a=1"])
    first.nested.x = 100
    first.hydra.overrides.task.append("x=1")
    second = loader.load_sweep_config(master, ["a=2"])
    assert second.nested.x == 1
    assert list(second.hydra.overrides.task) == ["a=2"]


# ------------------------------------------------------------------ launching jobs


def _load_app() -> Any:
    spec = importlib.util.spec_from_file_location(
        "composition_sweep_app", APPS / "sweep" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main.__wrapped__  # the app's own function, without @hydra.main


class Recorder:
    """A task function that records each job's config and HydraConfig, and runs the app."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self.jobs: list[dict[str, Any]] = []

    def __call__(self, cfg: DictConfig) -> Any:
        hydra_cfg = HydraConfig.get()
        self.jobs.append(
            {
                "cfg": OmegaConf.to_container(cfg, resolve=False),
                "cfg nodes": nodes(cfg),
                "hydra": OmegaConf.to_container(hydra_cfg, resolve=False),
                "hydra nodes": nodes(hydra_cfg),
            }
        )
        return self.app(cfg) if self.app is not None else None


def _launch(context: HydraContext, master: DictConfig, jobs: list[list[str]], task: Any) -> list:
    launcher = BasicLauncher()
    launcher.setup(hydra_context=context, task_function=task, config=master)
    return list(launcher.launch(jobs, initial_job_idx=0))


def _compare_launches(conf: Path, config_name: str, master_overrides: list[str], jobs, app=None):
    hydra = hydra_loader(conf)
    master = master_config(hydra, config_name, master_overrides)
    context = HydraContext(config_loader=hydra, callbacks=Callbacks(master))
    plain, wrapped = Recorder(app), Recorder(app)
    plain_returns = _launch(context, master, jobs, plain)
    fast = compose_once(HydraContext(config_loader=hydra_loader(conf), callbacks=Callbacks(master)))
    wrapped_returns = _launch(fast, master, jobs, wrapped)
    assert len(wrapped.jobs) == len(plain.jobs) == len(jobs)
    for job, got, expected in zip(jobs, wrapped.jobs, plain.jobs, strict=True):
        for part in expected:
            diff = (
                differences(flat(got[part]), flat(expected[part]))
                if part in ("cfg", "hydra")
                else differences(got[part], expected[part])
            )
            assert not diff, f"job {job}, {part}:\n" + "\n".join(diff)
    for got, expected in zip(wrapped_returns, plain_returns, strict=True):
        assert got.status == expected.status == JobStatus.COMPLETED
        assert got.return_value == expected.return_value
        assert got.overrides == expected.overrides
        assert got.working_dir == expected.working_dir
        assert got.task_name == expected.task_name
        assert_same_config(got.cfg, expected.cfg)
        assert_same_config(got.hydra_cfg, expected.hydra_cfg)
    return fast.config_loader


def _launch_overrides(tmp_path: Path) -> list[str]:
    return [
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        "hydra.job.chdir=false",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]


def test_the_sweep_app_launched_by_hydras_basic_launcher(tmp_path, frozen_now):
    jobs = [
        [f"a={a}", f"b={b}", f"model={model}"]
        for a, b, model in itertools.product(range(4), [0.5, 1.5], ["small", "large"])
    ]
    master_overrides = [*_launch_overrides(tmp_path), "a=0,1,2,3", "b=0.5,1.5", "model=small,large"]
    loader = _compare_launches(SWEEP_CONF, "config", master_overrides, jobs, app=_load_app())
    assert loader.stats == {"served": 14, "composed": 2, "fell_back": 0, "bases": 2}


def test_the_sweep_apps_yaml_sweep_launched(tmp_path, frozen_now):
    jobs = [[f"a={a}", "b=0.5", "model=small"] for a in range(3)]
    jobs += [["a=1", f"b={b}", "model=small"] for b in (0.5, 1.5)]
    jobs += [["a=1", "b=1.5", f"model={model}"] for model in ("small", "large")]
    loader = _compare_launches(
        SWEEP_CONF, "with_params", _launch_overrides(tmp_path), jobs, app=_load_app()
    )
    assert loader.stats == {"served": 5, "composed": 2, "fell_back": 0, "bases": 2}


def test_interpolations_of_the_hydra_node_in_launched_jobs(tmp_path, frozen_now):
    jobs = [
        [f"a={a}", f"s='x,{a}'", f"model={model}"] for a in range(3) for model in ("small", "huge")
    ]
    loader = _compare_launches(CONF, "config", _launch_overrides(tmp_path), jobs)
    assert (loader.served, loader.composed) == (4, 2)


@pytest.mark.slow
def test_the_joblib_launcher_with_the_wrapper(tmp_path, frozen_now):
    """Workers get the pickled wrapper (joblib/loky processes): same configs as Hydra's."""
    jobs = [[f"a={a}", f"model={model}"] for a in range(4) for model in ("small", "large")]
    hydra = hydra_loader(SWEEP_CONF)
    master = master_config(
        hydra,
        "config",
        [*_launch_overrides(tmp_path), "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    )
    returns = {}
    for name, context in [
        ("plain", HydraContext(config_loader=hydra, callbacks=Callbacks(master))),
        (
            "wrapped",
            compose_once(
                HydraContext(config_loader=hydra_loader(SWEEP_CONF), callbacks=Callbacks(master))
            ),
        ),
    ]:
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=_load_app(), config=master
        )
        returns[name] = list(launcher.launch(jobs, initial_job_idx=0))
    for got, expected in zip(returns["wrapped"], returns["plain"], strict=True):
        assert got.status == expected.status == JobStatus.COMPLETED
        assert got.return_value == expected.return_value
        assert_same_config(got.cfg, expected.cfg)
        assert_same_config(got.hydra_cfg, expected.hydra_cfg)


@pytest.mark.slow
def test_100_jobs_launch_faster_with_the_wrapper(tmp_path, capsys):
    """The speed-up quoted in composition.py's docstring (printed with ``-s``)."""
    jobs = [[f"a={a}", "b=0.5", "model=small"] for a in range(100)]
    master = master_config(
        hydra_loader(SWEEP_CONF), "config", [*_launch_overrides(tmp_path), "a=0_99"]
    )

    def noop(cfg):
        return None

    def timed(context):
        start = time.perf_counter()
        returns = _launch(context, master, jobs, noop)
        assert all(r.status == JobStatus.COMPLETED for r in returns)
        return time.perf_counter() - start

    plain = HydraContext(config_loader=hydra_loader(SWEEP_CONF), callbacks=Callbacks(master))
    _launch(plain, master, jobs[:2], noop)  # warm up: imports, plugin scan
    plain_time = timed(plain)
    fast = compose_once(
        HydraContext(config_loader=hydra_loader(SWEEP_CONF), callbacks=Callbacks(master))
    )
    fast_time = timed(fast)
    composing = timed_loads(plain.config_loader, master, jobs)
    serving = timed_loads(ComposeOnceLoader(hydra_loader(SWEEP_CONF)), master, jobs)
    with capsys.disabled():
        print(
            f"\n100 jobs, BasicLauncher: {plain_time:.2f} s without the wrapper, "
            f"{fast_time:.2f} s with it ({plain_time / fast_time:.1f}x); "
            f"load_sweep_config alone: {composing * 10:.1f} ms a job composed, "
            f"{serving * 10:.1f} ms served ({composing / serving:.1f}x)"
        )
    assert fast.config_loader.stats == {"served": 99, "composed": 1, "fell_back": 0, "bases": 1}
    assert fast_time < plain_time / 1.5  # 2.5x measured; room for a busy machine


def timed_loads(loader: Any, master: DictConfig, jobs: list[list[str]]) -> float:
    start = time.perf_counter()
    for job in jobs:
        loader.load_sweep_config(master, job)
    return time.perf_counter() - start
