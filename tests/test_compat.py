"""Every private Hydra/Optuna/MLflow name ivory-hydra uses, checked against the real library.

``ivory_hydra/_compat.py`` is the only place that touches private names of its
dependencies. Each function there has one test here that runs the installed
library (no mocks) and asserts what ivory-hydra relies on, with a message that
names the private name that changed. The last test makes sure no private name
slipped into the rest of the package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import QuotedString
from hydra.core.utils import JobReturn

from ivory_hydra import _compat

PACKAGE = Path(_compat.__file__).parent


def parse(argument: str):
    [override] = OverridesParser.create().parse_overrides([argument])
    return override


def sweep_elements(argument: str) -> list:
    return list(parse(argument).sweep_iterator())


# ------------------------------------------------------------------ Hydra overrides


def test_element_text_keeps_the_quotes_of_each_choice_element():
    elements = sweep_elements("x='a,b',c,1,2.5,[1,2],null,x\\=y")
    texts = [_compat.element_text(e) for e in elements]
    assert isinstance(elements[0], QuotedString), (
        "hydra changed how a choice sweep parses a quoted element: "
        f"expected a QuotedString, got {elements[0]!r}"
    )
    assert texts == ["'a,b'", "c", "1", "2.5", "[1,2]", "null", "x\\=y"], (
        "hydra changed Override._get_value_element_as_str: an element must come back as "
        f"override text, its quotes and escapes kept; got {texts}"
    )
    # The text is a valid override again: parsing it gives the same value back.
    assert parse(f"x={texts[0]}").value() == "a,b", (
        "hydra changed Override._get_value_element_as_str: its text of a quoted "
        "element no longer parses back to the same value"
    )


def test_element_value_removes_the_quotes():
    elements = sweep_elements("x='a,b',c,1,2.5,[1,2],null,x\\=y")
    values = [_compat.element_value(e) for e in elements]
    assert values == ["a,b", "c", 1, 2.5, [1, 2], None, "x=y"], (
        "hydra changed Override._convert_value: an element must become a plain Python "
        f"value (quotes removed, escapes resolved); got {values}"
    )
    assert all(not isinstance(v, QuotedString) for v in values), (
        f"hydra changed Override._convert_value: it returned a QuotedString in {values}"
    )
    assert type(values[0]) is str, (
        f"hydra changed Override._convert_value: a quoted element is a {type(values[0])}"
    )


def test_override_element_keeps_the_quotes_that_decide_a_range():
    quoted = _compat.override_element(parse("x='3-7'"))
    assert isinstance(quoted, QuotedString), (
        "hydra changed Override._value: the element of x='3-7' must be a QuotedString "
        f"(the quotes say it is not a range); got {quoted!r}"
    )
    assert quoted.text == "3-7", f"hydra changed QuotedString.text: got {quoted.text!r}"
    assert _compat.element_text(quoted) == "'3-7'", (
        "hydra changed Override._value or Override._get_value_element_as_str: "
        f"the quoted element's text is {_compat.element_text(quoted)!r}"
    )
    unquoted = _compat.override_element(parse("x=3-7"))
    assert unquoted == "3-7" and not isinstance(unquoted, QuotedString), (
        f"hydra changed Override._value: the element of x=3-7 is {unquoted!r}, not the str '3-7'"
    )
    number = _compat.override_element(parse("x=0.5"))
    assert number == 0.5 and isinstance(number, float), (
        f"hydra changed Override._value: the element of x=0.5 is {number!r}"
    )


def test_apply_overrides_sets_values_and_rejects_unknown_keys_in_struct_mode():
    from hydra.errors import ConfigCompositionException
    from omegaconf import OmegaConf

    config = OmegaConf.create({"a": 1, "model": {"depth": 2}, "gone": 3})
    OmegaConf.set_struct(config, True)
    overrides = OverridesParser.create().parse_overrides(
        ["a=5", "model.depth='deep'", "+extra=[1,2]", "~gone"]
    )
    _compat.apply_overrides(overrides, config)
    assert OmegaConf.to_container(config) == {
        "a": 5,
        "model": {"depth": "deep"},
        "extra": [1, 2],
    }, (
        "hydra changed ConfigLoaderImpl._apply_overrides_to_config: it must set, add (+) and "
        f"delete (~) keys of an OmegaConf config in place; got {OmegaConf.to_container(config)}"
    )
    with pytest.raises(ConfigCompositionException, match="Could not override 'nokey'") as info:
        _compat.apply_overrides(OverridesParser.create().parse_overrides(["nokey=1"]), config)
    assert "nokey" not in config, (
        "hydra changed ConfigLoaderImpl._apply_overrides_to_config: it added an unknown key "
        f"to a struct config ({info.value})"
    )


def test_apply_overrides_rejects_a_value_of_the_wrong_type():
    from dataclasses import dataclass

    from omegaconf import OmegaConf

    @dataclass
    class Typed:
        lr: float = 0.1

    config = OmegaConf.structured(Typed)
    try:
        _compat.apply_overrides(OverridesParser.create().parse_overrides(["lr=oops"]), config)
    except Exception as error:  # noqa: BLE001 - Hydra raises several kinds
        assert "lr" in str(error), f"unexpected error text: {error}"
    else:
        pytest.fail(
            "hydra changed ConfigLoaderImpl._apply_overrides_to_config: a str for a float "
            "field was accepted (validation relies on it being refused)"
        )


# ------------------------------------------------------------------ Hydra job returns


def _job_return(tmp_path: Path, task):
    """A real JobReturn: Hydra's own ``run_job`` runs ``task``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    class NoCallbacks:
        def on_job_start(self, **kwargs):
            pass

        def on_job_end(self, **kwargs):
            pass

    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "config.yaml").write_text("x: 1\n")
    saved = HydraConfig.instance().cfg
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="compat"):
            config = compose(
                "config",
                overrides=[f"hydra.run.dir={tmp_path / 'out'}", "+y=2"],
                return_hydra_config=True,
            )
            HydraConfig.instance().set_config(config)
            context = HydraContext(
                config_loader=GlobalHydra.instance().config_loader(),
                callbacks=NoCallbacks(),  # type: ignore[arg-type]
            )
            return run_job(
                hydra_context=context,
                task_function=task,
                config=config,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                configure_logging=False,
            )
    finally:
        HydraConfig.instance().cfg = saved


