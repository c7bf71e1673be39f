"""Screenshots of the demo in optuna-dashboard and in the MLflow UI (not a benchmark: a tool).

    make demo && .venv/bin/python benchmarks/screenshots.py --demo demo --out shots

Runs the demo's sweep first when ``<demo>/sweep/results.yaml`` is missing. Both
servers listen on 127.0.0.1 only, on free ports, each in its own process group that
is ended on the way out; every wait is bounded. The browser is Debian's Chromium
(``make chromium``) driven by Playwright, which downloads no browser of its own.
Writes ``<out>/optuna.png`` (the sweep's study) and ``<out>/mlflow.png`` (the link the
sweep printed: its runs, best first, with the score), and each server's log beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
#: The demo's sweep, as ``make demo`` runs it.
DEMO = [
    "-m",
    "hydra.sweep.dir=sweep",
    "hydra.sweeper.mode=chain",
    "model=resnet,vit",
    "lr=1e-3_1e1:5.log",
    "dropout=0.0-0.2:3",
]
WAIT = 120.0  # seconds, for a server to answer and for a page to show what it should


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """``check()``'s first truthy value, trying for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            found = check()
            if found:
                return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: nothing after {timeout:g} s")
        time.sleep(0.5)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@contextlib.contextmanager
def server(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own group, ended (TERM, then KILL) on the way out."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)


def shoot(url: str, path: Path, ready: Callable[[Any], None]) -> None:
    """Open ``url`` in headless Chromium, wait with ``ready(page)``, save a screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url, timeout=int(WAIT * 1000))
            ready(page)
            page.wait_for_timeout(1500)  # charts finish drawing
            page.screenshot(path=str(path))
        finally:
            browser.close()


def optuna_shot(demo: Path, out: Path) -> Path:
    port = free_port()
    base = f"http://{HOST}:{port}"
    args = [str(BIN / "optuna-dashboard"), f"sqlite:///{demo / 'optuna.db'}"]
    with server([*args, "--host", HOST, "--port", str(port)], out / "optuna-dashboard.log.txt"):
        summaries = until(
            "optuna-dashboard", lambda: json.loads(get(f"{base}/api/studies"))["study_summaries"]
        )
        name = yaml.safe_load((demo / "sweep" / "results.yaml").read_text())["study_name"]
        [study] = [s for s in summaries if s["study_name"] == name]

        def ready(page: Any) -> None:
            page.get_by_text(name).first.wait_for(timeout=int(WAIT * 1000))
            page.locator("svg, canvas").first.wait_for(timeout=int(WAIT * 1000))

        path = out / "optuna.png"
        shoot(f"{base}/dashboard/studies/{study['study_id']}", path, ready)
    return path


def mlflow_shot(demo: Path, out: Path) -> Path:
    port = free_port()
    base = f"http://{HOST}:{port}"
    link = yaml.safe_load((demo / "sweep" / "results.yaml").read_text())["mlflow_runs_url"]
    args = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{demo / 'mlflow.db'}"]
    args += ["--host", HOST, "--port", str(port), "--workers", "1"]
    with server(args, out / "mlflow-server.log.txt"):
        until("mlflow server", lambda: get(f"{base}/health"))

        def ready(page: Any) -> None:
            score = page.locator('[role="gridcell"][col-id="metrics.`score`"]')
            score.first.wait_for(timeout=int(WAIT * 1000))

        path = out / "mlflow.png"
        shoot(link.replace("http://127.0.0.1:5000", base), path, ready)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "demo", help="the demo's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "shots", help="where the PNGs go")
    options = parser.parse_args()
    demo, out = options.demo.resolve(), options.out.resolve()
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no {CHROMIUM}: make chromium (or apt-get install chromium)")
    if not (demo / "sweep" / "results.yaml").is_file():
        demo.mkdir(parents=True, exist_ok=True)
        app = [sys.executable, str(ROOT / "examples" / "train.py"), *DEMO]
        subprocess.run(app, cwd=demo, check=True, timeout=600)
    out.mkdir(parents=True, exist_ok=True)
    for path in (optuna_shot(demo, out), mlflow_shot(demo, out)):
        print(path)


if __name__ == "__main__":
    main()
