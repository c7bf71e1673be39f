"""Stop signals as Ctrl-C, held while a store is written.

Each case runs in a fresh Python process that signals itself, so the
handlers are the real ones, in a real main thread.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import os, signal, sys
        from ivory_hydra.signals import Interrupted, interrupts, received, shielded
        events = []
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_signal_outside_a_shield_is_raised_at_once():
    result = run(
        """
        with interrupts():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                events.append("went on")
            except Interrupted as error:
                events.append(f"raised {error.exit_code}")
        print(events, received())
        """
    )
    assert result.stdout.strip() == "['raised 143'] 15", result.stderr  # received() names it


def test_a_signal_inside_a_shield_is_raised_when_the_block_ends():
    result = run(
        """
        with interrupts():
            try:
                with shielded():
                    with shielded():
                        os.kill(os.getpid(), signal.SIGTERM)
                        events.append("inner went on")
                    events.append("outer went on")
                events.append("after the shield")
            except Interrupted as error:
                events.append(f"raised {error.exit_code}")
            with shielded():  # the clean-up's own writes are not interrupted again
                events.append("clean-up")
        print(events)
        """
    )
    expected = "['inner went on', 'outer went on', 'raised 143', 'clean-up']"
    assert result.stdout.strip() == expected, result.stderr


def test_a_second_signal_exits_at_once_even_inside_a_shield():
    result = run(
        """
        with interrupts():
            with shielded():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGHUP)
                print("not reached")
        """
    )
    assert result.returncode == 128 + 1  # SIGHUP's code
    assert "not reached" not in result.stdout


def test_a_signal_dropped_inside_a_finalizer_is_raised_at_the_next_check():
    """Python drops an exception raised while ``__del__`` (or a weak reference's
    callback) runs; the handler may run right there. ``check()`` raises it again."""
    result = run(
        """
        from ivory_hydra.signals import check

        class Finalized:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):  # the handler runs here; its exception is dropped
                    pass

        with interrupts():
            try:
                Finalized()  # finalized at once
                events.append("went on")
                check()
                events.append("not raised")
            except Interrupted as error:
                events.append(f"raised {error.exit_code}")
        print(events)
        """
    )
    assert result.stdout.strip() == "['went on', 'raised 143']", result.stdout + result.stderr
    assert "Exception ignored" in result.stderr  # the first Interrupted was dropped
