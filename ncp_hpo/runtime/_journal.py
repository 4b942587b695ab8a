"""Setting aside the cut-off last record of a journal file before anyone appends to it.

Optuna 5.0's :class:`~optuna.storages.journal.JournalFileBackend` appends each batch of
records as whole lines (JSON, then ``"\\n"``) with one ``write`` and an ``fsync``, holding
the journal's file lock (``<journal>.lock``). Its reader goes line by line: a last line
without a newline, or a last line that is not JSON, is skipped, but such a line with any
line after it makes every read raise. A writer killed in the middle of its write (power
loss, a full disk, a copy of a live file) leaves such a cut-off last line, and the next
append lands on the same line: from then on the journal cannot be read, and every trial
in it is out of reach.

:func:`repair_torn_tail`, called whenever :func:`ncp_hpo.runtime.open_storage` opens a
journal, copies the cut-off bytes to a side file ``<journal>.torn-<UTC time>`` and
truncates the journal back to its last complete line, so what Optuna could read stays
readable and new records start on a line of their own.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import BinaryIO, NamedTuple

from optuna.storages.journal import JournalFileOpenLock, JournalFileSymlinkLock

__all__ = ["find_torn_tail", "repair_torn_tail"]

_LOG = logging.getLogger(__name__)
_CHUNK = 1 << 16


class TornTail(NamedTuple):
    """The cut-off end of a journal: bytes ``offset`` to the end of the file."""

    offset: int
    data: bytes
    reason: str


def _is_record(line: bytes) -> bool:
    try:
        json.loads(line)  # the test Optuna's reader applies
    except ValueError:
        return False
    return True


def _read_tail(f: BinaryIO, size: int) -> tuple[int, bytes]:
    """Offset and bytes of an end of the file that holds its last two lines whole."""
    chunk = _CHUNK
    while True:
        start = max(0, size - chunk)
        f.seek(start)
        data = f.read(size - start)
        if start == 0 or data.count(b"\n", 0, len(data) - 1) >= 2:
            return start, data
        chunk *= 4


def find_torn_tail(f: BinaryIO) -> TornTail | None:
    """The cut-off last record of the journal open in ``f`` (binary), or ``None``.

    The last line is cut off when it lacks its newline or is not JSON. ``None`` also when
    the line before it is broken too: Optuna cannot read such a file at all, and setting
    its last line aside would hide that, so it is left as it is (opening it then fails).
    """
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return None
    start, data = _read_tail(f, size)
    if data.endswith(b"\n"):
        cut = data.rfind(b"\n", 0, len(data) - 1) + 1
        if _is_record(data[cut:]):
            return None
        reason = "that are not a JSON record"
    else:
        cut = data.rfind(b"\n") + 1
        reason = "without a final newline"
    if cut > 0 and not _is_record(data[data.rfind(b"\n", 0, cut - 1) + 1 : cut]):
        return None
    return TornTail(start + cut, data[cut:], reason)


def _set_aside(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new ``<path>.torn-<UTC time>[-n]`` file, synced to disk."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        side = path.with_name(f"{path.name}.torn-{stamp}" + (f"-{n}" if n else ""))
        try:
            with open(side, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except FileExistsError:
            continue
        try:  # make the new directory entry durable too
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # not supported by every file system
            pass
        return side
    raise FileExistsError(f"{path.name}.torn-{stamp}: 1000 side files exist already")


def _repair_locked(path: Path, lock: JournalFileSymlinkLock | JournalFileOpenLock) -> Path | None:
    lock.acquire()
    try:
        with open(path, "r+b") as f:
            tail = find_torn_tail(f)
            if tail is None:  # it was a write in flight, now finished
                return None
            side = _set_aside(path, tail.data)  # the copy is on disk before the cut
            f.truncate(tail.offset)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    _LOG.warning(
        "journal %s: its last record was cut off (%d bytes %s); they are kept in %s and "
        "the journal now ends at its last complete record",
        path,
        len(tail.data),
        tail.reason,
        side,
    )
    return side


def repair_torn_tail(
    path: str | os.PathLike[str],
    lock: JournalFileSymlinkLock | JournalFileOpenLock | None = None,
) -> Path | None:
    """Set aside a cut-off last record of the journal file ``path``; the side file or ``None``.

    The cut-off bytes go to ``<path>.torn-<UTC time>`` (synced to disk first), then the
    journal is truncated to its last complete line and one warning is logged naming both
    files and the byte count. Nothing is written to a journal that ends with a complete
    record (the usual case: then not even the lock is taken), or to one that is broken
    before its last line.

    A writer in the middle of its write is never mistaken for a cut-off record: Optuna's
    writers append whole lines in one ``write`` while holding the journal's lock, and the
    check that decides is repeated while holding that same lock (``lock``, by default
    :class:`~optuna.storages.journal.JournalFileSymlinkLock` as
    :class:`~optuna.storages.journal.JournalFileBackend` uses it;
    :class:`~optuna.storages.journal.JournalFileOpenLock` uses the same ``<path>.lock`` and
    excludes it too), so no write is in flight then. The exception is Optuna's own: a lock
    older than its grace period (30 s by default) is broken by the next writer, which
    already makes a writer stalled that long inside its write unsafe in Optuna.

    A journal that cannot be written (read-only file or folder) is left as it is, with a
    warning: nobody can append to it, and Optuna reads it without its cut-off last line.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        if find_torn_tail(f) is None:
            return None
    try:
        return _repair_locked(path, lock or JournalFileSymlinkLock(str(path)))
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        _LOG.warning(
            "journal %s: its last record was cut off and cannot be set aside (%s); "
            "appending to the journal would make it unreadable",
            path,
            exc.strerror,
        )
        return None
