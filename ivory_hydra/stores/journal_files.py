"""Optuna journal files that survive a crash in the middle of an append.

A process killed while it appends leaves the journal's last line without its
newline. Optuna's ``JournalFileBackend`` skips such a line when it reads, but
appends the next record onto it, after which every read of the file fails
(``JSONDecodeError``). :class:`RepairingJournalFileBackend` cuts a torn last
record away, under the journal's own lock: when the journal is opened (also
a last line that does not parse), and before every append (a last line
without its newline). Each cut logs one warning naming the file and the
bytes cut; the change that record held is lost, as if its writer had died
just before writing it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def _last_newline(f: Any, end: int) -> int:
    """The offset of the last ``\\n`` before ``end`` (-1 if none)."""
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        f.seek(start)
        found = f.read(position - start).rfind(b"\n")
        if found >= 0:
            return start + found
        position = start
    return -1


def cut_torn_tail(path: str, *, check_last_line: bool = True) -> int:
    """Cut a torn record off the end of the journal at ``path``; return the bytes cut.

    The caller holds the journal's lock. A last line without its newline is
    cut; with ``check_last_line``, so is a last complete line that is not
    JSON. A file that does not start like a journal (``{``) is left alone.

    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/j.log"
    >>> _ = open(path, "wb").write(b'{"op_code":0}\\n{"op_code":1}\\n{"op_co')
    >>> cut_torn_tail(path), open(path, "rb").read()
    (7, b'{"op_code":0}\\n{"op_code":1}\\n')
    >>> cut_torn_tail(path)
    0
    """
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(0)
        if f.read(1) != b"{":
            return 0
        f.seek(size - 1)
        keep = size
        if f.read(1) != b"\n":
            keep = _last_newline(f, size) + 1
        elif not check_last_line:
            return 0
        if check_last_line and keep > 0:
            start = _last_newline(f, keep - 1) + 1
            f.seek(start)
            try:
                json.loads(f.read(keep - start))
            except ValueError:
                keep = start
        if keep == size:
            return 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    cut = size - keep
    log.warning(
        "Journal %s: cut its last %d bytes, a record torn by a process that died while writing it",
        path,
        cut,
    )
    return cut


class RepairingJournalFileBackend(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` that never appends onto a torn record.

    The same file format and lock (``<path>.lock``, Optuna's symlink lock by
    default) as Optuna's, so that other readers and writers of the journal
    (optuna-dashboard, plain Optuna) share it.
    """

    def __init__(self, file_path: str, lock_obj: Any = None) -> None:
        self.path = file_path
        self.lock = lock_obj or JournalFileSymlinkLock(file_path)
        super().__init__(file_path, self.lock)
        self.lock.acquire()
        try:
            cut_torn_tail(file_path)
        finally:
            self.lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # As Optuna's own append_logs, with the tail checked under the same lock.
        text = "\n".join(json.dumps(record, separators=(",", ":")) for record in logs) + "\n"
        self.lock.acquire()
        try:
            cut_torn_tail(self.path, check_last_line=False)
            with open(self.path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        finally:
            self.lock.release()