def _failed_job_return(tmp_path: Path, error: BaseException):
    """A real FAILED JobReturn: Hydra's own ``run_job`` runs a task that raises."""

    def task(cfg):
        raise error

    return _job_return(tmp_path, task)


def test_job_exception_returns_the_exception_of_a_failed_job(tmp_path):
    from hydra.core.utils import JobStatus

    error = RuntimeError("planned failure")
    result = _failed_job_return(tmp_path, error)
    assert result.status == JobStatus.FAILED, f"hydra's run_job did not fail: {result.status}"
    assert _compat.job_exception(result) is error, (
        "hydra changed JobReturn._return_value: it must hold the exception a failed job "
        f"raised; got {_compat.job_exception(result)!r}"
    )
    # Why the private name: the public property raises instead of returning it.
    with pytest.raises(Exception):  # noqa: B017, PT011 - only "it raises" matters
        _ = result.return_value


def test_job_exception_of_a_constructed_job_return():
    from hydra.core.utils import JobReturn, JobStatus

    error = SystemExit(3)
    result = JobReturn()
    result._return_value = error
    result.status = JobStatus.FAILED
    assert _compat.job_exception(result) is error, (
        "hydra changed JobReturn._return_value: job_exception no longer reads it back"
    )


class _ReadOnlyConfigs(JobReturn):
    """A JobReturn whose ``cfg`` and ``hydra_cfg`` cannot be set (as ``StoredJobReturn``'s)."""

    cfg = property(lambda self: "cfg from disk")  # type: ignore[assignment]
    hydra_cfg = property(lambda self: "hydra_cfg from disk")  # type: ignore[assignment]


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_copy_job_return_keeps_all_but_what_it_leaves_out(tmp_path, outcome):
    from hydra.core.utils import JobStatus

    error = RuntimeError("planned failure")

    def task(cfg):
        if outcome == "failed":
            raise error
        return {"score": cfg.x + cfg.y}

    result = _job_return(tmp_path, task)
    fields = {f.name for f in dataclasses.fields(JobReturn)}
    assert fields <= set(vars(result)), (
        "hydra changed JobReturn: its fields are no longer all in the instance __dict__ "
        f"(missing {sorted(fields - set(vars(result)))}); copy_job_return copies vars()"
    )
    copy = _compat.copy_job_return(result, _ReadOnlyConfigs, leave_out={"cfg", "hydra_cfg"})
    assert type(copy) is _ReadOnlyConfigs
    assert (copy.cfg, copy.hydra_cfg) == ("cfg from disk", "hydra_cfg from disk")
    kept = {name: getattr(copy, name) for name in fields - {"cfg", "hydra_cfg"}}
    assert kept == {name: getattr(result, name) for name in kept}, (
        "hydra changed JobReturn: copy_job_return lost a field"
    )
    assert copy.overrides == ["+y=2"] and copy.task_name == "compat", kept
    if outcome == "failed":
        assert copy.status == JobStatus.FAILED
        assert _compat.job_exception(copy) is error
        with pytest.raises(RuntimeError, match="planned failure"):
            _ = copy.return_value
    else:
        assert copy.status == JobStatus.COMPLETED
        assert copy.return_value == {"score": 3}, (
            f"hydra changed JobReturn.return_value on a copy: {copy.return_value!r}"
        )


