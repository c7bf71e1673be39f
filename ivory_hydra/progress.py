"""The progress bar of a sweep or task, advanced as each run ends (both front ends).

The bar lives in the driving process. Each Hydra job calls a :class:`JobEnded`
hook that the sweeper ships with its jobs: in the sweep's own process (the
basic launcher) it finds the bar and advances it; in a worker process it finds
none and does nothing, and the bar catches up when the batch returns.

While the bar is on a terminal, everything else written to that terminal goes
around it: the bar is cleared, the whole lines are written, the bar is drawn
again below them (what ``tqdm.contrib.logging.logging_redirect_tqdm`` does for
log handlers). Handlers alone are not enough here: Hydra configures logging
anew for every job it runs in this process, which replaces the root logger's
handlers, and the launcher's ``#N : ...`` lines then went to a fresh handler
that knew nothing of the bar. So :data:`sys.stdout` and :data:`sys.stderr` are
wrapped instead, and the console handlers that already exist are pointed at the
wrappers; handlers made later (Hydra's ``ext://sys.stdout``) and ``print`` pick
up the wrappers by themselves. All of it is undone when the bar closes.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from typing import IO, Any

_BARS: dict[str, Any] = {}


class AroundBar:
    """A text stream of the bar's terminal that writes whole lines around the bar.

    Text without a line end is held until its line is complete, so that the bar is
    never drawn in the middle of a line. Once released (the bar closed), it writes
    straight through: a handler made while the bar was shown may still hold it.
    """

    def __init__(self, stream: IO[str], bar: Any, lock: threading.RLock) -> None:
        self.stream = stream
        self._bar = bar
        self._lock = lock
        self._pending = ""
        self.active = True

    def write(self, text: str) -> int:
        """Write ``text``; whole lines go out at once, above the bar."""
        with self._lock:
            if not self.active:
                return self.stream.write(text)
            head, newline, self._pending = (self._pending + text).rpartition("\n")
            if newline:
                self._bar.clear()
                self.stream.write(head + newline)
                self.stream.flush()
                self._bar.refresh()
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the stream (a line still open waits for its end)."""
        self.stream.flush()

    def release(self) -> None:
        """Write what is held and write straight through from now on."""
        with self._lock:
            if self._pending:
                self.stream.write(self._pending)
                self._pending = ""
            self.active = False
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, ...
        return getattr(self.stream, name)


def _console_handlers(streams: tuple[Any, ...]) -> list[logging.StreamHandler]:
    """The logging handlers, of every logger, that write to one of ``streams``."""
    loggers: list[Any] = [logging.getLogger()]
    loggers += [
        x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    found: list[logging.StreamHandler] = []
    for logger in loggers:
        for handler in logger.handlers:
            if (
                type(handler) is logging.StreamHandler
                and any(handler.stream is s for s in streams)
                and handler not in found
            ):
                found.append(handler)
    return found


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
        self._wrapped: dict[str, AroundBar] = {}
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []
        if not self.bar.disable:
            self._route_around()
        _BARS[self.key] = self.bar

    def _route_around(self) -> None:
        """Send stdout, stderr and the console log handlers around the bar."""
        lock = threading.RLock()
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None:
                continue
            wrapper = AroundBar(stream, self.bar, lock)
            self._wrapped[name] = wrapper
            setattr(sys, name, wrapper)
        by_stream = {id(w.stream): w for w in self._wrapped.values()}
        streams = tuple(w.stream for w in self._wrapped.values())
        for handler in _console_handlers(streams):
            old = handler.stream
            handler.setStream(by_stream[id(old)])  # type: ignore[arg-type]
            self._handlers.append((handler, old))

    def hook(self) -> JobEnded:
        """The hook that advances this bar from inside in-process jobs."""
        return JobEnded(self.key)

    def write(self, line: str) -> None:
        """Print a line to stdout above the bar."""
        if self._wrapped:
            print(line, file=sys.stdout, flush=True)  # around the bar, through the wrapper
        else:
            self.bar.write(line, file=sys.stdout)

    def advance_to(self, done: int) -> None:
        """Make the bar show ``done`` finished jobs (never going back)."""
        self.done = max(self.done, done)
        if self.done > self.bar.n:
            self.bar.update(self.done - self.bar.n)

    def close(self) -> None:
        """Close the bar and give the terminal back (closing twice is harmless)."""
        _BARS.pop(self.key, None)
        self.bar.close()
        wrappers = list(self._wrapped.values())
        for handler, old in self._handlers:
            if any(handler.stream is w for w in wrappers):  # unless it was pointed elsewhere
                handler.setStream(old)
        self._handlers = []
        for name, wrapper in self._wrapped.items():
            wrapper.release()
            if getattr(sys, name) is wrapper:  # unless someone replaced it since
                setattr(sys, name, wrapper.stream)
        self._wrapped = {}


class JobEnded:
    """Advances the sweep's bar when a job ends in the sweep's own process (picklable)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self) -> None:
        """One more job is done."""
        bar = _BARS.get(self.key)
        if bar is not None:
            bar.update()
