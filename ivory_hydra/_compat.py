"""Every private name of Hydra, Optuna or MLflow that ivory-hydra touches, in one place.

Each has a test (``tests/test_compat.py``) that fails with a clear message
when the dependency changes it. Prefer a public API wherever one does the job.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple, TypeVar

_Return = TypeVar("_Return")


# ------------------------------------------------------------------ Optuna


def trial_of(study: Any, trial_id: int) -> Any:
    """The ``optuna.trial.Trial`` of a trial the study holds (WAITING or RUNNING), to suggest in.

    Optuna: ``Trial(study, trial_id)``, whose direct use its documentation
    discourages (``study.ask()`` makes a new trial; ours exists already, its
    job claims it).
    """
    from optuna.trial import Trial

    return Trial(study, trial_id)


#: The start of the error ``Study.stop()`` raises outside ``study.optimize()``.
STOP_OUTSIDE_OPTIMIZE = "`Study.stop` is supposed to be invoked inside"


def is_stop_outside_optimize(error: BaseException) -> bool:
    """Whether ``error`` is the ``RuntimeError`` of ``Study.stop()`` outside ``optimize()``.

    Optuna's ``GridSampler.after_trial`` calls ``study.stop()`` once its grid is
    done; outside ``study.optimize()`` that raises a ``RuntimeError`` of no
    class of its own, known by its text only.
    """
    return isinstance(error, RuntimeError) and STOP_OUTSIDE_OPTIMIZE in str(error)


# ------------------------------------------------------------------ Hydra


def apply_overrides(overrides: list[Any], config: Any) -> None:
    """Apply parsed value overrides to a config the way Hydra's composition does.

    Hydra: ``ConfigLoaderImpl._apply_overrides_to_config`` (no public
    equivalent; validation uses it to check a value without composing the
    whole config again).
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(overrides, config)


def element_text(element: Any) -> str:
    """An override element as override text, quoted as the user quoted it.

    Hydra: ``Override._get_value_element_as_str`` (the public
    ``get_value_element_as_str`` takes a whole override, not one element of a sweep).
    """
    from hydra.core.override_parser.types import Override

    return Override._get_value_element_as_str(element)


def element_value(element: Any) -> Any:
    """An override element as a plain Python value (quotes removed).

    Hydra: ``Override._convert_value``.
    """
    from hydra.core.override_parser.types import Override

    return Override._convert_value(element)


def override_element(override: Any) -> Any:
    """The parsed element of a non-sweep override, quotes kept (``Override._value``).

    The public ``Override.value()`` drops the quotes, which decide whether a
    value is an Ivory range.
    """
    return override._value


def copy_job_return(result: Any, cls: type[_Return], leave_out: Collection[str]) -> _Return:
    """A ``cls`` (a subclass of ``JobReturn``) holding what ``result`` holds but ``leave_out``.

    Hydra: ``JobReturn`` keeps its fields (``_return_value`` among them) in the
    instance ``__dict__``; the copy is made without ``cls.__init__``, whose
    dataclass defaults would set the left-out fields.
    """
    copy = cls.__new__(cls)  # type: ignore[call-overload]
    for name, value in vars(result).items():
        if name not in leave_out:
            object.__setattr__(copy, name, value)
    return copy  # type: ignore[no-any-return]


def is_basic_launcher(launcher: Any) -> bool:
    """Whether a launcher is Hydra's ``BasicLauncher`` (jobs in this process, one at a time).

    Hydra: ``hydra._internal.core_plugins.basic_launcher.BasicLauncher``. Where
    Hydra moved it, no launcher counts as basic.
    """
    try:
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher
    except ImportError:
        return False
    return isinstance(launcher, BasicLauncher)


#: The logger of Hydra's BasicLauncher (its module's), and the start of its two lines:
#: ``Launching N jobs locally`` per batch, ``\t#<index> : <overrides>`` per job.
BASIC_LAUNCHER_LOGGER = "hydra._internal.core_plugins.basic_launcher"
BASIC_LAUNCHER_LINES = ("Launching ", "\t#")


