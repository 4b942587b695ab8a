"""Storage calls retried through an outage, and what one process saw of its storage.

:func:`call_with_retry` retries a call while it fails for a transient reason
(:func:`ncp_hpo.runtime._errors.is_transient`) until the storage has been unreachable for
:attr:`StorageHealth.retry_window` seconds; :class:`StorageHealth` records the outages.
Used by :mod:`ncp_hpo.runtime._heartbeat` (its storage and its heartbeat thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ncp_hpo.exceptions import StorageUnavailableError
from ncp_hpo.runtime._errors import is_transient, root_cause

__all__ = ["StorageHealth", "call_with_retry"]

T = TypeVar("T")
_MAX_PAUSE = 2.0  # seconds between retries at most: the storage is used soon after it is back


class StorageHealth:
    """What one process saw of its storage: outages, their length, the last error.

    Shared by the main thread and the heartbeat thread (thread-safe). Times are
    ``time.monotonic()`` seconds.
    """

    def __init__(self, *, retry_window: float) -> None:
        self.retry_window = retry_window
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.last_error = ""
        self.outages = 0
        self.errors = 0
        self.longest_outage_s = 0.0
        # called with ("unreachable", cause) and ("back", duration), from any thread
        self.listener: Callable[[str, str], None] | None = None

    def ok(self) -> None:
        if self.down_since is None:  # the common case, without the lock
            return
        with self._lock:
            if self.down_since is None:
                return
            lasted = time.monotonic() - self.down_since
            self.longest_outage_s = max(self.longest_outage_s, lasted)
            self.down_since = None
        self._tell("back", f"after {lasted:.1f} s")

    def failed(self, exc: BaseException) -> None:
        cause = root_cause(exc)
        with self._lock:
            self.errors += 1
            self.last_error = cause
            new = self.down_since is None
            if new:
                self.down_since = time.monotonic()
                self.outages += 1
        if new:
            self._tell("unreachable", f"{cause}; retrying for up to {self.retry_window:g} s")

    def _tell(self, event: str, detail: str) -> None:
        if self.listener is not None:
            try:
                self.listener(event, detail)
            except Exception:  # a log line never costs the storage call
                pass

    def down_for(self) -> float:
        """Seconds since the storage last answered after an error (0 while it answers)."""
        with self._lock:
            return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    def expired(self) -> bool:
        return self.down_for() >= self.retry_window


_local = threading.local()


def call_with_retry(health: StorageHealth, fn: Callable[[], T]) -> T:
    """``fn()``, retried with back-off while it fails for a transient reason, until the
    storage has been unreachable for ``health.retry_window`` seconds (then
    :class:`StorageUnavailableError`). Calls nested in a retried call are not retried again.
    Errors that are not transient (``KeyError``, ``UpdateFinishedTrialError``, a refused
    password) pass through unchanged."""
    if getattr(_local, "depth", 0):
        return fn()
    _local.depth = 1
    pause = 0.1
    try:
        while True:
            try:
                result = fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                health.failed(exc)
                if health.expired():
                    raise StorageUnavailableError(
                        f"the storage was unreachable for {health.down_for():.0f} s "
                        f"(retry window {health.retry_window:g} s): {health.last_error}"
                    ) from exc
                time.sleep(min(pause, max(0.0, health.retry_window - health.down_for())))
                pause = min(_MAX_PAUSE, pause * 2)
                continue
            health.ok()
            return result
    finally:
        _local.depth = 0
