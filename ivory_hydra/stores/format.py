"""The stored format: every name ivory-hydra writes to Optuna, the ledger and MLflow.

Readers (resume, the summary, the tests, your own scripts) use these names
only. A sweep (or a task of the Python API) is one Optuna study; each of its
runs is one trial and one MLflow child run under the sweep's parent run.

Study user attributes (``study.user_attrs``), shown by optuna-dashboard:

========================  =====================================================
``kind``                  ``"sweep"`` (the Hydra sweeper) or ``"task"`` (the API)
``experiment``            the experiment: run and task numbers are counted in it,
                          and it names the MLflow experiment
``task``                  the task's name, ``task#K``
``job_name``              the Hydra job name (sweeps only)
``definition``            what identifies the sweep: mode, metric, direction,
                          ``use_best_param`` and every param's values as text
``mlflow_parent_run_id``  the MLflow parent run (absent when MLflow is off)
``decisions``             chain decisions: ``{param: {"value", "index", "score",
                          "run"}}``; the value is the one every later step uses
``summary``               written when a sweep ends: best run, counts, failures
========================  =====================================================

Trial user attributes (``trial.user_attrs``), one trial per run:

=================  ==============================================================
``run_name``       ``run#N``, numbered across the experiment
``slot``           the run's place in the plan, ``"<step>.<index>"``; resume maps
                   finished trials back to the plan by it
``step``           the chain step (0 in product mode)
``overrides``      the job's sweep overrides, as Hydra got them (sweeps only)
``output_dir``     the job's output directory (sweeps only)
``mlflow_run_id``  the run's MLflow child run
``reason``         why a run failed or finished unscored
``error``          the exception type of a failed run
``traceback``      where the full traceback of a failed job was written
=================  ==============================================================

Trial system attributes (hidden by optuna-dashboard): ``ivory:owner`` names
the sweeper that created the trial; ``ivory:beat`` is the last heartbeat of
the process that ran it (``at``, ``host``, ``pid``, ``started``), written once
when the trial finishes (before 0.3, at every beat).

Beats board keys (:mod:`ivory_hydra.stores.beats`, beside the storage; each
record is overwritten in place): ``trial/<trial id>`` holds the heartbeat of
the process running the trial, moved into the trial when it finishes;
``worker/<study>/<worker id>`` is for the heartbeats of a sweep's workers.

Ledger keys (:mod:`ivory_hydra.stores.ledger`): ``numbers/<experiment>/run``
and ``numbers/<experiment>/task`` count runs and tasks; ``lease/<study>`` names
the live process that drives a sweep or task.

MLflow: the parent run ``task#K`` and child runs ``run#N`` carry the tags
below; a child's score is logged under the sweep's metric name (``score`` when
none is set) and the parent gets ``best_<metric>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ivory_hydra.core.outcomes import COMPLETE, Outcome

#: What a study holds: a Hydra sweep or a task of the Python API.
SWEEP = "sweep"
TASK = "task"


class StudyAttr:
    """User attribute names of a sweep's (or task's) study."""

    KIND = "kind"
    EXPERIMENT = "experiment"
    TASK = "task"
    JOB_NAME = "job_name"
    DEFINITION = "definition"
    PARENT_RUN = "mlflow_parent_run_id"
    DECISIONS = "decisions"
    SUMMARY = "summary"


class TrialAttr:
    """User attribute names of a run's trial."""

    RUN_NAME = "run_name"
    SLOT = "slot"
    STEP = "step"
    OVERRIDES = "overrides"
    OUTPUT_DIR = "output_dir"
    MLFLOW_RUN = "mlflow_run_id"
    REASON = "reason"
    ERROR = "error"
    TRACEBACK = "traceback"


#: Trial system attribute: the last heartbeat of the process running the trial,
#: as ivory-hydra before 0.3 kept it (now on the beats board, :func:`trial_beat_key`).
BEAT = "ivory:beat"
#: Trial system attribute: the sweeper that created the trial (``host``, ``pid``,
#: and with several workers its ``worker`` record in the ledger).
OWNER = "ivory:owner"


