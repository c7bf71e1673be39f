"""The fenced code blocks of the docs and the README, and what each one is.

Every block is one of:

- ``console``: a shell session. Each ``$ `` line is a command (a line ending
  in ``\\`` goes on), the lines up to the next command are its output;
- ``pycon``: Python at the ``>>>`` prompt, each result below its statement;
- a file: any block with ``title="<relative path>"``, written there before
  the page's sessions run (an app, its config);
- not an example: any other block, which must say so (and why) in a comment
  on the line before it: ``<!-- not an example: needs a SLURM cluster -->``.

In an expected output a line ``...`` stands for any number of lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"<!--\s*not an example:\s*(?P<reason>.+?)\s*-->")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
EXAMPLE_LANGUAGES = ("console", "pycon")


@dataclass
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # of the opening fence, from 1
    language: str
    title: str | None
    indent: str
    lines: list[str]  # the content, without the fences and their indent
    skip: str | None  # why this block is not an example

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """``console``, ``pycon``, ``file``, ``skip``, or ``unmarked``."""
        if self.skip is not None:
            return "skip"
        if self.language in EXAMPLE_LANGUAGES:
            return self.language
        if self.title:
            return "file"
        return "unmarked"


def markdown_files() -> list[Path]:
    """The README and every page of the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file, in order."""
    lines = path.read_text().splitlines()
    found = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        content = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[i + 1 : end]
        ]
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(before)
        title = TITLE.search(info)
        found.append(
            Block(
                path=path,
                line=i + 1,
                language=info.split()[0] if info else "",
                title=title["title"] if title else None,
                indent=indent,
                lines=content,
                skip=marker["reason"] if marker else None,
            )
        )
        i = end + 1
    return found


@dataclass
class Command:
    """One command of a console session and the output shown for it."""

    text: str  # as typed, continuation lines included
    expected: list[str]


def session(block: Block) -> list[Command]:
    """The commands of a ``console`` block."""
    commands: list[Command] = []
    lines = iter(block.lines)
    for line in lines:
        if line.startswith("$ "):
            typed = [line[2:]]
            while typed[-1].endswith("\\"):
                typed.append(next(lines))
            commands.append(Command("\n".join(typed), []))
        elif commands:
            commands[-1].expected.append(line)
        else:
            raise ValueError(f"{block.where}: a console block starts with a `$ ` command")
    return commands


def session_text(commands: list[Command]) -> list[str]:
    """A console block's lines again, from its commands and their outputs."""
    lines = []
    for command in commands:
        lines.append("$ " + command.text)
        lines.extend(command.expected)
    return lines


def replace_blocks(path: Path, new: dict[int, list[str]]) -> None:
    """Rewrite the contents of the blocks (by opening line) of one file."""
    lines = path.read_text().splitlines()
    for block in reversed(blocks_of(path)):
        if block.line not in new:
            continue
        start = block.line  # index of the first content line
        end = start + len(block.lines)
        lines[start:end] = [(block.indent + line).rstrip() for line in new[block.line]]
    path.write_text("\n".join(lines) + "\n")
