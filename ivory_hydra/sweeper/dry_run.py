"""``hydra.sweeper.dry_run=true``: print what the sweep would run, and write nothing.

The sweep is defined and checked as for a real run (bad input fails the same
way). Its storage, if it exists, is read without a write
(:func:`~ivory_hydra.stores.snapshot.read_only`), so that the preview leaves
out what a resume would skip; MLflow is not opened. The text is made lazily
(:mod:`ivory_hydra.core.preview`): a million-job plan prints in a moment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ivory_hydra.core.plan import Point
from ivory_hydra.core.preview import plan_lines
from ivory_hydra.core.redact import redact_url
from ivory_hydra.sweeper.errors import SweepInputError

if TYPE_CHECKING:
    from ivory_hydra.sweeper.definition import SweepDefinition


def preview(
    sweep: SweepDefinition,
    url: str,
    name_study: Callable[[Callable[[str], bool]], str],
    show: Callable[[str], None] = print,
) -> list[str]:
    """Print (with ``show``) and return the preview of ``sweep`` against its storage.

    ``name_study`` names the study, given whether the storage holds a study of a name.
    """
    from ivory_hydra.engine.preview import progress_of
    from ivory_hydra.stores.snapshot import read_only
    from ivory_hydra.stores.study import Study
    from ivory_hydra.sweeper.stored import check_stored

    try:
        with read_only(url) as storage:

            def exists(name: str) -> bool:
                return storage is not None and Study.find(storage, name) is not None

            study_name = name_study(exists)
            study = None if storage is None else Study.find(storage, study_name)
            attrs = {} if study is None else study.user_attrs
            check_stored(url, study_name, attrs, sweep.identity)
            trials = [] if study is None else study.trials()
    except SweepInputError:
        raise
    except Exception as error:  # noqa: BLE001 - drivers and files fail in many ways
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise SweepInputError(
            f"hydra.sweeper.storage={redact_url(url)}: cannot read it for the preview: "
            f"{type(error).__name__}: {reason}"
        ) from None
    progress, unfinished = progress_of(sweep.definition, trials, attrs)
    plan = sweep.definition.plan
    where = f"Study {study_name!r} in {redact_url(url)}"
    lines = ["Dry run (hydra.sweeper.dry_run=true): nothing is run or written."]
    lines.append(f"{where}: {'not created yet' if study is None else f'{len(trials)} trials'}")
    if unfinished:
        lines.append(
            f"{unfinished} unfinished trial(s), of a sweep that stopped or of a worker that "
            "still runs: their jobs run again unless a live process still runs them"
        )
    lines += plan_lines(plan, job_overrides(sweep), progress, sampled_space(sweep))
    show("\n".join(lines))
    return lines


def job_overrides(sweep: SweepDefinition) -> Callable[[Point, int | None], str]:
    """How a job's overrides read: a configuration and its repeat (None: no repeats)."""
    plan = sweep.definition.plan

    def text(point: Point, repeat: int | None) -> str:
        job = Point(point.step, point.index, plan.repeat_params(point, repeat))
        return " ".join(sweep.overrides(job))

    return text


def sampled_space(sweep: SweepDefinition) -> dict[str, Sequence[str]]:
    """Optimize mode: what the sampler picks, each param's values as text."""
    definition = sweep.definition
    described = {
        **{p.name: p.describe() for p in sweep.params},
        **{z.name: z.describe() for z in sweep.zips},
    }
    space = {name: described.get(name, [str(d)]) for name, d in definition.space.items()}
    if definition.extend is not None:
        space["custom_search_space"] = ["and the params it suggests"]
    return space