class Tag:
    """MLflow tag names (the parent run's and the child runs')."""

    # MLflow's own
    PARENT = "mlflow.parentRunId"
    USER = "mlflow.user"
    SOURCE_NAME = "mlflow.source.name"
    SOURCE_TYPE = "mlflow.source.type"
    GIT_COMMIT = "mlflow.source.git.commit"
    # the parent run (the sweep or task)
    MODE = "ivory.mode"
    DEFINITION = "ivory.definition"
    STUDY_NAME = "ivory.study_name"
    STORAGE = "ivory.storage"
    COMMAND = "ivory.command"
    BEST_RUN = "ivory.best_run"
    BEST_PREFIX = "ivory.best."
    PARETO_RUNS = "ivory.pareto_runs"
    # the child runs (one per job or run)
    OVERRIDES = "ivory.overrides"
    OUTPUT_DIR = "ivory.output_dir"
    TRIAL_NUMBER = "ivory.trial_number"
    SLOT = "ivory.slot"
    STATE = "ivory.state"
    REASON = "ivory.reason"
    ERROR = "ivory.error"


#: The artifact holding a failed run's full traceback.
ERROR_ARTIFACT = "error.txt"
#: The metric name of a score when the sweep sets no metric.
DEFAULT_METRIC = "score"


def metric_name(metric: str | None) -> str:
    """The name a run's score is logged under.

    >>> metric_name(None), metric_name("loss")
    ('score', 'loss')
    """
    return metric or DEFAULT_METRIC


def metric_names(metric: Any, objectives: int = 1) -> list[str]:
    """The metric name each objective's score is logged under.

    >>> metric_names(None), metric_names("loss"), metric_names(None, 2), metric_names(["a", "b"], 2)
    (['score'], ['loss'], ['score_0', 'score_1'], ['a', 'b'])
    """
    if isinstance(metric, str):
        return [metric]
    if metric:
        return [str(m) for m in metric]
    if objectives == 1:
        return [DEFAULT_METRIC]
    return [f"{DEFAULT_METRIC}_{i}" for i in range(objectives)]


def score_metrics(outcome: Outcome, names: Sequence[str]) -> dict[str, float]:
    """An outcome's scores as MLflow metrics, one per objective.

    >>> from ivory_hydra.core.outcomes import Outcome
    >>> score_metrics(Outcome("complete", 0.5), ["loss"])
    {'loss': 0.5}
    >>> score_metrics(Outcome("complete", values=(1.0, 2.0)), ["a", "b"])
    {'a': 1.0, 'b': 2.0}
    >>> score_metrics(Outcome("fail"), ["loss"])
    {}
    """
    if outcome.state != COMPLETE or outcome.objectives is None:
        return {}
    return dict(zip(names, outcome.objectives, strict=False))


def numbers_key(experiment: str, kind: str) -> str:
    """The ledger key that counts ``kind`` numbers ("run" or "task") of an experiment.

    >>> numbers_key("torch", "run")
    'numbers/torch/run'
    """
    return f"numbers/{experiment}/{kind}"


def lease_key(study_name: str) -> str:
    """The ledger key of the lease on a sweep or task.

    >>> lease_key("train-ivory-1a2b3c4d")
    'lease/train-ivory-1a2b3c4d'
    """
    return f"lease/{study_name}"


def trial_beat_key(trial_id: int) -> str:
    """The beats board key of the heartbeat of the process that runs a trial.

    >>> trial_beat_key(12)
    'trial/12'
    """
    return f"trial/{trial_id}"


def worker_beat_key(study_name: str, worker_id: str) -> str:
    """The beats board key of the heartbeat of one worker of a sweep.

    >>> worker_beat_key("train-ivory-1a2b3c4d", "0a1b2c3d4e5f")
    'worker/train-ivory-1a2b3c4d/0a1b2c3d4e5f'
    """
    return f"worker/{study_name}/{worker_id}"