# ------------------------------------------------------------------ Hydra launchers


def _launcher(tmp_path: Path, name: str):
    """Hydra's launcher ``hydra/launcher=name``, instantiated as a sweep does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "config.yaml").write_text("x: 1\n")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="compat"):
        config = compose("config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
        context = HydraContext(
            config_loader=GlobalHydra.instance().config_loader(),
            callbacks=None,  # type: ignore[arg-type]
        )
        return Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=lambda cfg: None, config=config
        )


def test_is_basic_launcher_knows_hydras_basic_launcher(tmp_path):
    basic = _launcher(tmp_path, "basic")
    assert _compat.is_basic_launcher(basic), (
        "hydra moved or renamed hydra._internal.core_plugins.basic_launcher.BasicLauncher: "
        f"hydra/launcher=basic gives a {type(basic)}, which is_basic_launcher does not know"
    )
    assert not _compat.is_basic_launcher(_launcher(tmp_path, "joblib"))
    assert not _compat.is_basic_launcher(object())

    class Tuned(type(basic)):  # a subclass runs its jobs in this process too
        pass

    assert _compat.is_basic_launcher(Tuned())


def _basic_launches(tmp_path: Path, quiet: bool, batches: int = 2) -> list[str]:
    """What Hydra's BasicLauncher logs for ``batches`` launches of two jobs each."""
    import logging

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    class NoCallbacks:
        def on_job_start(self, **kwargs):
            pass

        def on_job_end(self, **kwargs):
            pass

    class Collect(logging.Handler):
        def emit(self, record):
            said.append(record.getMessage())

    said: list[str] = []
    conf = tmp_path / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "config.yaml").write_text("x: 1\n")
    logger = logging.getLogger(_compat.BASIC_LAUNCHER_LOGGER)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    handler = Collect()
    logger.addHandler(handler)
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="compat"):
            config = compose(
                "config",
                overrides=["hydra/launcher=basic", f"hydra.sweep.dir={tmp_path / 'out'}"],
                return_hydra_config=True,
            )
            context = HydraContext(
                config_loader=GlobalHydra.instance().config_loader(),
                callbacks=NoCallbacks(),  # type: ignore[arg-type]
            )
            launcher = Plugins.instance().instantiate_launcher(
                hydra_context=context, task_function=lambda cfg: cfg.x, config=config
            )
            with _compat.basic_launcher_lines_once(launcher) if quiet else contextlib.nullcontext():
                for batch in range(batches):
                    jobs = [[f"x={2 * batch}"], [f"x={2 * batch + 1}"]]
                    launcher.launch(jobs, initial_job_idx=2 * batch)
    finally:
        logger.removeHandler(handler)
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return said


