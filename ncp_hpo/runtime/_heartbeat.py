"""Optuna's heartbeat, made to ride out a storage outage (the one wrapper around it).

Optuna's own heartbeat thread (``study.optimize`` on a storage with ``heartbeat_interval``)
dies on its first failed write, so a trial whose worker is alive is failed as stale after
a database restart shorter than the grace period, and the value of a trial that finishes
during the outage is lost with the failed ``tell``. This module keeps Optuna's storage
format and its public protocol (``RDBStorage(heartbeat_interval=, grace_period=,
heartbeat_stale_trial_callback=)``, :func:`optuna.storages.fail_stale_trials`) and changes
three things, all here:

* :class:`ResilientRDBStorage` retries every storage call that fails for a transient reason
  (:func:`ncp_hpo.runtime._errors.is_transient`: the server refuses connections, restarts,
  is out of reach, or SQLite is locked) with back-off until the storage answers or it has
  been unreachable for ``retry_window`` seconds; then it raises
  :class:`StorageUnavailableError` (one line, the root cause). A ``tell`` that finds the
  trial already finished with the same state (the first try committed, its answer was lost)
  counts as done. So an objective value computed during an outage is written when the
  storage is back.
* :class:`TrialHeartbeat`, the worker's heartbeat thread, survives errors: while the
  storage is unreachable it retries every ``min(1, interval)`` seconds, so the beat is
  current again at most about a second after the storage is back.
* :class:`StaleCheck` (mixed into the storages) counts a trial as stale only if it is
  stale in two checks ``confirm`` seconds apart. Every worker that was cut off by the same
  outage sees a trial of a live worker stale right after the storage is back (its last beat
  is as old as the outage); the second check sees the live worker's new beat. A trial is
  therefore never failed for an outage, however long, that its worker survives; a dead
  worker's trial is failed ``confirm`` seconds later than Optuna alone would. Before
  failing a trial it records the user attribute ``fail_reason``.

The private Optuna names this needs are used only here: ``BaseHeartbeat`` (the base
class that makes a storage a heartbeat storage), a trial's storage id ``_trial_id``
(:func:`trial_id`), ``_get_stale_trial_ids`` (the
method :func:`~optuna.storages.fail_stale_trials` calls), ``record_heartbeat``, and the
private ``RDBStorage`` methods Optuna's ``_CachedStorage`` calls (``_create_new_trial``,
``_get_trials``, ``_set_trial_param``, ``_get_best_trial_id``).
``tests/distributed/test_heartbeat.py`` fails if the Optuna in use changes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat  # the one import of this private module
from optuna.trial import TrialState

from ncp_hpo.exceptions import StorageUnavailableError
from ncp_hpo.runtime._attrs import FAIL_ATTR
from ncp_hpo.runtime._errors import is_transient, root_cause

if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.trial import FrozenTrial

__all__ = [
    "FAIL_ATTR",
    "BaseHeartbeat",
    "ResilientRDBStorage",
    "StaleCheck",
    "StorageHealth",
    "TrialHeartbeat",
    "stale_callback",
    "trial_id",
]

T = TypeVar("T")
_MAX_PAUSE = 2.0  # seconds between retries at most: the storage is used soon after it is back


def trial_id(trial: Any) -> int:
    """The storage id of ``trial`` (a :class:`~optuna.trial.Trial` or
    :class:`~optuna.trial.FrozenTrial`): storages address trials by it, but Optuna keeps
    it private (``_trial_id``)."""
    return int(trial._trial_id)


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


class StaleCheck:
    """Mixin for a heartbeat storage: stale only when stale in two checks ``confirm`` s
    apart, and ``fail_reason`` recorded before the trial is failed.

    The class it is mixed into sets ``stale_confirm_s`` and implements
    ``_stale_candidates(study_id)`` (its plain staleness test).
    """

    stale_confirm_s: float = 3.0

    def _stale_candidates(self, study_id: int) -> list[int]:
        raise NotImplementedError

    def _grace_s(self) -> float:
        raise NotImplementedError

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        first = self._stale_candidates(study_id)
        if not first:
            return []
        if self.stale_confirm_s > 0:
            time.sleep(self.stale_confirm_s)
            again = set(self._stale_candidates(study_id))
            first = [t for t in first if t in again]
        reason = (
            f"stale heartbeat: no beat for more than {self._grace_s():g} s "
            "(worker killed, stalled or cut off from the storage)"
        )
        marked = []
        storage: Any = self
        for trial_id in first:
            try:
                storage.set_trial_user_attr(trial_id, FAIL_ATTR, reason)
            except UpdateFinishedTrialError:
                continue  # finished meanwhile (or failed by another worker)
            marked.append(trial_id)
        return marked


class _StaleCallback:
    """Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` (when retries
    are on), with the failed trial's ``fail_reason`` and ``worker`` left off the queued
    copy, plus listeners (e.g. the worker's MLflow tagging) told of every stale trial."""

    def __init__(self, retries: int) -> None:
        self.retry: Any = None
        self.listeners: list[Callable[[FrozenTrial], None]] = []
        if retries > 0:
            import warnings

            from optuna.exceptions import ExperimentalWarning
            from optuna.storages import RetryHeartbeatStaleTrialCallback

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                self.retry = RetryHeartbeatStaleTrialCallback(max_retry=retries)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        for listener in self.listeners:
            try:
                listener(trial)
            except Exception:  # a listener never costs the retry
                pass
        if self.retry is not None:
            copy = optuna.trial.FrozenTrial(
                number=trial.number,
                state=trial.state,
                value=None,
                values=trial.values,
                datetime_start=trial.datetime_start,
                datetime_complete=trial.datetime_complete,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={
                    k: v for k, v in trial.user_attrs.items() if k not in (FAIL_ATTR, "worker")
                },
                system_attrs=trial.system_attrs,
                intermediate_values=trial.intermediate_values,
                trial_id=trial_id(trial),
            )
            self.retry(study, copy)


def stale_callback(retries: int) -> _StaleCallback:
    """The heartbeat-stale callback of the storages :func:`ncp_hpo.runtime._storage.open_storage`
    opens: queues a copy of a stale trial up to ``retries`` times (0: never)."""
    return _StaleCallback(retries)


_RETRIED = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    # private methods optuna.storages._CachedStorage (the wrapper Optuna puts around every
    # RDBStorage) calls instead of the public ones; pinned by test_heartbeat.py
    "_create_new_trial",
    "_get_trials",
    "_set_trial_param",
    "_get_best_trial_id",
)
# not retried: no database access, or retried with care below (set_trial_state_values,
# _get_stale_trial_ids), or beaten by TrialHeartbeat's own loop (record_heartbeat)
NOT_RETRIED = (
    "check_trial_is_updatable",
    "get_heartbeat_interval",
    "get_heartbeat_stale_trial_callback",
    "get_failed_trial_callback",
    "remove_session",
    "upgrade",
    "get_current_version",
    "get_head_version",
    "get_all_versions",
    "record_heartbeat",
    "set_trial_state_values",
)


def _retrying(name: str) -> Callable[..., Any]:
    def method(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        base = getattr(optuna.storages.RDBStorage, name)
        return call_with_retry(self.health, lambda: base(self, *args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"RDBStorage.{name}, retried through transient storage errors."
    return method


class ResilientRDBStorage(StaleCheck, optuna.storages.RDBStorage):
    """:class:`optuna.storages.RDBStorage` that rides out storage outages (module doc).

    Args:
        url, engine_kwargs, heartbeat_interval, grace_period, heartbeat_stale_trial_callback:
            as for :class:`~optuna.storages.RDBStorage`.
        retry_window: seconds of unreachable storage after which a call gives up.
        stale_confirm: seconds between the two staleness checks (0: one check).
    """

    def __init__(
        self,
        url: str,
        *,
        engine_kwargs: dict[str, Any] | None = None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
        retry_window: float = 60.0,
        stale_confirm: float = 3.0,
    ) -> None:
        self.health = StorageHealth(retry_window=retry_window)
        self.stale_confirm_s = stale_confirm
        super().__init__(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
        )

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("health", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self.health = StorageHealth(retry_window=60.0)

    def _grace_s(self) -> float:
        return float(self.grace_period or 2 * (self.heartbeat_interval or 0))

    def _stale_candidates(self, study_id: int) -> list[int]:
        base = optuna.storages.RDBStorage._get_stale_trial_ids
        return call_with_retry(self.health, lambda: base(self, study_id))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Retried; a retry that finds the trial finished as asked counts as done."""
        tries = 0

        def once() -> bool:
            nonlocal tries
            tries += 1
            try:
                return optuna.storages.RDBStorage.set_trial_state_values(
                    self, trial_id, state, values
                )
            except UpdateFinishedTrialError:
                if tries > 1:
                    done = optuna.storages.RDBStorage.get_trial(self, trial_id)
                    if done.state == state and (
                        values is None or list(done.values or []) == list(values)
                    ):
                        return True
                raise

        return call_with_retry(self.health, once)


for _name in _RETRIED:
    setattr(ResilientRDBStorage, _name, _retrying(_name))


class TrialHeartbeat:
    """The heartbeat thread of one trial: beats every ``interval`` s, and every
    ``min(1, interval)`` s while the storage fails, until the ``with`` block ends.

    Args:
        storage: a heartbeat storage (``record_heartbeat(trial_id)``).
        trial_id: the trial's storage id.
        interval: seconds between beats.
        health: where failures and recoveries are recorded.
    """

    def __init__(
        self, storage: Any, trial_id: int, *, interval: float, health: StorageHealth
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.health = health
        self.beats = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ncp-hpo-heartbeat", daemon=True)

    def __enter__(self) -> TrialHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 30.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # the beat must outlive any storage error
                self.failures += 1
                self.health.failed(exc)
                wait = min(1.0, self.interval)
            else:
                self.beats += 1
                self.health.ok()
                wait = self.interval
            if self._stop.wait(wait):
                return
