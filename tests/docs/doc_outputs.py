"""Comparing an example's output with the one the docs show.

Both sides are normalized first: what changes from run to run (times, dates,
ids, digests, addresses, durations, the temporary folder) is replaced by a
fixed word. A line ``...`` in the expected output stands for any number of
lines; everything else must match line for line.
"""

from __future__ import annotations

import re

#: Where the docs say the examples ran; the real temporary folder is shown as it.
SHOWN_DIR = "/home/me/project"

NORMALIZERS = [
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d([,.]\d+)?"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d"), "<date>/<time>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"-[0-9a-f]{8}\b"), "-<digest>"),
    (re.compile(r"\b0x[0-9a-f]+\b"), "0x<address>"),
    (re.compile(r"\bpid \d+( on [^\s,)]+)?"), "pid <pid> on <host>"),
    (re.compile(r"\b\d+(\.\d+)? ?(ms|s)\b"), "<duration>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),  # --port 0's pick
]


def shown(text: str, workdir: str) -> str:
    """The output as the docs show it: the temporary folder is SHOWN_DIR."""
    return text.replace(workdir, SHOWN_DIR)


def normalized(line: str) -> str:
    """A line with its volatile parts replaced, trailing spaces dropped."""
    for pattern, word in NORMALIZERS:
        line = pattern.sub(word, line)
    return line.rstrip()


def trimmed(lines: list[str]) -> list[str]:
    """Normalized lines, without blank lines at either end."""
    found = [normalized(line) for line in lines]
    while found and not found[-1]:
        found.pop()
    while found and not found[0]:
        found.pop(0)
    return found


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected``, a ``...`` line matching any number of lines.

    >>> matches(["a", "...", "d"], ["a", "b", "c", "d"])
    True
    >>> matches(["a", "...", "d"], ["a", "b", "c"])
    False
    >>> matches(["[2026-12-02 13:33:54,821][HYDRA] x"], ["[2026-12-06 01:02:03,456][HYDRA] x"])
    True
    >>> matches(["[run#0] lr=0.1"], ["[run#0] lr=0.01"])
    False
    """
    want, got = trimmed(expected), trimmed(actual)
    # reachable[j]: want[:i] matches got[:j]
    reachable = [True] + [False] * len(got)
    for line in want:
        if line.strip() == "...":
            for j in range(1, len(got) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j] and got[j] == line for j in range(len(got))]
    return reachable[-1]