def test_the_basic_launchers_lines_are_said_once_while_our_run_lines_name_jobs(tmp_path):
    said = _basic_launches(tmp_path / "loud", quiet=False)
    assert said == [
        "Launching 2 jobs locally",
        "\t#0 : x=0",
        "\t#1 : x=1",
        "Launching 2 jobs locally",
        "\t#2 : x=2",
        "\t#3 : x=3",
    ], (
        "hydra changed the lines of its BasicLauncher (logger "
        f"{_compat.BASIC_LAUNCHER_LOGGER}, starting {_compat.BASIC_LAUNCHER_LINES}): {said}"
    )
    assert _basic_launches(tmp_path / "quiet", quiet=True) == ["Launching 2 jobs locally"]
    assert _basic_launches(tmp_path / "after", quiet=False, batches=1)[0] == (
        "Launching 2 jobs locally"
    )  # the filter is gone with its block


# ------------------------------------------------------------------ Optuna trials


@pytest.fixture
def waiting(tmp_path):
    """A study on SQLite (as the sweeper's) with one WAITING trial: (storage, study, trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({})
    [frozen] = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    return storage, study, frozen


def test_trial_of_suggests_into_the_stored_waiting_trial(waiting):
    from optuna.trial import Trial, TrialState

    storage, study, frozen = waiting
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
    trial = _compat.trial_of(study, trial_id)
    assert isinstance(trial, Trial) and trial.number == frozen.number, (
        "optuna changed Trial(study, trial_id): it no longer gives the trial of that id"
    )
    x = trial.suggest_float("x", 0.0, 1.0)
    n = trial.suggest_int("n", 1, 3)
    [stored] = study.get_trials()
    assert stored.params == {"x": x, "n": n}, (
        f"optuna changed Trial(study, trial_id): suggestions were not stored ({stored.params})"
    )
    assert stored.state == TrialState.WAITING, (
        f"optuna changed Trial(study, trial_id): it moved the trial to {stored.state.name}; "
        "the job must claim it WAITING"
    )


def test_is_stop_outside_optimize_knows_the_grid_samplers_stop():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [0]}))
    with pytest.raises(RuntimeError) as stopped:
        study.stop()
    assert _compat.is_stop_outside_optimize(stopped.value), (
        "optuna changed the error of Study.stop() outside optimize(): "
        f"{stopped.value!r} does not start with {_compat.STOP_OUTSIDE_OPTIMIZE!r}"
    )
    trial = study.ask()
    trial.suggest_categorical("x", [0])
    with pytest.raises(RuntimeError) as done:
        study.tell(trial, 1.0)  # the grid is done: after_trial stops the study
    assert _compat.is_stop_outside_optimize(done.value), (
        f"optuna changed how GridSampler.after_trial ends a grid: {done.value!r}"
    )
    assert not _compat.is_stop_outside_optimize(RuntimeError("database is locked"))
    assert not _compat.is_stop_outside_optimize(ValueError(str(stopped.value)))


# ------------------------------------------------------------------ Hydra composition

COMPOSITION_CONF = Path(__file__).parent / "apps" / "composition" / "conf"


def test_the_replayed_hydra_composition_code_is_the_installed_one():
    _compat.composition_matches.cache_clear()
    assert _compat.composition_matches(), (
        "Hydra's composition code changed (ConfigLoaderImpl._load_configuration_impl, "
        "load_sweep_config, _process_config_searchpath or defaults_list.Overrides.__init__): "
        "compare it with compose_defaults and finish_composition in ivory_hydra/_compat.py, "
        "then update HYDRA_COMPOSITION_SHA256. Until then every job is composed by Hydra."
    )


@pytest.fixture
def loader():
    """Hydra's own config loader over ``tests/apps/composition/conf``, as an app has it."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(
        config_dir=str(COMPOSITION_CONF), version_base="1.3", job_name="compat"
    ):
        yield GlobalHydra.instance().config_loader()


def test_is_hydra_config_loader_takes_hydras_own_only(loader):
    from ivory_hydra.sweeper.composition import ComposeOnceLoader

    assert _compat.is_hydra_config_loader(loader), (
        f"hydra moved ConfigLoaderImpl: its loader is a {type(loader)}"
    )

    class Custom(type(loader)):
        pass

    assert not _compat.is_hydra_config_loader(Custom(loader.get_search_path()))
    assert not _compat.is_hydra_config_loader(ComposeOnceLoader(loader))


