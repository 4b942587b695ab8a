"""Is a trial's worker alive? Process identity, and the start mark of a trial that never beat.

A heartbeat storage (:class:`ncp_hpo.runtime._heartbeat.StaleCheck`) writes the system
attribute :data:`STARTED_ATTR` on every trial that starts RUNNING through it, in the same
storage operation that creates the trial (a trial popped from the WAITING queue gets it
just before it is set RUNNING). Its value is :func:`start_mark`: the time and the process.
A RUNNING trial that carries the mark but never recorded a heartbeat of its own had a
worker that died (or was cut off) between creating it and its first beat; once the mark is
older than the grace period the stale check fails it like a trial whose beats stopped.
Trials without the mark were started by a process without heartbeats (a plain
``study.optimize``, ``--heartbeat 0``) and are never failed.

The worker that creates a trial learns its id through :func:`notify_running` before the
storage call returns, so it starts its heartbeat before it does anything else with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "HEARTBEAT_ATTR",
    "HOST",
    "STARTED_ATTR",
    "alive_here",
    "mark_age",
    "notify_running",
    "on_running",
    "process_start",
    "start_mark",
]

HEARTBEAT_ATTR = "ncp_hpo:heartbeat"
"""Journal storages: a trial's last beat, ``[trial_id, time, host, pid, process start]``."""

STARTED_ATTR = "ncp_hpo:started"
"""A trial started RUNNING by a heartbeat storage: ``[time, host, pid, process start]``."""

HOST = socket.gethostname()
_listener = threading.local()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (Linux), else ``None``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), to tell a live
    process from a later one that reused its pid; ``None`` where unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def alive_here(host: object, pid: object, start: object) -> bool:
    """Whether the process ``pid`` of ``host`` (started at ``start``) is a live process on
    this machine (a zombie, killed but not yet reaped by its parent, is dead)."""
    if host != HOST or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: trust kill(pid, 0)
    if fields[0] in ("Z", "X"):
        return False
    return start is None or process_start(pid) == start


def start_mark() -> list[Any]:
    """The value of :data:`STARTED_ATTR` for a trial this process starts now."""
    pid = os.getpid()
    return [time.time(), HOST, pid, process_start(pid)]


def mark_age(system_attrs: dict[str, Any], now: float) -> tuple[float, bool] | None:
    """(seconds since the trial was started, whether its starter is alive on this machine),
    or ``None`` when the trial carries no valid start mark."""
    mark = system_attrs.get(STARTED_ATTR)
    if not (isinstance(mark, list) and len(mark) == 4 and isinstance(mark[0], int | float)):
        return None
    return now - float(mark[0]), alive_here(mark[1], mark[2], mark[3])


@contextlib.contextmanager
def on_running(callback: Callable[[int], None]) -> Iterator[None]:
    """While the ``with`` block runs, ``callback(trial_id)`` is called in this thread as soon
    as a heartbeat storage has started a trial RUNNING for it (created or popped)."""
    previous = getattr(_listener, "callback", None)
    _listener.callback = callback
    try:
        yield
    finally:
        _listener.callback = previous


def notify_running(trial_id: int) -> None:
    """Tell this thread's :func:`on_running` callback, if any, that ``trial_id`` runs."""
    callback = getattr(_listener, "callback", None)
    if callback is not None:
        callback(trial_id)
