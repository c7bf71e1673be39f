"""The sweep's progress bar, advanced as each job ends.

Hydra ships its callbacks with every job. In the sweep's own process (the basic
launcher) the callback finds the bar and advances it; in a worker process it
finds none and does nothing, and the sweep catches up after the batch.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from hydra.experimental.callback import Callback

_BARS: dict[str, Any] = {}


class ProgressBar:
    """A tqdm bar over the whole sweep (shown on a terminal when verbose >= 1)."""

    def __init__(self, total: int, verbose: int) -> None:
        from tqdm.auto import tqdm

        disable = None if verbose >= 1 else True  # None: only on a terminal
        self.bar = tqdm(total=total, desc="sweep", leave=False, file=sys.stderr, disable=disable)
        self.key = uuid.uuid4().hex
        self.done = 0
        _BARS[self.key] = self.bar

    def callback(self) -> Callback:
        """The callback that advances this bar from inside in-process jobs."""
        return ProgressCallback(self.key)

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


class ProgressCallback(Callback):
    """Advances the sweep's bar when a job ends in the sweep's own process."""

    def __init__(self, key: str) -> None:
        self.key = key

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        """One more job is done."""
        bar = _BARS.get(self.key)
        if bar is not None:
            bar.update()