def test_compose_defaults_is_hydras_composition_before_the_value_overrides(loader):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    overrides = ["model=large", "a=5", "+extra=1", "hydra/job_logging=none", "hydra.verbose=true"]
    done = _compat.compose_defaults(loader, "config", overrides)
    assert [o.input_line for o in done.overrides] == overrides
    assert [o.input_line for o in done.config_overrides] == [
        "a=5",
        "+extra=1",
        "hydra.verbose=true",
    ], "hydra changed which overrides defaults_list.Overrides.config_overrides sets aside"
    assert done.config.a == 0 and "extra" not in done.config and done.config.model.name == "large"
    assert OmegaConf.is_struct(done.config) and not OmegaConf.is_readonly(done.config.hydra)
    hydra = loader.load_configuration("config", overrides, RunMode.RUN)
    assert done.known_choices == dict(hydra.hydra.runtime.choices)
    assert [tuple(s.values()) for s in hydra.hydra.runtime.config_sources] == done.sources
    _compat.apply_overrides(done.config_overrides, done.config)
    assert done.config.a == 5 and done.config.extra == 1


def test_finish_composition_makes_hydras_job_config(loader):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    master = loader.load_configuration(
        "config", ["a=1,2", "hydra.job.env_copy=[HOME]"], RunMode.MULTIRUN
    )
    job = ["model=large", "a=2", "+extra=3", "~flag", "hydra.job.chdir=true"]
    expected = loader.load_sweep_config(master, job)
    done = _compat.compose_defaults(loader, "config", [*master.hydra.overrides.hydra, *job])
    cfg = done.config
    _compat.finish_composition(
        cfg, done.overrides, done.config_overrides, done.known_choices, done.sources, "config"
    )
    served = OmegaConf.to_container(cfg, resolve=False)
    composed = OmegaConf.to_container(expected, resolve=False)
    differ = [k for k in served.keys() | composed.keys() if served.get(k) != composed.get(k)]
    differ += [
        f"hydra.{k}"
        for k in served["hydra"].keys() | composed["hydra"].keys()
        if served["hydra"].get(k) != composed["hydra"].get(k)
    ]
    assert served == composed, (
        "hydra changed ConfigLoaderImpl._load_configuration_impl: finish_composition no "
        f"longer makes Hydra's job config; keys that differ: {sorted(differ)}"
    )
    assert (cfg.a, cfg.extra, "flag" in cfg) == (2, 3, False)
    assert list(cfg.hydra.overrides.task) == job[:-1]
    assert cfg.hydra.job.override_dirname == "+extra=3,a=2,model=large,~flag"
    assert dict(cfg.hydra.job.env_set) == {"HOME": os.environ["HOME"]}


def test_overrides_dirname_is_hydras(loader):
    from hydra.types import RunMode

    overrides = ["b=2", "a='x,y'", "seed=1"]
    done = _compat.compose_defaults(loader, "dirname", overrides)
    text = _compat.overrides_dirname(done.overrides, ["seed"], "__", ":")
    assert text == "a:'x,y'__b:2"
    hydra = loader.load_configuration("dirname", overrides, RunMode.RUN)
    assert text == hydra.hydra.job.override_dirname, (
        f"hydra changed get_overrides_dirname: {text!r} != {hydra.hydra.job.override_dirname!r}"
    )


# ------------------------------------------------------------------ nowhere else

