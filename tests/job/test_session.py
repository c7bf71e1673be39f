"""A job's session: it claims its trial once, beats, and records its outcome once."""

from __future__ import annotations

import threading
import time

import pytest

from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.errors import StoreError
from ivory_hydra.job.session import ClaimLostError, JobSession, current_session
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.job.trial import trial
from ivory_hydra.stores import trials
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.study import Study, TrialSpec
from ivory_hydra.stores.trials import Claim


@pytest.fixture
def setup(tmp_path):
    url = storage_url(None, tmp_path)
    storage = open_storage(url)
    study = Study.open(storage, "s", "minimize")
    dists = distributions_for({"a": [1, 2]})
    [(trial_id, number)] = study.create_trials([TrialSpec({"a": 1}, dists, {"run_name": "run#0"})])
    claim = Claim(trial_id, number, "run#0", Point(0, 0, {"a": 1}), {"a": 1})
    return url, storage, claim


def test_claimed_once_beats_and_finishes_once(setup):
    url, storage, claim = setup
    session = JobSession.begin(Ticket(storage=url, heartbeat_interval=0.1), claim)
    assert current_session() is session and trial().number == 0 and trial().params == {"a": 1}
    with pytest.raises(ClaimLostError, match="started or finished elsewhere"):
        JobSession.begin(Ticket(storage=url), claim)
    first = trials.last_beat(storage, storage.get_trial(claim.trial_id))["at"]
    time.sleep(0.35)
    assert trials.last_beat(storage, storage.get_trial(claim.trial_id))["at"] > first
    trial().report(0.7, 0)
    assert session.finish(Outcome("complete", 0.5))
    assert not session.finish(Outcome("fail"))
    assert current_session() is None and trial() is None
    stored = storage.get_trial(claim.trial_id)
    assert stored.value == 0.5 and stored.intermediate_values == {0: 0.7}


def test_scores_with_the_metric(setup):
    url, _, claim = setup
    session = JobSession.begin(Ticket(storage=url, metric="acc"), claim)
    assert session.score({"acc": 0.9}).score == 0.9
    missing = session.score({"loss": 0.1})
    assert missing.error == "MissingMetricError" and "'acc' is missing" in missing.reason
    assert session.score(None).reason == "no score: metric 'acc' was neither returned nor logged"
    session.finish(Outcome("pruned"))


def test_an_unreachable_storage_is_a_store_error(setup, monkeypatch):
    _, _, claim = setup
    monkeypatch.delenv("IVORY_TEST_NO_SUCH_VAR", raising=False)
    with pytest.raises(StoreError, match="cannot resolve"):
        JobSession.begin(Ticket(storage="${oc.env:IVORY_TEST_NO_SUCH_VAR}"), claim)
    with pytest.raises(StoreError, match="cannot open this Optuna storage"):
        JobSession.begin(Ticket(storage="/proc/no/such/journal.log"), claim)


def test_a_job_whose_sweeper_died_fails_unless_its_code_returned(setup, tmp_path):
    url, storage, claim = setup
    session = JobSession.begin(Ticket(storage=url), claim)
    session.orphaned()  # the job's code is still running: its trial fails
    stored = storage.get_trial(claim.trial_id)
    assert stored.state.name == "FAIL" and "died while the job ran" in stored.user_attrs["reason"]

    study = Study.open(storage, "s", "minimize")
    dists = distributions_for({"a": [1, 2]})
    [(trial_id, number)] = study.create_trials([TrialSpec({"a": 2}, dists, {"run_name": "run#1"})])
    returned = JobSession.begin(
        Ticket(storage=url), Claim(trial_id, number, "run#1", Point(0, 1, {"a": 2}), {"a": 2})
    )
    returned.returned()  # its code returned as the sweeper died: it records its own outcome
    watcher = threading.Thread(target=returned.orphaned)
    watcher.start()
    time.sleep(0.2)
    assert watcher.is_alive()  # waiting for the job to record its outcome
    assert returned.finish(Outcome("complete", 0.25))
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert storage.get_trial(trial_id).state.name == "COMPLETE"
