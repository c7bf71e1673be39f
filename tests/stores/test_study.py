"""A sweep's study and its trials: WAITING trials, claims, finishes, on real storages."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.stores import trials
from ivory_hydra.stores.distributions import distribution_for
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.study import Study, TrialSpec

DISTS = {"lr": FloatDistribution(0.001, 0.1, log=True), "m": CategoricalDistribution(["a", "b"])}


@pytest.fixture(params=["sqlite", "journal"])
def storage(request, tmp_path):
    name = None if request.param == "sqlite" else str(tmp_path / "journal.log")
    return open_storage(storage_url(name, tmp_path))


def spec(**attrs):
    return TrialSpec({"lr": 0.01, "m": "b"}, DISTS, attrs)


def test_waiting_trials_are_claimed_once_and_finished_once(storage):
    study = Study.open(storage, "s", "minimize", "loss")
    assert study.created
    [(trial_id, number), (other_id, _)] = study.create_trials([spec(run_name="run#0"), spec()])
    assert number == 0
    waiting = storage.get_trial(trial_id)
    assert waiting.state == TrialState.WAITING and waiting.datetime_start is None
    assert trials.claim(storage, trial_id)
    assert not trials.claim(storage, trial_id)  # the compare-and-set succeeds once
    running = storage.get_trial(trial_id)
    assert running.state == TrialState.RUNNING and running.datetime_start is not None
    assert trials.last_beat(storage, running)["pid"] > 0
    assert trials.finish(storage, trial_id, Outcome("complete", 0.25))
    assert not trials.finish(storage, trial_id, Outcome("fail", None, "late"))
    assert not trials.claim(storage, trial_id)
    # a trial whose job never claimed it can be finished from elsewhere
    assert trials.finish(storage, other_id, Outcome("fail", None, "x: y", "X"), claimed=False)
    loaded = optuna.load_study(study_name="s", storage=storage)
    assert [t.state.name for t in loaded.trials] == ["COMPLETE", "FAIL"]
    assert loaded.trials[0].value == 0.25 and loaded.trials[0].params == {"lr": 0.01, "m": "b"}
    assert loaded.trials[0].distributions == DISTS
    assert loaded.trials[1].user_attrs == {"reason": "x: y", "error": "X"}
    assert loaded.trials[1].datetime_start is not None
    assert loaded.metric_names == ["loss"]
    assert trials.trial_outcome(loaded.trials[1]) == Outcome("fail", None, "x: y", "X")


def test_pruned_and_unscored_trials(storage):
    study = Study.open(storage, "s", "maximize")
    [(a, _), (b, _)] = study.create_trials([spec(), spec()])
    for trial_id in (a, b):
        trials.claim(storage, trial_id)
    trials.finish(storage, a, Outcome("pruned"))
    trials.finish(storage, b, Outcome("pruned", 0.5, "pruned at step 3", "TrialPruned"))
    loaded = study.trials()
    assert [t.state for t in loaded] == [TrialState.PRUNED] * 2
    assert loaded[0].value is None and loaded[1].value == 0.5


def test_study_attrs_and_direction(storage):
    study = Study.open(storage, "s", "minimize")
    study.set_attrs({"kind": "sweep", "decisions": {"lr": {"value": 0.01, "index": 1}}})
    again = Study.open(storage, "s", "minimize")
    assert not again.created and again.study_id == study.study_id
    assert again.user_attrs["decisions"]["lr"]["value"] == 0.01
    with pytest.raises(ValueError, match="already exists with direction 'minimize'"):
        Study.open(storage, "s", "maximize")
    assert Study.find(storage, "nope") is None
    study.delete()
    assert Study.find(storage, "s") is None


def test_distributions():
    assert distribution_for([3, 1, 2]) == IntDistribution(1, 3)
    assert distribution_for([0.1, 1.0], log=True) == FloatDistribution(0.1, 1.0, log=True)
    assert distribution_for([1, 0.5]) == FloatDistribution(0.5, 1.0)
    assert distribution_for([-1.0, 1.0], log=True) == FloatDistribution(-1.0, 1.0)
    assert distribution_for([True, False]) == CategoricalDistribution([True, False])
    assert distribution_for(["vit", 3]) == CategoricalDistribution(["vit", 3])


CREATE = """
import sys
from ivory_hydra.stores.optuna_storage import open_storage
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.study import Study
storage = open_storage(sys.argv[1])
Study.open(storage, "s" + sys.argv[2], "minimize")
print(ledger_for(sys.argv[1]).add("n", 1))
"""


def test_processes_creating_the_same_fresh_sqlite_file_both_work(tmp_path):
    url = storage_url(None, tmp_path / "fresh")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, url, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert sorted(int(out) for out, _ in outputs) == [0, 1, 2, 3]
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert names == {"s0", "s1", "s2", "s3"}