#: Private names of Hydra, Optuna and MLflow; ``self.`` excludes ivory-hydra's own
#: attributes of the same name (``Range._value``, ``Engine._trial_id``).
PRIVATE_NAMES = {
    "ConfigLoaderImpl._apply_overrides_to_config": r"_apply_overrides_to_config\b",
    "Override._get_value_element_as_str": r"_get_value_element_as_str\b",
    "Override._convert_value": r"_convert_value\b",
    "JobReturn._return_value": r"\._return_value\b",
    "Override._value": r"(?<!self)\._value\b",
    "MlflowClient._tracking_client": r"_tracking_client\b",
    "mlflow's active run stack": r"_active_run_stack\b|_last_active_run_id\b",
    "Trial._trial_id / FrozenTrial._trial_id": r"(?<!self)\._trial_id\b",
    "hydra._internal": r"\bhydra\._internal\b",
    "ConfigLoaderImpl._parse_overrides_and_create_caching_repo": (
        r"_parse_overrides_and_create_caching_repo\b"
    ),
    "ConfigLoaderImpl._compose_config_from_defaults_list": (
        r"_compose_config_from_defaults_list\b"
    ),
    "ConfigLoaderImpl.repository": r"\.repository\b|[\'\"]repository[\'\"]",
    "JobReturn.__new__ (a copy of its __dict__)": r"\.__new__\(",
    "optuna.trial.Trial(study, trial_id)": r"\bTrial\(",
    "the text of Study.stop's error": r"Study\.stop",
    "a class known by its name (BasicLauncher)": r"__name__\s*[!=]=|\bBasicLauncher\b",
}


def test_the_private_name_patterns_find_what_compat_uses():
    text = (PACKAGE / "_compat.py").read_text()
    for name in (
        "ConfigLoaderImpl._apply_overrides_to_config",
        "Override._get_value_element_as_str",
        "Override._convert_value",
        "JobReturn._return_value",
        "Override._value",
        "hydra._internal",
        "JobReturn.__new__ (a copy of its __dict__)",
        "optuna.trial.Trial(study, trial_id)",
        "a class known by its name (BasicLauncher)",
    ):
        assert re.search(PRIVATE_NAMES[name], text), f"the pattern of {name} finds nothing"
    assert not re.search(PRIVATE_NAMES["Override._value"], "self._value(i)")
    assert not re.search(PRIVATE_NAMES["Trial._trial_id / FrozenTrial._trial_id"], "self._trial_id")
    assert re.search(PRIVATE_NAMES["Trial._trial_id / FrozenTrial._trial_id"], "trial._trial_id")
    old_code = {  # what stood in the package before it moved to _compat
        "ConfigLoaderImpl.repository": 'getattr(config_loader, "repository", None)',
        "optuna.trial.Trial(study, trial_id)": "trial = optuna.trial.Trial(study, trial_id)",
        "the text of Study.stop's error": 'if "Study.stop" not in str(error):',
        "a class known by its name (BasicLauncher)": 'type(launcher).__name__ != "BasicLauncher"',
    }
    for name, line in old_code.items():
        assert re.search(PRIVATE_NAMES[name], line), f"the pattern of {name} misses {line!r}"
    assert not re.search(PRIVATE_NAMES["optuna.trial.Trial(study, trial_id)"], "JobTrial(s)")


def test_no_private_name_of_a_dependency_outside_compat():
    sources = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py" and ".venv" not in path.parts
    ]
    plugin = PACKAGE.parent / "hydra_plugins"
    sources += sorted(plugin.rglob("*.py")) if plugin.is_dir() else []
    assert len(sources) > 10, f"the package source was not found under {PACKAGE}"
    found = []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name, pattern in PRIVATE_NAMES.items():
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {name}: {line}")
    assert not found, "private names used outside ivory_hydra/_compat.py:\n" + "\n".join(found)


# ------------------------------------------------------------------ the stores


def test_mlflows_db_logger_is_the_one_that_logs_operational_errors():
    import inspect
    import logging

    from mlflow.store.db import utils

    assert utils._logger is logging.getLogger(_compat.MLFLOW_DB_LOGGER), (
        "mlflow renamed the logger of mlflow.store.db.utils: "
        f"_compat.MLFLOW_DB_LOGGER = {_compat.MLFLOW_DB_LOGGER!r} no longer names it"
    )
    source = inspect.getsource(utils._get_managed_session_maker)
    assert "except sqlalchemy.exc.OperationalError" in source and "_logger.exception" in source, (
        "mlflow no longer logs OperationalError in make_managed_session: "
        "stores/retry.py's quiet filter may be moot"
    )


