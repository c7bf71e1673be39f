"""A link that opens a sweep in MLflow 3's UI on its runs, the score shown.

MLflow 3.17's UI opens an experiment on its GenAI "Overview" (traces), lists runs
only after its "Model training" toggle, nests child runs under their collapsed
parent, and shows no metric column until one is picked. What steers it, as read
in its source (``mlflow/server/js/src``, built into ``mlflow/server/js/build``):

- ``common/contexts/WorkflowTypeContext.tsx``: the URL parameter
  ``workflowType=machine_learning`` (or ``genai``) wins over the toggle, which is
  kept per browser in local storage (key ``mlflow.workflowType``, default
  ``genai``). No experiment tag sets the toggle: ``mlflow.experimentKind`` is read
  only where the toggle does not decide.
- ``experiment-page/hooks/useSharedExperimentViewState.ts`` with
  ``utils/savedViewEnvelope.ts``: ``viewStateShareKey=<id>`` loads the experiment
  tag ``mlflow.sharedViewState.<id>``, a saved view: JSON ``{name, createdAt,
  state}`` whose ``state`` is the JSON of the runs page's search facets
  (``searchFilter``, ``orderByKey``, ``orderByAsc``, ...) and UI state
  (``selectedColumns``, keys written ``metrics.`score```). It is skipped when the
  URL itself carries a search facet, and it never sets which runs are expanded.
  The view is also listed by name in the page's "Views" menu.
- The runs table nests child runs only when it is neither filtered nor sorted by
  anything but the start time, so a view filtered on the sweep's parent run and
  sorted by the score lists the sweep's runs flat, best first.
- The experiment's own route redirects to a tab keeping only ``workflowType`` and
  the time range, so the link names the ``runs`` tab itself.

The rest of the UI (any page opened without the link) still starts on GenAI:
:data:`TOGGLE_HINT` says which toggle to press.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores.format import RESULTS_LINK, Tag
from ivory_hydra.stores.mlflow_bound import MirrorLagging
from ivory_hydra.stores.mlflow_client import retry

if TYPE_CHECKING:  # pragma: no cover
    from ivory_hydra.core.objectives import Objectives
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror

_log = logging.getLogger(__name__)

#: The experiment tag prefix of MLflow's saved (shared) views of the runs page.
VIEW_TAG_PREFIX = Tag.SHARED_VIEW_PREFIX
#: Where ``mlflow ui`` and ``mlflow server`` listen unless told otherwise.
LOCAL_UI = "http://127.0.0.1:5000"
#: What the link cannot do: pages opened without it start on GenAI.
TOGGLE_HINT = 'elsewhere MLflow 3 starts on GenAI: press "Model training" at the top left'
#: The key of the link in ``results.yaml``.
RESULTS_KEY = RESULTS_LINK
#: An experiment tag value may hold 20,000 characters; the view stays well below.
MAX_VIEW_LENGTH = 15000


def view_id(task: str) -> str:
    """The id of a sweep's saved view, from its task name (letters, digits, ``-``).

    >>> view_id("task#3")
    'ivory-task3'
    """
    return "ivory-" + re.sub(r"[^A-Za-z0-9_-]", "", task)


def column(kind: str, name: str) -> str:
    """A column of MLflow's runs table as its views name it.

    >>> column("metrics", "score"), column("params", "model.C")
    ('metrics.`score`', 'params.`model.C`')
    """
    return f"{kind}.`{name}`"


def runs_view(
    parent_run_id: str, metrics: Sequence[str], params: Sequence[str], direction: str
) -> dict[str, Any]:
    """The runs page's state that shows a sweep's runs flat, best first, with their values.

    Params are shown in the order given (which a saved view keeps).

    >>> state = runs_view("abc", ["loss"], ["lr"], "minimize")
    >>> state["selectedColumns"], state["orderByKey"], state["orderByAsc"]
    (['metrics.`loss`', 'params.`lr`'], 'metrics.`loss`', True)
    >>> state["columnOrder"]
    ['attributes.`Run Name`', 'metrics.`loss`', 'params.`lr`']
    >>> state["searchFilter"]
    "tags.`mlflow.parentRunId` = 'abc'"
    """
    shown = [column("metrics", m) for m in metrics]
    state: dict[str, Any] = {
        "searchFilter": f"tags.`{Tag.PARENT}` = '{parent_run_id}'",
        "orderByKey": shown[0] if shown else None,
        "orderByAsc": direction != "maximize",
        "selectedColumns": shown,
        # the run's name, its scores, then its values (other columns keep their place)
        "columnOrder": [column("attributes", "Run Name"), *shown],
    }
    for name in params:
        key = column("params", name)
        state["selectedColumns"].append(key)
        state["columnOrder"].append(key)
        if len(json.dumps(state)) > MAX_VIEW_LENGTH:
            state["selectedColumns"].pop()
            state["columnOrder"].pop()
            break
    return state


def envelope(name: str, state: dict[str, Any], created_ms: int) -> str:
    """The tag value of a saved view: its name, when it was made, and its state as JSON.

    >>> json.loads(envelope("v", {"a": 1}, 5))
    {'name': 'v', 'createdAt': 5, 'state': '{"a": 1}'}
    """
    return json.dumps({"name": name, "createdAt": created_ms, "state": json.dumps(state)})


def ui_base(tracking_uri: str) -> str:
    """Where the UI of a tracking store is: the server itself, or a local ``mlflow ui``.

    >>> ui_base("https://u:pw@mlflow.example/"), ui_base("sqlite:////tmp/mlflow.db")
    ('https://u:***@mlflow.example', 'http://127.0.0.1:5000')
    """
    if tracking_uri.startswith(("http://", "https://")):
        return redact_url(tracking_uri).rstrip("/")
    return LOCAL_UI


def runs_url(
    base: str,
    experiment_id: str,
    view: str | None = None,
    metric: str | None = None,
    direction: str = "minimize",
) -> str:
    """The link to an experiment's runs table: with a saved view, or sorted by ``metric``.

    >>> runs_url("http://h:5000", "7", view="ivory-task0")
    'http://h:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=ivory-task0'
    >>> runs_url("http://h:5000", "7", metric="score")
    'http://h:5000/#/experiments/7/runs?workflowType=machine_learning&orderByKey=metrics.%60score%60&orderByAsc=true'
    """
    query: dict[str, str] = {"workflowType": "machine_learning"}
    if view is not None:
        query["viewStateShareKey"] = view  # and no search facet, or the view is skipped
    elif metric is not None:
        query["orderByKey"] = column("metrics", metric)
        query["orderByAsc"] = "true" if direction != "maximize" else "false"
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def child_param_keys(
    mirror: MlflowMirror, experiment_id: str, parent_run_id: str, first: Sequence[str] = ()
) -> list[str]:
    """The param names of a sweep's child runs (the first 100 runs are enough).

    The names in ``first`` come first, in that order; the others follow sorted.
    """
    runs = retry(
        mirror.client.search_runs,
        [experiment_id],
        filter_string=f"tags.`{Tag.PARENT}` = '{parent_run_id}'",
        max_results=100,
    )
    keys: set[str] = set()
    for run in runs:
        keys.update(run.data.params)
    return [k for k in dict.fromkeys(first) if k in keys] + sorted(keys - set(first))


def save_runs_view(
    mirror: MlflowMirror,
    parent_run_id: str,
    task: str,
    metrics: Sequence[str],
    direction: str = "minimize",
    params: Sequence[str] = (),
) -> str | None:
    """Save the sweep's view of its runs on its experiment; return its link.

    ``params`` are the names to show first, in their order (the sweep's order).

    The view is the experiment tag ``mlflow.sharedViewState.ivory-<task>``
    (rewritten when the sweep resumes). If it cannot be written, the link opens the
    experiment's runs sorted by the score, without the score column (a warning says why).
    None when MLflow does not answer within the mirror's timeout (the mirror lags).
    """
    base = ui_base(mirror.tracking_uri)

    def save() -> str:
        experiment_id = mirror.experiment_id()
        try:
            names = child_param_keys(mirror, experiment_id, parent_run_id, params)
            state = runs_view(parent_run_id, metrics, names, direction)
            key = view_id(task)
            value = envelope(f"ivory {task}: runs by {metrics[0]}", state, int(time.time() * 1000))
            retry(mirror.client.set_experiment_tag, experiment_id, VIEW_TAG_PREFIX + key, value)
        except Exception as error:  # noqa: BLE001 - a link must not fail a finished sweep
            _log.warning("No saved MLflow view of the runs: %s: %s", type(error).__name__, error)
            metric = metrics[0] if metrics else None
            return runs_url(base, experiment_id, metric=metric, direction=direction)
        return runs_url(base, experiment_id, view=key)

    try:
        return mirror.bounded(save)
    except MirrorLagging:
        mirror.fell_behind()
        return None


def ui_lines(mirror: MlflowMirror, url: str) -> list[str]:
    """The summary's lines on MLflow: how to start the UI (for a local store) and the link."""
    lines = []
    if not mirror.tracking_uri.startswith(("http://", "https://")):
        lines.append(f"MLflow:  {mirror.ui_command()}")
        lines.append(f"         then open {url}")
    else:
        lines.append(f"MLflow:  {url}")
    lines.append(f"         ({TOGGLE_HINT})")
    return lines


def where_in_mlflow(
    mirror: MlflowMirror | None,
    parent_run_id: str | None,
    summary: Mapping[str, Any],
    objectives: Objectives,
    earlier: Path | None = None,
) -> tuple[str | None, list[str]]:
    """The end of a sweep on MLflow: the link to its runs (saving its view) and the lines to print.

    ``summary`` is the sweep's (``results.yaml``'s data): its task names the view, its
    chain decisions and best params order the columns. ``(None, [])`` without MLflow.
    Without a parent run (a rerun that found nothing to run, which does not open
    MLflow), the link is the one in ``earlier``, the sweep's ``results.yaml`` of the run
    before, if it holds one.
    """
    if mirror is None:
        return None, []
    if parent_run_id is None:
        url = _earlier_link(earlier)
        if url is None:
            return None, [f"MLflow:  {mirror.ui_command()}", f"         ({TOGGLE_HINT})"]
        return url, ui_lines(mirror, url)
    best = summary.get("best") or {}
    order = [*(summary.get("decisions") or {}), *(best.get("params") or {})]
    task = str(summary.get("task") or "")
    names = objectives.metric_names
    url = save_runs_view(mirror, parent_run_id, task, names, objectives.direction, order)
    if url is None:
        return None, [f"MLflow:  {mirror.ui_command()}", f"         ({TOGGLE_HINT})"]
    return url, ui_lines(mirror, url)


def _earlier_link(results: Path | None) -> str | None:
    """The MLflow link in an earlier ``results.yaml`` (None when there is none)."""
    if results is None or not results.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(results.read_text())
    except (OSError, yaml.YAMLError):
        return None
    link = data.get(RESULTS_KEY) if isinstance(data, dict) else None
    return link if isinstance(link, str) else None
