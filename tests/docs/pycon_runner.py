"""Runs the ``pycon`` blocks of one page, in order, in one namespace, like a reader would.

``python pycon_runner.py BLOCKS.json`` reads a list of blocks (each a list of
doctest examples: source and expected output), runs them in the current folder
and prints, as JSON, each example's actual output. A raised exception is shown
as the interpreter shows it, without its traceback's frames.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback


def run(source: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(source, "<docs>", "single"), namespace)
        except Exception as error:
            out.write("Traceback (most recent call last):\n  ...\n")
            out.write("".join(traceback.format_exception_only(type(error), error)))
    return out.getvalue()


def main(path: str) -> None:
    with open(path) as spec:
        blocks = json.load(spec)
    namespace: dict = {"__name__": "__main__"}
    results = [[run(source, namespace) for source in block] for block in blocks]
    sys.stdout.flush()
    print("\n@@results@@\n" + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
