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
``format_version``        the version of this stored format the study was
                          written with (:data:`FORMAT_VERSION`)
``mirror_synced``         True once MLflow was brought in line with the study
                          after the sweep's last run (a rerun repairs it if not)
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
``error``          the exception type of a failed run (``BudgetSpent``: a budget
                   kept it from starting; it runs on resume)
``traceback``      where the full traceback of a failed job was written
``repeats``        with repeats (folds, seeds): how many the configuration has
``std``            with repeats: the standard deviation of the repeats' scores
``mirror_lags``    True when the job found MLflow out of reach (``mlflow.timeout``)
                   before its trial finished: the closer or the next run of the
                   command settles its run from the trial
``repeat/<r>``     with repeats: repeat ``r``'s own record: ``state``, ``score``
                   (or ``values``), ``run``, ``run_id``, ``reason``, ``error``,
                   ``output_dir``, ``devices``; its score is also the trial's
                   intermediate value at step ``r``
``devices``        with ``devices`` set: the device ids the job held (a list)
=================  ==============================================================

With repeats, a trial is one configuration (its params leave the repeat params
out) named ``config#<trial number>``; its value is the repeats' aggregate.

Trial system attributes (hidden by optuna-dashboard): ``ivory:owner`` names
the sweeper that created the trial; ``ivory:beat`` is the last heartbeat of
the process that ran it (``at``, ``host``, ``pid``, ``started``), written once
when the trial finishes (before 0.3, at every beat).

Beats board keys (:mod:`ivory_hydra.stores.beats`, beside the storage; each
record is overwritten in place): ``trial/<trial id>`` holds the heartbeat of
the process running the trial, moved into the trial when it finishes;
``worker/<study>/<worker id>`` is for the heartbeats of a sweep's workers.

Ledger keys (:mod:`ivory_hydra.stores.ledger`), all made by :class:`Keys`:
``numbers/<experiment>/run`` and ``numbers/<experiment>/task`` count runs and
tasks; ``lease/<study>`` names the live process that drives a sweep or task;
the workers of a shared sweep (:mod:`ivory_hydra.engine.crew`) keep
``crew/<study>`` (the generation), ``member/<study>/<id>``, ``cursor/...``,
``slot/...``, ``closer/...``, ``decision/<study>/<param>``, ``task/<study>``,
``task-numbering/<study>`` and ``parent/<study>``. With ``devices`` set,
``devices/<host>/<id>`` holds the liveness record of the job that holds the
device (``run``, ``trial``, ``host``, ``pid``, ``started``, ``at``), or nothing
when it is free (:mod:`ivory_hydra.stores.devices`). With ``max_failures`` set,
``failures/<study>/<invocation>`` counts the failed jobs of one run of the command
(shared by the workers that run at the same time; :mod:`ivory_hydra.stores.budget`).

MLflow: the parent run ``task#K`` and child runs ``run#N`` carry the tags
below; a child's score is logged under the sweep's metric name (``score`` when
none is set) and the parent gets ``best_<metric>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ivory_hydra.core.outcomes import COMPLETE, Outcome

#: The version of the stored format. 2: round 2 (no ``format_version``
#: attribute); 3: beats beside the storage, per-slot work records.
FORMAT_VERSION = 3
#: Versions this code reads (older ones are migrated when a sweep opens them).
READABLE_VERSIONS = (2, 3)
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
    FORMAT = "format_version"
    MIRROR_SYNCED = "mirror_synced"


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
    REPEATS = "repeats"
    STD = "std"
    REPEAT_PREFIX = "repeat/"
    DEVICES = "devices"
    MIRROR_LAGS = "mirror_lags"

    @staticmethod
    def repeat(index: int) -> str:
        """The attribute holding one repeat's record.

        >>> TrialAttr.repeat(3)
        'repeat/3'
        """
        return f"{TrialAttr.REPEAT_PREFIX}{index}"


#: Trial system attribute: the last heartbeat of the process running the trial,
#: as ivory-hydra before 0.3 kept it (now on the beats board, :meth:`BeatKeys.trial`).
BEAT = "ivory:beat"
#: Trial system attribute: the sweeper that created the trial (``host``, ``pid``,
#: and with several workers its ``worker`` record in the ledger).
OWNER = "ivory:owner"


class Tag:
    """MLflow tag names (the parent run's and the child runs')."""

    PREFIX = "ivory."

    # MLflow's own
    PARENT = "mlflow.parentRunId"
    EXPERIMENT_KIND = "mlflow.experimentKind"  # an experiment's
    SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # an experiment's saved runs views
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
    REPEAT = "ivory.repeat"  # a repeat's run: which repeat of its configuration
    SLOT = "ivory.slot"
    STATE = "ivory.state"
    REASON = "ivory.reason"
    ERROR = "ivory.error"
    DEVICES = "ivory.devices"  # the devices the job held, as CUDA_VISIBLE_DEVICES said


def attr_tag(name: str) -> str:
    """The MLflow tag that mirrors a trial attribute.

    >>> attr_tag(TrialAttr.OVERRIDES)
    'ivory.overrides'
    """
    return Tag.PREFIX + name


