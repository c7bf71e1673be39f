"""Every example of the docs and the README runs, and shows what it shows.

One test per page: its blocks run in order in a fresh folder that holds the
example app (``examples/``, ``conf/``), as a reader would type them. A
``console`` block's commands run in ``bash``; ``pycon`` blocks run in one
Python process (a console block in between starts a new one). An output that
differs from the page fails the test, with both shown.

``IVORY_UPDATE_EXAMPLES=1`` writes the actual outputs into the pages instead
(keeping the ``...`` lines of outputs that still match): how the outputs shown
are made, never by hand.
"""

from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import ROOT, Block, blocks_of, markdown_files, replace_blocks, session, session_text
from doc_outputs import matches, shown

UPDATE = os.environ.get("IVORY_UPDATE_EXAMPLES") == "1"
RUNNER = Path(__file__).with_name("pycon_runner.py")
#: Pages whose examples take less than a few seconds: the rest start sweeps.
QUICK = {"docs/reference/ranges.md"}
#: Fewer checked blocks than this means the collector lost its way.
AT_LEAST = 30


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


PAGES = [
    pytest.param(path, marks=() if page_id(path) in QUICK else pytest.mark.slow, id=page_id(path))
    for path in markdown_files()
    if any(b.kind in ("console", "pycon") for b in blocks_of(path))
]


def workdir_for(tmp_path: Path) -> Path:
    """A fresh folder with the example apps, as in a clone of the repository."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    shutil.copytree(ROOT / "examples", workdir / "examples")
    shutil.copytree(ROOT / "conf", workdir / "conf")
    return workdir


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HYDRA_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr in the order a terminal shows them
    env["COLUMNS"] = "100"
    return env


def run_console(block: Block, workdir: Path, failures: list[str]) -> list[str] | None:
    """Run a console block; its lines again when an output changed (else None)."""
    commands = session(block)
    changed = False
    for command in commands:
        proc = subprocess.run(
            ["bash", "-c", command.text],
            cwd=workdir,
            env=shell_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        actual = shown(proc.stdout, str(workdir)).splitlines()
        if not matches(command.expected, actual):
            changed = True
            failures.append(diff(block, command.text, command.expected, actual))
            command.expected = actual
    return session_text(commands) if changed else None


def run_pycon(blocks: list[Block], workdir: Path, failures: list[str]) -> dict[int, list[str]]:
    """Run consecutive pycon blocks in one process; the blocks to rewrite, by line."""
    parser = doctest.DocTestParser()
    examples = [parser.get_examples("\n".join(b.lines) + "\n") for b in blocks]
    spec = workdir / ".pycon.json"
    spec.write_text(json.dumps([[e.source for e in block] for block in examples]))
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(spec)],
        cwd=workdir,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if "@@results@@" not in proc.stdout:
        pytest.fail(f"{blocks[0].where}: the pycon runner failed:\n{proc.stdout}\n{proc.stderr}")
    results = json.loads(proc.stdout.split("@@results@@", 1)[1])
    new = {}
    for block, block_examples, outputs in zip(blocks, examples, results, strict=True):
        lines: list[str] = []
        changed = False
        for example, output in zip(block_examples, outputs, strict=True):
            actual = shown(output, str(workdir)).splitlines()
            expected = example.want.splitlines()
            if not matches(expected, actual):
                changed = True
                failures.append(diff(block, example.source.rstrip(), expected, actual))
                expected = actual
            source = example.source.rstrip("\n").split("\n")
            lines += [">>> " + source[0], *("... " + line for line in source[1:]), *expected]
        if changed:
            new[block.line] = lines
    return new


def write_file(block: Block, workdir: Path, failures: list[str]) -> None:
    """Write a file block; one that shows a file of the repository must be that file."""
    text = "\n".join(block.lines) + "\n"
    original = ROOT / str(block.title)
    if original.is_file() and original.read_text() != text:
        failures.append(f"{block.where}: differs from {block.title} of the repository")
    (workdir / str(block.title)).parent.mkdir(parents=True, exist_ok=True)
    (workdir / str(block.title)).write_text(text)


def diff(block: Block, command: str, expected: list[str], actual: list[str]) -> str:
    return "\n".join(
        [f"{block.where}: {command}", "--- shown in the docs", *expected, "+++ actual", *actual]
    )


@pytest.mark.parametrize("page", PAGES)
def test_examples_of_page(page: Path, tmp_path: Path) -> None:
    workdir = workdir_for(tmp_path)
    failures: list[str] = []
    new: dict[int, list[str]] = {}
    pending: list[Block] = []
    for block in blocks_of(page) + [None]:  # type: ignore[list-item]
        if pending and (block is None or block.kind == "console"):
            new.update(run_pycon(pending, workdir, failures))
            pending = []
        if block is None:
            break
        if block.kind == "file":
            write_file(block, workdir, failures)
        elif block.kind == "pycon":
            pending.append(block)
        elif block.kind == "console":
            lines = run_console(block, workdir, failures)
            if lines is not None:
                new[block.line] = lines
    if UPDATE and new:
        replace_blocks(page, new)
        return
    if failures:
        message = "\n\n".join(failures)
        pytest.fail(f"outputs changed (IVORY_UPDATE_EXAMPLES=1 rewrites them):\n\n{message}", False)


def test_every_block_is_an_example_or_says_why_not() -> None:
    blocks = [b for path in markdown_files() for b in blocks_of(path)]
    unmarked = [b.where for b in blocks if b.kind == "unmarked"]
    assert not unmarked, (
        "blocks that are neither an example (console, pycon, a file with a title) nor "
        f"marked <!-- not an example: why -->: {unmarked}"
    )
    checked = [b for b in blocks if b.kind in ("console", "pycon")]
    assert len(checked) >= AT_LEAST, f"only {len(checked)} examples found"
    assert (ROOT / "README.md") in {b.path for b in checked}


def test_console_sessions_parse() -> None:
    for path in markdown_files():
        for block in blocks_of(path):
            if block.kind == "console":
                assert session(block), block.where


def test_blocks_are_told_apart(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not an example: needs a cluster -->\n"
        "```bash\nsbatch run.sh\n```\n\n"
        "```yaml\nunmarked: true\n```\n\n"
        '```python title="app.py"\nprint(1)\n```\n\n'
        "- an item\n\n    ```console\n    $ echo a \\\n      b\n    a b\n    ```\n"
    )
    kinds = [(b.kind, b.skip, b.title) for b in blocks_of(page)]
    assert kinds == [
        ("skip", "needs a cluster", None),
        ("unmarked", None, None),
        ("file", None, "app.py"),
        ("console", None, None),
    ]
    (command,) = session(blocks_of(page)[3])
    assert command.text == "echo a \\\n  b" and command.expected == ["a b"]
