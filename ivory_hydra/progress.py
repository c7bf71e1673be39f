"""The progress bar of a sweep or task, advanced as each run ends (both front ends).

The bar lives in the driving process. Each Hydra job calls a :class:`JobEnded`
hook that the sweeper ships with its jobs: in the sweep's own process (the
basic launcher) it finds the bar and advances it; in a worker process it finds
none and does nothing, and the bar catches up when the batch returns.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

_BARS: dict[str, Any] = {}


class ProgressBar:
    """A tqdm bar over the whole sweep (shown on a terminal when verbose >= 1)."""

    def __init__(self, total: int, verbose: int, done: int = 0) -> None:
        from tqdm.auto import tqdm

        disable = None if verbose >= 1 else True  # None: only on a terminal
        self.bar = tqdm(
            total=total, initial=done, desc="sweep", leave=False, file=sys.stderr, disable=disable
        )
        self.key = uuid.uuid4().hex
        self.done = done
        _BARS[self.key] = self.bar

    def hook(self) -> JobEnded:
        """The hook that advances this bar from inside in-process jobs."""
        return JobEnded(self.key)

    def write(self, line: str) -> None:
        """Print a line to stdout above the bar."""
        self.bar.write(line, file=sys.stdout)

    def advance_to(self, done: int) -> None:
        """Make the bar show ``done`` finished jobs (never going back)."""
        self.done = max(self.done, done)
        if self.done > self.bar.n:
            self.bar.update(self.done - self.bar.n)

    def close(self) -> None:
        """Close the bar."""
        _BARS.pop(self.key, None)
        self.bar.close()


class JobEnded:
    """Advances the sweep's bar when a job ends in the sweep's own process (picklable)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self) -> None:
        """One more job is done."""
        bar = _BARS.get(self.key)
        if bar is not None:
            bar.update()