class Files:
    """The files a sweep writes in its sweep folder (and a failed job in its own)."""

    RESULTS = "results.yaml"
    OPTIMIZATION_RESULTS = "optimization_results.yaml"  # as Hydra's Optuna sweeper names it
    CHAIN_PLOT = "chain.png"
    TRACEBACK = "error.txt"  # a failed job's traceback, also its run's artifact


#: The artifact holding a failed run's full traceback.
ERROR_ARTIFACT = Files.TRACEBACK
#: The key of the sweep's MLflow link in ``results.yaml``.
RESULTS_LINK = "mlflow_runs_url"


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


def _part(name: str) -> str:
    """A name as one part of a ledger key ("/" separates parts)."""
    return name.replace("%", "%25").replace("/", "%2F")


class Keys:
    """Every ledger key, made in one place.

    >>> Keys.lease("train-ivory-1a2b3c4d"), Keys.slot("s", 1, 0, 7)
    ('lease/train-ivory-1a2b3c4d', 'slot/s/1/0/7')
    >>> Keys.member("a/b", "x1")
    'member/a%2Fb/x1'
    """

    @staticmethod
    def numbers(experiment: str, kind: str) -> str:
        """Counts ``kind`` numbers ("run" or "task") of an experiment."""
        return f"numbers/{experiment}/{kind}"

    @staticmethod
    def lease(study: str) -> str:
        """The lone process that drives a sweep or task (SQLite)."""
        return f"lease/{_part(study)}"

    @staticmethod
    def crew(study: str) -> str:
        """The workers' current generation: ``{"number", "starter"}``."""
        return f"crew/{_part(study)}"

    @staticmethod
    def members(study: str) -> str:
        """The prefix of the workers' records."""
        return f"member/{_part(study)}/"

    @staticmethod
    def member(study: str, worker: str) -> str:
        """One worker's record: where it runs, its generation, whether it left."""
        return Keys.members(study) + worker

    @staticmethod
    def cursor(study: str, generation: int, step: int) -> str:
        """Counts the slots of a step handed out in a generation (a hint)."""
        return f"cursor/{_part(study)}/{generation}/{step}"

    @staticmethod
    def working(study: str, generation: int) -> str:
        """Counts the workers of a generation that joined and have not left (a hint: a
        worker that dies never leaves)."""
        return f"working/{_part(study)}/{generation}"

    @staticmethod
    def ended(study: str, generation: int, step: int) -> str:
        """Counts the slots of a step recorded done in a generation (a hint that idle
        workers read in one call instead of every slot record)."""
        return f"ended/{_part(study)}/{generation}/{step}"

    @staticmethod
    def slots(study: str, generation: int, step: int) -> str:
        """The prefix of a step's slot records."""
        return f"slot/{_part(study)}/{generation}/{step}/"

    @staticmethod
    def slot(study: str, generation: int, step: int, index: int) -> str:
        """Who runs one slot of a step (``{"owner"}``), and whether it is done."""
        return Keys.slots(study, generation, step) + str(index)

    @staticmethod
    def closer(study: str, generation: int) -> str:
        """The worker that closes a generation (compare-and-set: exactly one)."""
        return f"closer/{_part(study)}/{generation}"

    @staticmethod
    def decision(study: str, param: str) -> str:
        """A chain decision; the first recorded stands."""
        return f"decision/{_part(study)}/{_part(param)}"

    @staticmethod
    def task(study: str) -> str:
        """The shared sweep's task name."""
        return f"task/{_part(study)}"

    @staticmethod
    def task_numbering(study: str) -> str:
        """Counts the workers that tried to number the task (the first one does)."""
        return f"task-numbering/{_part(study)}"

    @staticmethod
    def parent(study: str) -> str:
        """The shared sweep's MLflow parent run."""
        return f"parent/{_part(study)}"

    @staticmethod
    def devices(host: str) -> str:
        """The prefix of a host's device records.

        >>> Keys.device("gpu1", 3)
        'devices/gpu1/3'
        """
        return f"devices/{_part(host)}/"

    @staticmethod
    def device(host: str, device: int) -> str:
        """Who holds a device of a host (a job's liveness record), if anyone."""
        return Keys.devices(host) + str(device)

    @staticmethod
    def failures(study: str, invocation: str) -> str:
        """Counts the failed jobs of one invocation of a sweep (its ``max_failures``)."""
        return f"failures/{_part(study)}/{_part(invocation)}"


class BeatKeys:
    """Every key of the beats board (:mod:`ivory_hydra.stores.beats`).

    >>> BeatKeys.trial(12), BeatKeys.worker("s", "0a1b")
    ('trial/12', 'worker/s/0a1b')
    """

    @staticmethod
    def trial(trial_id: int) -> str:
        """The heartbeat of the process that runs a trial."""
        return f"trial/{trial_id}"

    @staticmethod
    def workers(study: str) -> str:
        """The prefix of a sweep's workers' heartbeats."""
        return f"worker/{_part(study)}/"

    @staticmethod
    def worker(study: str, worker: str) -> str:
        """The heartbeat of one worker of a sweep."""
        return BeatKeys.workers(study) + worker
