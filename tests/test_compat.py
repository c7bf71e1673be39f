"""Every private Hydra/Optuna/MLflow name ivory-hydra uses, checked against the real library.

``ivory_hydra/_compat.py`` is the only place that touches private names of its
dependencies. Each function there has one test here that runs the installed
library (no mocks) and asserts what ivory-hydra relies on, with a message that
names the private name that changed. The last test makes sure no private name
slipped into the rest of the package.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import QuotedString

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


def _failed_job_return(tmp_path: Path, error: BaseException):
    """A real FAILED JobReturn: Hydra's own ``run_job`` runs a task that raises."""
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
    conf.mkdir()
    (conf / "config.yaml").write_text("x: 1\n")

    def task(cfg):
        raise error

    saved = HydraConfig.instance().cfg
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="compat"):
            config = compose(
                "config",
                overrides=[f"hydra.run.dir={tmp_path / 'out'}"],
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
    "Trial._trial_id / FrozenTrial._trial_id": r"(?<!self)\._trial_id\b",
    "hydra._internal": r"\bhydra\._internal\b",
    "ConfigLoaderImpl._parse_overrides_and_create_caching_repo": (
        r"_parse_overrides_and_create_caching_repo\b"
    ),
    "ConfigLoaderImpl._compose_config_from_defaults_list": (
        r"_compose_config_from_defaults_list\b"
    ),
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
    ):
        assert re.search(PRIVATE_NAMES[name], text), f"the pattern of {name} finds nothing"
    assert not re.search(PRIVATE_NAMES["Override._value"], "self._value(i)")
    assert not re.search(PRIVATE_NAMES["Trial._trial_id / FrozenTrial._trial_id"], "self._trial_id")
    assert re.search(PRIVATE_NAMES["Trial._trial_id / FrozenTrial._trial_id"], "trial._trial_id")


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