def test_the_private_rdb_calls_of_optunas_cached_storage():
    import inspect

    from optuna.storages import _cached_storage

    calls = set(re.findall(r"_backend\.(_\w+)\(", inspect.getsource(_cached_storage)))
    assert calls == set(_compat.CACHED_STORAGE_PRIVATE_CALLS), (
        "optuna's _CachedStorage calls other private RDBStorage methods: "
        f"{sorted(calls)}, not {sorted(_compat.CACHED_STORAGE_PRIVATE_CALLS)} "
        "(stores/resilient.py must retry them too)"
    )


def test_the_backend_of_optunas_cached_storage(tmp_path):
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(storage=storage)
    assert _compat.cached_storage_backend(study._storage) is storage, (
        "optuna's _CachedStorage._backend no longer holds the RDBStorage it wraps"
    )
    assert _compat.cached_storage_backend(storage) is None


def test_the_id_of_a_frozen_trial(tmp_path):
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(storage=storage)
    study.add_trial(optuna.trial.create_trial(value=1.0))
    [frozen] = study.trials
    study_id = storage.get_study_id_from_name(study.study_name)
    assert _compat.frozen_trial_id(frozen) == storage.get_trial_id_from_study_id_trial_number(
        study_id, frozen.number
    ), "optuna changed FrozenTrial._trial_id: it is no longer the storage's id of the trial"


def test_a_trial_number_from_its_row_of_an_rdb_storage(tmp_path):
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(storage=storage)
    for value in (1.0, 2.0, 3.0):
        study.add_trial(optuna.trial.create_trial(value=value))
    for trial in study.trials:
        trial_id = _compat.frozen_trial_id(trial)
        assert _compat.rdb_trial_number(storage, trial_id) == trial.number, (
            "optuna's _rdb.models.TrialModel or _rdb.storage._create_scoped_session changed: "
            "a trial's number is no longer read from its row"
        )
    with pytest.raises(KeyError, match="No trial with trial_id 99"):
        _compat.rdb_trial_number(storage, 99)


def test_optunas_storage_service_on_a_server_of_our_own(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import optuna

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path}/o.db")
    _compat.add_optuna_storage_service(storage, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=10)
        study_id = client.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
        assert storage.get_study_id_from_name("s") == study_id, (
            "optuna's api_pb2_grpc.add_StorageServiceServicer_to_server or "
            "servicer.OptunaStorageProxyService changed: the proxy no longer serves its storage"
        )
        client.close()
    finally:
        server.stop(None)


def test_a_run_pushed_and_popped_is_mlflows_active_run_in_this_thread_only(tmp_path):
    import threading

    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    run = client.create_run(client.create_experiment("e"))
    _compat.push_active_run(client.get_run(run.info.run_id))
    try:
        assert mlflow.active_run().info.run_id == run.info.run_id, (
            "mlflow.tracking.fluent._active_run_stack no longer makes a run active"
        )
        other: list = []
        thread = threading.Thread(target=lambda: other.append(mlflow.active_run()))
        thread.start()
        thread.join()
        assert other == [None], "MLflow's active run is no longer thread-local"
    finally:
        popped = _compat.pop_active_run()
    assert popped.info.run_id == run.info.run_id and mlflow.active_run() is None
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")  # last_active_run reads it there
    try:
        assert mlflow.last_active_run().info.run_id == run.info.run_id
    finally:
        mlflow.set_tracking_uri(previous)
    assert _compat.pop_active_run() is None


def test_the_engine_of_an_mlflow_client_is_shared_per_database(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/m.db"
    engine = _compat.sqlalchemy_store_engine(MlflowClient(uri))
    assert engine is not None and str(engine.url) == uri, (
        "MlflowClient._tracking_client.store.engine no longer is the store's engine"
    )
    assert _compat.sqlalchemy_store_engine(MlflowClient(uri)) is engine, (
        "MLflow no longer shares one engine per database in a process"
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # the fluent API (the user's log_metric) uses it too
    try:
        assert _compat.sqlalchemy_store_engine(mlflow.MlflowClient()) is engine
    finally:
        mlflow.set_tracking_uri(previous)
    assert _compat.sqlalchemy_store_engine(MlflowClient("http://127.0.0.1:9")) is None  # REST
