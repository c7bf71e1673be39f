"""The saved view that opens a sweep's runs in MLflow's UI, on a real SQLite store."""

from __future__ import annotations

import json
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest

from ivory_hydra.core.objectives import Objectives
from ivory_hydra.stores.mlflow_mirror import ChildSpec, MlflowMirror
from ivory_hydra.stores.mlflow_ui import VIEW_TAG_PREFIX, save_runs_view, where_in_mlflow


@pytest.fixture
def mirror(tmp_path, mlflow_template) -> MlflowMirror:
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return MlflowMirror(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp")


def sweep_runs(mirror: MlflowMirror) -> str:
    """A parent run with three child runs, as a sweep leaves them."""
    parent = mirror.open_parent("task#4", {})
    for n, lr in enumerate([0.1, 0.01, 0.001]):
        child = mirror.create_child(parent, ChildSpec(f"run#{n}", {"lr": lr, "model": "vit"}))
        mirror.finish_child(child, "FINISHED", metrics={"loss": lr * 10})
    return parent


def saved_view(mirror: MlflowMirror, key: str) -> dict:
    tags = mirror.client.get_experiment(mirror.experiment_id()).tags
    envelope = json.loads(tags[VIEW_TAG_PREFIX + key])
    assert isinstance(envelope["createdAt"], int) and envelope["name"]
    return json.loads(envelope["state"])


def test_the_link_opens_the_runs_tab_on_a_saved_view_of_the_sweep(mirror):
    parent = sweep_runs(mirror)
    url = save_runs_view(mirror, parent, "task#4", ["loss"], "maximize", params=["model"])
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://127.0.0.1:5000"  # `mlflow ui`
    path, _, query = parts.fragment.partition("?")
    assert path == f"/experiments/{mirror.experiment_id()}/runs"
    assert parse_qs(query) == {
        "workflowType": ["machine_learning"],  # wins over the GenAI / Model training toggle
        "viewStateShareKey": ["ivory-task4"],
    }
    state = saved_view(mirror, "ivory-task4")
    assert state["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent}'"
    assert state["orderByKey"] == "metrics.`loss`" and state["orderByAsc"] is False
    # the score, then the sweep's params in its order, the others sorted
    assert state["selectedColumns"] == ["metrics.`loss`", "params.`model`", "params.`lr`"]
    assert state["columnOrder"][:2] == ["attributes.`Run Name`", "metrics.`loss`"]


def test_a_resumed_sweep_rewrites_its_view_and_other_sweeps_keep_theirs(mirror):
    first = sweep_runs(mirror)
    save_runs_view(mirror, first, "task#0", ["score"])
    second = sweep_runs(mirror)
    save_runs_view(mirror, second, "task#1", ["score"])
    save_runs_view(mirror, second, "task#1", ["score", "acc"])
    assert saved_view(mirror, "ivory-task0")["searchFilter"].endswith(f"'{first}'")
    again = saved_view(mirror, "ivory-task1")
    assert again["selectedColumns"][:2] == ["metrics.`score`", "metrics.`acc`"]


def test_a_view_that_cannot_be_saved_falls_back_to_the_runs_sorted_by_score(mirror, caplog):
    parent = sweep_runs(mirror)
    # an experiment tag key holds at most 250 characters: a view MLflow refuses to save
    url = save_runs_view(mirror, parent, "task#" + "9" * 300, ["loss"])
    query = parse_qs(urlsplit(url).fragment.partition("?")[2])
    assert query["orderByKey"] == ["metrics.`loss`"] and "viewStateShareKey" not in query
    assert "No saved MLflow view" in caplog.text


def test_the_summary_lines_and_a_rerun_that_does_not_open_mlflow(mirror, tmp_path):
    parent = sweep_runs(mirror)
    summary = {"task": "task#4", "decisions": {"model": {}}, "best": {"params": {"lr": 1}}}
    url, lines = where_in_mlflow(mirror, parent, summary, Objectives.of("minimize", "loss"))
    assert lines[0] == f"MLflow:  mlflow ui --backend-store-uri {mirror.tracking_uri}"
    assert lines[1] == f"         then open {url}"
    assert "Model training" in lines[2]
    assert saved_view(mirror, "ivory-task4")["selectedColumns"][1:] == [
        "params.`model`",
        "params.`lr`",
    ]
    assert where_in_mlflow(None, parent, summary, Objectives.of("minimize", "loss")) == (None, [])
    # a rerun with nothing to run reuses the link of the results.yaml before it
    results = tmp_path / "results.yaml"
    results.write_text(f"task: task#4\nmlflow_runs_url: {url}\n")
    fresh = MlflowMirror(mirror.tracking_uri, "exp")
    again, rerun_lines = where_in_mlflow(
        fresh, None, summary, Objectives.of("minimize", "loss"), results
    )
    assert again == url and rerun_lines == lines
    assert fresh._client_obj is None  # MLflow was not opened
