"""The plan preview (``hydra.sweeper.dry_run=true``): what a sweep would run, as text.

Lazy: a plan of a million jobs is never listed. Only the first and last few
jobs still to run are computed, walking the plan from each end and skipping
the slots that a resume would leave out. Pure: the caller says how a job's
overrides read, which slots finished, and which chain decisions stand.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from ivory_hydra.core.display import format_value, plural
from ivory_hydra.core.plan import Plan, Point, parse_slot

T = TypeVar("T")

#: How many items are shown at each end of a long list.
HEAD = 5
TAIL = 5

#: How a job's overrides read: (its configuration, its repeat or None) -> text.
Overrides = Callable[[Point, "int | None"], str]


def ends(
    forward: Iterable[T], backward: Iterable[T], count: int, head: int = HEAD, tail: int = TAIL
) -> tuple[list[T], int, list[T]]:
    """The first ``head`` and the last ``tail`` of ``count`` items, and how many lie between.

    Only the items shown are read: ``forward`` from the first, ``backward`` from the last.

    >>> ends(range(10**12), reversed(range(10**12)), 10**12, 2, 2)
    ([0, 1], 999999999996, [999999999998, 999999999999])
    >>> ends("abc", "cba", 3)
    (['a', 'b', 'c'], 0, [])
    """
    if count <= head + tail:
        return list(islice(forward, count)), 0, []
    last = list(islice(backward, tail))
    return list(islice(forward, head)), count - head - tail, last[::-1]


def listing(
    items: Callable[[bool], Iterator[tuple[str, str]]],
    count: int,
    head: int = HEAD,
    tail: int = TAIL,
) -> list[str]:
    """Indented lines ``<label>  <text>`` for ``count`` items, a long list's middle elided.

    ``items(reverse)`` yields (label, text) pairs from the first or from the last item.

    >>> def items(reverse):
    ...     order = range(99, -1, -1) if reverse else range(100)
    ...     return ((f"#{i}", f"x={i}") for i in order)
    >>> for line in listing(items, 100, 2, 1):
    ...     print(line)
      #0   x=0
      #1   x=1
      ... 97 more ...
      #99  x=99
    """
    first, between, last = ends(items(False), items(True), count, head, tail)
    width = max((len(label) for label, _ in (*first, *last)), default=0)
    lines = [f"  {label.ljust(width)}  {text}".rstrip() for label, text in first]
    if between:
        lines.append(f"  ... {between:,} more ...")
    return lines + [f"  {label.ljust(width)}  {text}".rstrip() for label, text in last]


@dataclass(frozen=True)
class Progress:
    """What a stored sweep already did, as a resume finds it.

    ``done``: slots that finished (a resume leaves them out); ``kept``: with
    repeats, the finished repeats of slots that still run; ``failed``: the
    failed run of a slot that runs again; ``winners``: the chosen value of each
    chain param whose decision stands, ``decided`` the same as text.
    """

    done: Collection[str] = frozenset()
    kept: Mapping[str, Collection[int]] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    winners: Mapping[str, Any] = field(default_factory=dict)
    decided: Mapping[str, str] = field(default_factory=dict)

    def finished(self, plan: Plan) -> int:
        """How many of the plan's jobs finished (finished repeats of open slots included)."""
        slots = [s for s in self.done if _in_plan(plan, s)]
        return len(slots) * plan.repeat_count + self.kept_jobs(plan)

    def kept_jobs(self, plan: Plan) -> int:
        """How many finished repeats the plan's open slots keep (they do not run again).

        >>> plan = Plan("product", {}, {"a": [1, 2]}, repeats=({"f": 0}, {"f": 1}))
        >>> Progress(done={"0.0"}, kept={"0.0": {0}, "0.1": {1}, "0.7": {0}}).kept_jobs(plan)
        1
        """
        return sum(len(r) for s, r in self.kept.items() if s not in self.done and _in_plan(plan, s))


def _in_plan(plan: Plan, slot: str) -> bool:
    step, index = parse_slot(slot)
    return 0 <= step < plan.num_steps and 0 <= index < plan.size(step)


def _in_step(slot: str, step: int, size: int) -> bool:
    at, index = parse_slot(slot)
    return at == step and 0 <= index < size


def step_jobs(
    plan: Plan, step: int, progress: Progress, reverse: bool = False
) -> Iterator[tuple[Point, int | None]]:
    """The jobs of ``step`` still to run, as (configuration, repeat), computed lazily.

    >>> plan = Plan("product", {}, {"a": [1, 2, 3]})
    >>> [p.params for p, _ in step_jobs(plan, 0, Progress(done={"0.1"}), reverse=True)]
    [{'a': 3}, {'a': 1}]
    """
    size = plan.size(step)
    count = plan.repeat_count
    for index in range(size - 1, -1, -1) if reverse else range(size):
        slot = f"{step}.{index}"
        if slot in progress.done:
            continue
        point = plan.point(step, index, progress.winners)
        if not plan.repeats:
            yield point, None
            continue
        kept = progress.kept.get(slot, ())
        for repeat in range(count - 1, -1, -1) if reverse else range(count):
            if repeat not in kept:
                yield point, repeat


def to_run(plan: Plan, step: int, progress: Progress) -> int:
    """How many jobs of ``step`` still run, without walking the step.

    >>> plan = Plan("product", {}, {"a": [1, 2, 3]}, repeats=({"f": 0}, {"f": 1}))
    >>> to_run(plan, 0, Progress(done={"0.1"}, kept={"0.2": {0}}))
    3
    """
    size = plan.size(step)
    mine = [s for s in progress.done if _in_step(s, step, size)]
    kept = sum(
        len(repeats)
        for slot, repeats in progress.kept.items()
        if slot not in progress.done and _in_step(slot, step, size)
    )
    return (size - len(mine)) * plan.repeat_count - kept


