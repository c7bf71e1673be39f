import subprocess
import sys

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ivory_hydra.distributions import distribution_for
from ivory_hydra.store import (
    allocate_numbers,
    open_storage,
    open_study,
    storage_url,
)


@pytest.fixture
def storage(tmp_path):
    return open_storage(storage_url(None, tmp_path))


def test_numbers_continue_per_kind_and_experiment(storage):
    assert allocate_numbers(storage, "torch", "run", 3) == 0
    assert allocate_numbers(storage, "torch", "task", 1) == 0
    assert allocate_numbers(storage, "torch", "run", 2) == 3
    assert allocate_numbers(storage, "other", "run", 1) == 0
    assert allocate_numbers(storage, "torch", "run", 1) == 5
    assert allocate_numbers(storage, "torch", "task", 1) == 1
    with pytest.raises(ValueError, match="count must be positive"):
        allocate_numbers(storage, "torch", "run", 0)


def test_numbers_stay_right_while_another_allocation_is_in_flight(storage):
    import datetime

    from optuna.trial import FrozenTrial, TrialState

    assert allocate_numbers(storage, "e", "run", 3) == 0
    # Another process has created its ledger trial (2 runs) but not yet cached
    # its totals: the next allocation must sum the counts instead.
    study_id = storage.get_study_id_from_name("ivory-hydra.numbers:e")
    now = datetime.datetime.now()
    in_flight = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=now,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={"kind": "run", "count": 2},
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    storage.create_new_trial(study_id, template_trial=in_flight)
    assert allocate_numbers(storage, "e", "run", 1) == 5
    assert allocate_numbers(storage, "e", "task", 1) == 0
    assert allocate_numbers(storage, "e", "run", 1) == 6


def test_numbers_continue_across_processes(tmp_path):
    url = storage_url(None, tmp_path)
    code = (
        "import sys; from ivory_hydra.store import open_storage, allocate_numbers; "
        "print(allocate_numbers(open_storage(sys.argv[1]), 'e', 'run', 4))"
    )
    firsts = [
        subprocess.run(
            [sys.executable, "-c", code, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(3)
    ]
    assert firsts == ["0", "4", "8"]


def test_journal_storage_works_too(tmp_path):
    url = storage_url(str(tmp_path / "journal.log"))
    storage = open_storage(url)
    assert allocate_numbers(storage, "e", "run", 2) == 0
    assert allocate_numbers(storage, "e", "run", 2) == 2
    study = open_study(storage, "s", "maximize")
    trial_id, number = study.start_trial({"a": 1}, {"a": IntDistribution(0, 3)}, {"k": "v"})
    study.finish_trial(trial_id, "complete", 0.5)
    loaded = optuna.load_study(study_name="s", storage=storage)
    assert loaded.best_value == 0.5 and loaded.best_trial.user_attrs == {"k": "v"}


def test_trials_hold_params_states_and_attrs(storage):
    study = open_study(storage, "s", "minimize", "loss")
    dists = {
        "lr": FloatDistribution(0.001, 0.1, log=True),
        "m": CategoricalDistribution(["a", "b"]),
    }
    states = {"complete": 0.25, "fail": None, "pruned": None}
    for state, value in states.items():
        trial_id, _ = study.start_trial({"lr": 0.01, "m": "b"}, dists, {"run_name": state})
        study.finish_trial(trial_id, state, value, {"output_dir": "/x"})
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "PRUNED"]
    assert trials[0].value == 0.25 and trials[1].value is None
    assert trials[0].params == {"lr": 0.01, "m": "b"}
    assert trials[0].distributions == dists
    assert trials[2].user_attrs == {"run_name": "pruned", "output_dir": "/x"}
    assert optuna.load_study(study_name="s", storage=storage).metric_names == ["loss"]


def test_study_direction_cannot_change(storage):
    open_study(storage, "s", "minimize")
    with pytest.raises(ValueError, match="already exists with direction 'minimize'"):
        open_study(storage, "s", "maximize")


def test_distributions():
    assert distribution_for([3, 1, 2]) == IntDistribution(1, 3)
    assert distribution_for([0.1, 1.0], log=True) == FloatDistribution(0.1, 1.0, log=True)
    assert distribution_for([1, 0.5]) == FloatDistribution(0.5, 1.0)
    assert distribution_for([-1.0, 1.0], log=True) == FloatDistribution(-1.0, 1.0)
    assert distribution_for([True, False]) == CategoricalDistribution([True, False])
    assert distribution_for(["vit", 3]) == CategoricalDistribution(["vit", 3])


def test_storage_urls(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path}/optuna.db"
    assert storage_url("x.sqlite3").startswith("sqlite:////")
    assert storage_url("mysql://u@127.0.0.1/db") == "mysql://u@127.0.0.1/db"