class _OnceLaunching(logging.Filter):
    """Lets the BasicLauncher's first ``Launching ...`` line through, and no other line."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith(BASIC_LAUNCHER_LINES[1]):
            return False
        if text.startswith(BASIC_LAUNCHER_LINES[0]):
            said, self.said = self.said, True
            return not said
        return True


@contextlib.contextmanager
def basic_launcher_lines_once(launcher: Any) -> Iterator[None]:
    """While our run lines name every job, Hydra's BasicLauncher says where jobs run once.

    Its per-job lines (``#6 : lr=0.007038135554931555``) repeat our run lines with
    the same number, in another format, and its ``Launching 1 jobs locally`` repeats
    for every batch (every trial, in optimize mode). Another launcher's lines are left
    alone. Hydra: the BasicLauncher's module logger, and the text of its lines.
    """
    if not is_basic_launcher(launcher):
        yield
        return
    logger = logging.getLogger(BASIC_LAUNCHER_LOGGER)
    once = _OnceLaunching()
    logger.addFilter(once)
    try:
        yield
    finally:
        logger.removeFilter(once)


def job_exception(job_return: Any) -> BaseException | None:
    """The exception a failed Hydra job raised.

    Hydra: ``JobReturn._return_value`` (the public ``return_value`` re-raises it).
    """
    return job_return._return_value


# ------------------------------------------------ composing a job's config once


def is_hydra_config_loader(config_loader: Any) -> bool:
    """Whether a config loader is Hydra's own ``ConfigLoaderImpl`` (a subclass is not).

    Hydra: ``hydra._internal.config_loader_impl.ConfigLoaderImpl``.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    return type(config_loader) is ConfigLoaderImpl


def composition_source() -> str:
    """The source of the Hydra code that :func:`compose_defaults` and :func:`finish_composition`
    replay, to fingerprint it.

    Hydra: ``ConfigLoaderImpl._load_configuration_impl``, ``load_sweep_config``,
    ``_process_config_searchpath`` and ``defaults_list.Overrides.__init__``.
    """
    import inspect

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.defaults_list import Overrides

    functions = (
        ConfigLoaderImpl._load_configuration_impl,
        ConfigLoaderImpl.load_sweep_config,
        ConfigLoaderImpl._process_config_searchpath,
        Overrides.__init__,
    )
    return "\n".join(inspect.getsource(function) for function in functions)


#: SHA-256 of :func:`composition_source`: the Hydra code that :func:`compose_defaults`
#: and :func:`finish_composition` replay. It is the same in every Hydra 1.3
#: release (1.3.0 to 1.3.8).
HYDRA_COMPOSITION_SHA256 = "ba087c5dc8332da834e912ab52d43ec4a301a44e90025c95fe34209650736c23"


@functools.cache
def composition_matches() -> bool:
    """Whether the installed Hydra composes a job's config with the code replayed here.

    >>> composition_matches()
    True
    """
    try:
        source = composition_source()
    except (OSError, TypeError, ImportError, AttributeError):  # no source, or Hydra moved it
        return False
    return hashlib.sha256(source.encode()).hexdigest() == HYDRA_COMPOSITION_SHA256


class DefaultsComposition(NamedTuple):
    """The first half of Hydra's composition of a job's config (see :func:`compose_defaults`)."""

    config: Any  # the composed config, struct mode, before the value overrides
    overrides: list[Any]  # every parsed override, in order
    config_overrides: list[Any]  # the value overrides, in order (the same objects)
    known_choices: dict[str, str | None]  # the defaults list's choices
    sources: list[tuple[str, str, str]]  # (path, scheme, provider) of the config sources


def compose_defaults(
    config_loader: Any, config_name: str | None, overrides: list[str]
) -> DefaultsComposition:
    """Compose a config from files the way Hydra does, up to the value overrides.

    The first half of ``ConfigLoaderImpl._load_configuration_impl`` in RUN mode
    (no public equivalent): parse the overrides, process ``hydra.searchpath``,
    build the defaults list (``create_defaults_list``), compose it
    (``_compose_config_from_defaults_list``), set struct mode.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.defaults_list import create_defaults_list
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    config_loader.ensure_main_config_source_available()
    parsed, repo = config_loader._parse_overrides_and_create_caching_repo(config_name, overrides)
    ConfigLoaderImpl.validate_sweep_overrides_legal(
        overrides=parsed, run_mode=RunMode.RUN, from_shell=True
    )
    defaults_list = create_defaults_list(
        repo=repo,
        config_name=config_name,
        overrides_list=parsed,
        prepend_hydra=True,
        skip_missing=False,
    )
    cfg = config_loader._compose_config_from_defaults_list(
        defaults=defaults_list.defaults, repo=repo
    )
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_readonly(cfg.hydra, False)
    return DefaultsComposition(
        config=cfg,
        overrides=parsed,
        config_overrides=list(defaults_list.config_overrides),
        known_choices=dict(defaults_list.overrides.known_choices),
        sources=[(s.path, s.scheme(), s.provider) for s in repo.get_sources()],
    )


def finish_composition(
    cfg: Any,
    overrides: list[Any],
    config_overrides: list[Any],
    known_choices: dict[str, str | None],
    sources: list[tuple[str, str, str]],
    config_name: str | None,
) -> None:
    """The second half of Hydra's composition of a job's config, on ``cfg`` in place.

    The rest of ``ConfigLoaderImpl._load_configuration_impl`` after
    :func:`compose_defaults` (no public equivalent), step for step: apply the
    value overrides (``config_overrides``) in their order, then fill
    ``hydra.overrides``, ``hydra.runtime`` (choices, version, cwd, config
    sources), ``hydra.job.env_set``, ``name``, ``override_dirname`` and
    ``config_name`` from ``overrides`` (every parsed override) and the
    defaults list's ``known_choices`` and ``sources``.
    """
    from hydra import __version__, version
    from hydra.conf import ConfigSourceInfo
    from hydra.core.utils import JobRuntime
    from omegaconf import open_dict

    apply_overrides(config_overrides, cfg)
    app_overrides = []
    for override in overrides:
        if override.is_hydra_override():
            cfg.hydra.overrides.hydra.append(override.input_line)
        else:
            cfg.hydra.overrides.task.append(override.input_line)
            app_overrides.append(override)

    with open_dict(cfg.hydra):
        cfg.hydra.runtime.choices.update(known_choices)
        for key in cfg.hydra.job.env_copy:
            cfg.hydra.job.env_set[key] = os.environ[key]

    cfg.hydra.runtime.version = __version__
    cfg.hydra.runtime.version_base = version.getbase()
    cfg.hydra.runtime.cwd = os.getcwd()
    cfg.hydra.runtime.config_sources = [
        ConfigSourceInfo(path=path, schema=scheme, provider=provider)
        for path, scheme, provider in sources
    ]
    if "name" not in cfg.hydra.job:
        cfg.hydra.job.name = JobRuntime().get("name")

    cfg.hydra.job.override_dirname = overrides_dirname(
        overrides=app_overrides,
        kv_sep=cfg.hydra.job.config.override_dirname.kv_sep,
        item_sep=cfg.hydra.job.config.override_dirname.item_sep,
        exclude_keys=cfg.hydra.job.config.override_dirname.exclude_keys,
    )
    cfg.hydra.job.config_name = config_name


def overrides_dirname(
    overrides: list[Any], exclude_keys: list[str], item_sep: str, kv_sep: str
) -> str:
    """``hydra.job.override_dirname`` of these task overrides, as Hydra writes it.

    Hydra: ``hydra._internal.config_loader_impl.get_overrides_dirname``.
    """
    from hydra._internal.config_loader_impl import get_overrides_dirname

    return get_overrides_dirname(
        overrides=overrides, exclude_keys=exclude_keys, item_sep=item_sep, kv_sep=kv_sep
    )


# ------------------------------------------------ the stores (Optuna, MLflow)

#: MLflow's logger that logs every SQLAlchemy ``OperationalError`` (with a
#: traceback) before raising it: ``mlflow.store.db.utils._logger``, used by
#: ``make_managed_session``. ``stores/retry.py`` quiets it while it retries.
MLFLOW_DB_LOGGER = "mlflow.store.db.utils"

#: The private methods of ``RDBStorage`` that Optuna's ``_CachedStorage`` (what
#: ``optuna.load_study`` wraps an ``RDBStorage`` in) calls on it, besides the
#: public ``BaseStorage`` ones: ``stores/resilient.py`` retries them too.
CACHED_STORAGE_PRIVATE_CALLS = (
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)


def cached_storage_backend(storage: Any) -> Any:
    """The storage inside Optuna's ``_CachedStorage`` wrapper (None for any other storage).

    Optuna: ``optuna.storages._cached_storage._CachedStorage._backend``
    (``optuna.load_study`` wraps an ``RDBStorage`` in it).
    """
    from optuna.storages._cached_storage import _CachedStorage

    return storage._backend if isinstance(storage, _CachedStorage) else None


def frozen_trial_id(trial: Any) -> int:
    """The storage's id of a trial read back from it.

    Optuna: ``FrozenTrial._trial_id`` (no public equivalent; ``number`` counts
    within a study, while a storage's calls take the id). The beats board keys
    trials' heartbeats by it.
    """
    return int(trial._trial_id)


def rdb_trial_number(storage: Any, trial_id: int) -> int:
    """A trial's number, one column of one row of an ``RDBStorage``'s database.

    Optuna: ``optuna.storages._rdb.models.TrialModel`` and
    ``optuna.storages._rdb.storage._create_scoped_session`` (``RDBStorage``
    inherits ``get_trial_number_from_id`` from ``BaseStorage``, which reads the
    whole trial, its params, values and attributes, for it). Raises ``KeyError``
    for an unknown id, as Optuna does.
    """
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        number = (
            session.query(models.TrialModel.number)
            .filter(models.TrialModel.trial_id == trial_id)
            .scalar()
        )
    if number is None:
        raise KeyError(f"No trial with trial_id {trial_id} exists.")
    return int(number)


def add_optuna_storage_service(storage: Any, server: Any) -> None:
    """Serve Optuna's gRPC storage service for ``storage`` on ``server`` (not started).

    Optuna: the two lines of ``optuna.storages._grpc.server.make_server`` that
    add the service (``api_pb2_grpc.add_StorageServiceServicer_to_server`` with
    ``servicer.OptunaStorageProxyService``). ``make_server`` itself builds the
    ``grpc.server`` with no way to pass interceptors; ``ivory_hydra.proxy``
    builds its own and adds the records service beside this one.
    """
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)


def push_active_run(run: Any) -> None:
    """Make ``run`` (a ``mlflow.entities.Run`` read from the store) the active run of this
    thread, as ``mlflow.start_run(run_id=...)`` does last, without its store calls.

    MLflow: ``mlflow.tracking.fluent._active_run_stack`` (thread-local in MLflow 3)
    and ``ActiveRun``. ``start_run`` reads the run twice and writes its status; the
    job's run was made RUNNING by the sweeper and read once, under a deadline.
    """
    from mlflow.tracking import fluent

    fluent._active_run_stack.get().append(fluent.ActiveRun(run))


def pop_active_run() -> Any:
    """Take this thread's active run off MLflow's stack, as ``mlflow.end_run()`` does
    first, without writing its status (the caller does, under a deadline); None if none.

    MLflow: ``mlflow.tracking.fluent._active_run_stack`` and ``_last_active_run_id``
    (``mlflow.last_active_run()`` reads it).
    """
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if not stack:
        return None
    run = stack.pop()
    fluent._last_active_run_id.set(run.info.run_id)
    return run


def sqlalchemy_store_engine(client: Any) -> Any:
    """The SQLAlchemy engine behind an ``MlflowClient`` on a database store (None for others).

    MLflow: ``MlflowClient._tracking_client.store.engine``; MLflow keeps one engine
    per database URI in a process (``SqlAlchemyStore._engine_map``), which the
    fluent API (``mlflow.log_metric``) shares.
    """
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return getattr(store, "engine", None)