def job_label(plan: Plan, point: Point, repeat: int | None) -> str:
    """A job's place in the plan: ``#3``; ``#1.2`` in a chain; ``#3/1`` for repeat 1.

    >>> plan = Plan("chain", {}, {"a": [1, 2], "b": [3, 4]})
    >>> job_label(plan, plan.point(1, 0, {"a": 1}), None), job_label(plan, plan.point(0, 1), 2)
    ('#1.0', '#0.1/2')
    """
    label = f"#{point.slot}" if plan.mode == "chain" else f"#{point.index}"
    return label if repeat is None else f"{label}/{repeat}"


def plan_lines(
    plan: Plan,
    overrides: Overrides,
    progress: Progress | None = None,
    space: Mapping[str, Sequence[str]] | None = None,
    head: int = HEAD,
    tail: int = TAIL,
) -> list[str]:
    """What the plan would run: the counts, then each step's jobs still to run (their
    overrides), and the slots a resume leaves out.

    In a chain, a step whose earlier steps are undecided shows its values only
    (its jobs take the winners of the steps before it). In optimize mode
    ``space`` holds each sampled param's values, as text.

    >>> plan = Plan("product", {"b": 0}, {"a": [1, 2, 3]})
    >>> show = lambda point, repeat: " ".join(f"{k}={v}" for k, v in point.params.items())
    >>> for line in plan_lines(plan, show, Progress(done={"0.0"}, failed={"0.2": "run#2"})):
    ...     print(line)
    Product of 3 jobs, 2 to run (1 finished, left out):
      #1  b=0 a=2
      #2  b=0 a=3  (runs again: run#2 failed)
    Left out (finished): #0
    """
    progress = progress or Progress()
    if plan.mode == "optimize":
        return _optimize_lines(plan, overrides, progress, space or {})
    running = sum(to_run(plan, step, progress) for step in range(plan.num_steps))
    finished = progress.finished(plan)
    mode = "Product" if plan.mode == "product" else f"Chain ({plural(plan.num_steps, 'step')})"
    lines = [f"{mode} of {plural(plan.jobs, 'job')}, {running:,} to run"]
    lines[0] += f" ({finished:,} finished, left out):" if finished else ":"
    for step in range(plan.num_steps):
        lines += _step_lines(plan, step, overrides, progress, head, tail)
    return lines + _left_out(plan, progress, head, tail)


def _step_lines(
    plan: Plan, step: int, overrides: Overrides, progress: Progress, head: int, tail: int
) -> list[str]:
    name = plan.stepping(step)
    lines = []
    if plan.mode == "chain":
        title = f"Step {step}, {name}: {plural(plan.size(step) * plan.repeat_count, 'job')}"
        count = to_run(plan, step, progress)
        if name in progress.decided:  # its decision stands; its failed jobs run again
            title += f", decided: {progress.decided[name]}"
            if not count:
                return [title]
        earlier = [plan.stepping(s) for s in range(step)]
        if plan.use_best_param and any(e not in progress.decided for e in earlier):
            values = ", ".join(_text(v) for v in plan.swept[str(name)])
            return [f"{title} ({values}), each at the winners of the steps before it"]
        lines.append(f"{title}, {count:,} to run:")

    def items(reverse: bool) -> Iterator[tuple[str, str]]:
        for point, repeat in step_jobs(plan, step, progress, reverse):
            text = overrides(point, repeat)
            failed = progress.failed.get(point.slot)
            if failed is not None:
                text += f"  (runs again: {failed} failed)"
            yield job_label(plan, point, repeat), text

    return lines + listing(items, to_run(plan, step, progress), head, tail)


def _text(value: Any) -> str:
    label = getattr(value, "label", None)  # a zipped row
    return str(label) if label is not None else format_value(getattr(value, "text", value))


def _left_out(plan: Plan, progress: Progress, head: int, tail: int) -> list[str]:
    slots = sorted(parse_slot(s) for s in progress.done if _in_plan(plan, s))
    if not slots:
        return []
    labels = [f"#{s}.{i}" if plan.mode == "chain" else f"#{i}" for s, i in slots]
    first, between, last = ends(labels, reversed(labels), len(labels), head, tail)
    parts = [*first, *([f"... {between:,} more ..."] if between else []), *last]
    return [f"Left out (finished): {', '.join(parts)}"]


def _optimize_lines(
    plan: Plan, overrides: Overrides, progress: Progress, space: Mapping[str, Sequence[str]]
) -> list[str]:
    done = sum(1 for s in progress.done if _in_plan(plan, s))
    left = plan.trials - done
    each = "" if not plan.repeats else f", {plural(plan.repeat_count, 'repeat')} each"
    jobs = left * plan.repeat_count - progress.kept_jobs(plan)
    lines = [
        f"Optimize: {plural(plan.trials, 'trial')} (n_trials), {done:,} done, "
        f"{left:,} to sample{each} ({plural(jobs, 'job')})"
    ]
    fixed = overrides(plan.point(0, 0), None) if plan.trials else ""
    if fixed:
        lines.append(f"Every job gets: {fixed}")
    if plan.repeats:
        shown = " | ".join(overrides(Point(0, 0, {}), r) for r in range(plan.repeat_count))
        lines.append(f"Each trial's repeats: {shown}")
    if space:
        width = max(len(name) for name in space)
        lines.append("The sampler picks each trial's values of:")
        lines += [f"  {name.ljust(width)}  {' | '.join(vs)}" for name, vs in space.items()]
    return lines
