"""The progress bar and log lines on a real terminal: a pseudo-terminal, real apps.

tqdm draws its bar on stderr with carriage returns; a log record written while the
bar is shown used to land right after it on the same terminal line
(``sweep: 18%|███| 11/60 [...][2026-12-02 ...][HYDRA] #11 ...``). Each test runs a
sweep or a task in a subprocess whose stdout and stderr are a pty, replays the
output as a terminal shows it (a carriage return moves back to the start of the
line, later characters overwrite earlier ones), and checks that no line on the
screen holds both a piece of the bar and a log record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest
from conftest import APPS

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: Pieces of a tqdm bar: its description, the percentage, the blocks, the counts and rate.
BAR = re.compile(r"(sweep|task): +\d+%|\d+%\||[█▏▎▍▌▋▊▉]|\d+/\d+ \[\d|it/s\]|s/it\]")
#: A log record as Hydra's and logging's formats start it.
RECORD = re.compile(r"\[\d{4}-\d\d-\d\d [\d:,]+\]\[|^(INFO|WARNING):")


def run_in_pty(args: list[str], cwd: Path, timeout: float = 180) -> tuple[int, str]:
    """Run ``args`` with a pty as stdin, stdout and stderr; return its code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm", "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{args} ran over {timeout} s")
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the pty is gone
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw`` (carriage returns overwrite, escapes dropped)."""
    lines = []
    for text in ANSI.sub("", raw).split("\n"):
        cells: list[str] = []
        col = 0
        for char in text:
            if char == "\r":
                col = 0
                continue
            if col < len(cells):
                cells[col] = char
            else:
                cells.append(char)
            col += 1
        lines.append("".join(cells).rstrip())
    return lines


def check_bar_and_records_apart(raw: str, records: int) -> list[str]:
    """The bar was drawn, and no screen line holds both the bar and a log record."""
    assert re.search(r"(sweep|task): +\d+%\|", raw), "the bar was never drawn:\n" + raw
    lines = screen(raw)
    mixed = [line for line in lines if BAR.search(line) and RECORD.search(line)]
    assert not mixed, "bar and log record on one line:\n" + "\n".join(mixed)
    logged = [line for line in lines if RECORD.search(line)]
    assert len(logged) >= records, "\n".join(lines)
    # every record starts its line (nothing of the bar before it)
    assert all(RECORD.match(line) for line in logged), "\n".join(logged)
    return lines


def test_the_sweep_bar_and_hydra_log_lines_do_not_cut_each_other(tmp_path):
    code, raw = run_in_pty(
        [
            sys.executable,
            str(APPS / "sweep" / "app.py"),
            "-m",
            "hydra.sweeper.mlflow.enabled=false",
            "hydra.sweeper.verbose=1",
            "a=1-6",
            "sleep=0.3",
            "say=hello",
        ],
        tmp_path,
    )
    assert code == 0, raw
    lines = check_bar_and_records_apart(raw, records=6)
    # each job's own log line (Hydra's job logging, set up anew for every job, while the
    # bar is shown) and the run lines all made it, whole
    for a in range(1, 7):
        assert any(re.search(rf"\] - job a={a} says hello$", line) for line in lines), a
    runs = [line for line in lines if line.startswith("[run#")]
    assert len(runs) == 6, "\n".join(lines)


TASK = """
import logging, sys, time
import ivory_hydra as ivory

FORMAT = "[%(asctime)s][%(name)s] %(message)s"
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=FORMAT)
log = logging.getLogger("user")
task = ivory.create_client(sys.argv[1], mlflow=False).create_task("pty")
for run in task.product(x=range(6), verbose=1):
    log.info("training %s", run.name)
    time.sleep(0.3)
    logging.getLogger("user.deep").warning("x=%s done", run.params["x"])
    run.report(float(run.params["x"]))
"""


def test_the_task_bar_and_user_log_lines_do_not_cut_each_other(tmp_path):
    script = tmp_path / "task.py"
    script.write_text(textwrap.dedent(TASK))
    code, raw = run_in_pty([sys.executable, str(script), str(tmp_path)], tmp_path)
    assert code == 0, raw
    lines = check_bar_and_records_apart(raw, records=12)
    assert sum("training run#" in line for line in lines) == 6
