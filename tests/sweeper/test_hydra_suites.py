"""Hydra's own launcher and sweeper test suites, run with ``hydra/sweeper=ivory``.

The suites in ``hydra.test_utils.launcher_common_tests`` are written for
launchers and take the launcher name plus extra ``overrides``; adding
``hydra/sweeper=ivory`` to those overrides runs every suite sweep through the
ivory sweeper instead of Hydra's BasicSweeper.

Every test gets fresh stores. The sweeper keeps its Optuna study (and MLflow
runs) in the working directory by default and resumes a sweep it has seen
before, so a shared store would turn later tests into no-op resumes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)

pytestmark = [
    pytest.mark.slow,
    # Hydra's suite configs have no version_base; its chdir notice is noise here.
    pytest.mark.filterwarnings("ignore:Future Hydra versions:UserWarning"),
]

#: Placeholder in the suites' ``overrides`` for the test's own store directory.
STORES = "{stores}"


def ivory(*extra: str, mlflow: bool = False) -> list[str]:
    """Overrides that select the ivory sweeper with stores under ``{stores}``."""
    if mlflow:
        tracking = [f"hydra.sweeper.mlflow.tracking_uri=sqlite:///{STORES}/mlflow.db"]
    else:
        tracking = ["hydra.sweeper.mlflow.enabled=false"]
    return [
        "hydra/sweeper=ivory",
        "hydra.sweeper.verbose=0",
        f"hydra.sweeper.storage=sqlite:///{STORES}/optuna.db",
        *tracking,
        *extra,
    ]


@pytest.fixture(autouse=True)
def workdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory (and store directory) for each test.

    It is not under ``tmp_path``: the suites pass ``tmpdir`` (the same folder)
    as the sweep dir and delete it after the sweep, and reused joblib (loky)
    workers keep the cwd they were started in, which must outlive the test.
    """
    path = tmp_path_factory.mktemp("work")
    monkeypatch.chdir(path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return path


@pytest.fixture
def overrides(request: pytest.FixtureRequest, workdir: Path) -> list[str]:
    """The suites' ``overrides`` (indirect), with ``{stores}`` filled in.

    A fresh list every time: some suite tests ``extend()`` it in place.
    """
    result = [o.replace(STORES, str(workdir)) for o in request.param]
    if any("mlflow.db" in o for o in result):
        template = request.getfixturevalue("mlflow_template")
        shutil.copy(template, workdir / "mlflow.db")
    return result


@pytest.mark.parametrize("launcher_name, overrides", [("basic", ivory())], indirect=["overrides"])
class TestIvoryBasicLauncher(LauncherTestSuite):
    pass


class _IvoryMlflowLauncherSuite(LauncherTestSuite):
    """LauncherTestSuite plus a check of both stores (not collected itself)."""

    def test_sweep_is_recorded(
        self, hydra_sweep_runner, launcher_name, overrides, tmpdir, workdir
    ) -> None:
        """Not from the suite: the MLflow variant really writes both stores."""
        import optuna
        from mlflow.tracking import MlflowClient

        sweep = hydra_sweep_runner(
            calling_file=None,
            calling_module="hydra.test_utils.a_module",
            task_function=None,
            config_path="configs",
            config_name="compose",
            overrides=[f"hydra/launcher={launcher_name}", *overrides, "bar=1,2"],
            temp_dir=tmpdir,
        )
        with sweep:
            assert [len(batch) for batch in sweep.returns] == [2]

        storage = f"sqlite:///{workdir}/optuna.db"
        names = [
            name
            for name in optuna.get_all_study_names(storage)
            if name.startswith("a_module-product-bar-")
        ]
        assert len(names) == 1
        trials = optuna.load_study(study_name=names[0], storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
        assert [t.value for t in trials] == [100, 100]

        client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
        experiment = client.get_experiment_by_name("a_module")
        runs = client.search_runs([experiment.experiment_id])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert [r.info.run_name for r in parents] == ["task#0"]
        assert sorted(r.info.run_name for r in children) == ["run#0", "run#1"]
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert sorted(r.data.params["bar"] for r in children) == ["1", "2"]


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [("basic", ivory(mlflow=True))],
    indirect=["overrides"],
)
class TestIvoryBasicLauncherMlflow(_IvoryMlflowLauncherSuite):
    pass


# Jobs run in loky worker processes; the MLflow child run is activated there.
@pytest.mark.parametrize(
    "launcher_name, overrides",
    [("joblib", ivory("hydra.launcher.n_jobs=2", mlflow=True))],
    indirect=["overrides"],
)
class TestIvoryJoblibLauncherMlflow(_IvoryMlflowLauncherSuite):
    pass


@pytest.mark.parametrize(
    "launcher_name, overrides",
    [("basic", ivory("hydra.sweeper.max_batch_size=2"))],
    indirect=["overrides"],
)
class TestIvoryBatchedSweeper(BatchedSweeperTestSuite):
    pass


#: How the integration apps (run in subprocesses, cwd = the test's tmpdir) run
#: the sweeper. Their stores are the embedded defaults, optuna.db in that
#: fresh cwd; MLflow is off there (each subprocess would pay its import).
QUIET_SUBPROCESS = [
    "hydra.sweeper.verbose=0",
    "hydra.sweeper.mlflow.enabled=false",
    "hydra/hydra_logging=hydra_debug",
    "hydra/job_logging=disabled",
]


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [
        pytest.param(
            {},
            ["-m", "hydra/launcher=basic", "hydra/sweeper=ivory", *QUIET_SUBPROCESS],
            id="cli",
        ),
        # The app makes ivory its sweeper in its own defaults list (CONTRACT 3).
        pytest.param(
            {
                "defaults": [
                    {"override hydra/sweeper": "ivory"},
                    {"override hydra/launcher": "basic"},
                    "_self_",
                ]
            },
            ["-m", *QUIET_SUBPROCESS],
            id="app_defaults",
        ),
    ],
)
class TestIvoryIntegration(IntegrationTestSuite):
    @pytest.fixture(autouse=True)
    def _ivory_ran(self, request: pytest.FixtureRequest, tmpdir) -> Iterator[None]:
        """Each app really swept with ivory: its default store is in its cwd."""
        yield
        assert (Path(tmpdir) / "optuna.db").is_file(), "ivory sweeper not used"

    def test_to_absolute_path_multirun(self, tmpdir, task_launcher_cfg, extra_flags) -> None:
        """The suite's test, with two changes on purpose.

        It runs the same sweep twice in the same directory. With ivory the second
        run is a *resume*: its one job already finished, so it does not run and
        prints nothing. Here the second run gets its own study name, so it is a new
        sweep, as the suite means it to be. And a job's number is its run number,
        which goes on across the sweeps of one experiment (so that no folder is
        written twice): the second sweep's job is ``cli_dir_1``, not ``cli_dir_0``.
        """
        import os

        from hydra.test_utils.test_utils import integration_test
        from omegaconf import DictConfig, OmegaConf

        overrides = [
            *extra_flags,
            "hydra.job.chdir=True",
            "hydra.sweep.dir=cli_dir",
            "hydra.sweep.subdir=cli_dir_${hydra.job.num}",
        ]
        cfg = OmegaConf.merge(OmegaConf.create(task_launcher_cfg or {}), OmegaConf.create())
        assert isinstance(cfg, DictConfig)
        scratch = self.get_test_scratch_dir(tmpdir)
        integration_test(
            tmpdir=scratch,
            task_config=cfg,
            overrides=[*overrides, "hydra.sweeper.study_name=first"],
            prints="hydra.utils.to_absolute_path('/foo/bar')",
            expected_outputs=str(Path("/foo/bar").absolute()),
            generate_custom_cmd=self.generate_custom_cmd(),
        )
        working_dir = self.get_test_app_working_dir() or tmpdir
        outputs = [
            os.path.realpath(str(scratch / "foo/bar")),
            str(self.get_test_scratch_dir(working_dir) / "cli_dir/cli_dir_1"),
        ]
        integration_test(
            tmpdir=scratch,
            task_config=cfg,
            overrides=[*overrides, "hydra.sweeper.study_name=second"],
            prints=["hydra.utils.to_absolute_path('foo/bar')", "os.getcwd()"],
            expected_outputs=outputs,
            generate_custom_cmd=self.generate_custom_cmd(),
        )
