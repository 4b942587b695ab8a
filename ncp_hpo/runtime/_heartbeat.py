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
``_get_trials``, ``_set_trial_param``, ``_get_best_trial_id``), and, to find the trials
that never beat, ``optuna.storages._rdb.models.TrialHeartbeatModel`` and
``_create_scoped_session``.
``tests/runtime/test_heartbeat.py`` fails if the Optuna in use changes them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat  # the one import of this private module
from optuna.trial import TrialState

from ncp_hpo.runtime._attrs import FAIL_ATTR
from ncp_hpo.runtime._liveness import (
    HEARTBEAT_ATTR,
    STARTED_ATTR,
    mark_age,
    notify_running,
    start_mark,
)
from ncp_hpo.runtime._retry import StorageHealth, call_with_retry

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


def trial_id(trial: Any) -> int:
    """The storage id of ``trial`` (a :class:`~optuna.trial.Trial` or
    :class:`~optuna.trial.FrozenTrial`): storages address trials by it, but Optuna keeps
    it private (``_trial_id``)."""
    return int(trial._trial_id)


class StaleCheck:
    """Mixin for a heartbeat storage: stale only when stale in two checks ``confirm`` s
    apart, ``fail_reason`` recorded before the trial is failed, and every trial started
    RUNNING through the storage marked (:mod:`ncp_hpo.runtime._liveness`), so that a trial
    whose worker died before its first beat is failed too.

    The class it is mixed into sets ``stale_confirm_s``, implements
    ``_stale_candidates(study_id)`` (its plain staleness test: trial id to fail reason)
    and ``_grace_s()``, and calls :meth:`_template`/:meth:`_started` around its trial
    creation and :meth:`_before_running` before a trial is set RUNNING.
    """

    stale_confirm_s: float = 3.0

    def _stale_candidates(self, study_id: int) -> dict[int, str]:
        raise NotImplementedError

    def _grace_s(self) -> float:
        raise NotImplementedError

    def _stale_reason(self) -> str:
        return (
            f"stale heartbeat: no beat for more than {self._grace_s():g} s "
            "(worker killed, stalled or cut off from the storage)"
        )

    def _unbeaten_reason(self) -> str:
        return (
            f"stale heartbeat: no beat since the trial started more than {self._grace_s():g} s "
            "ago (worker killed or cut off before its first beat)"
        )

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        first = self._stale_candidates(study_id)
        if not first:
            return []
        if self.stale_confirm_s > 0:
            time.sleep(self.stale_confirm_s)
            again = self._stale_candidates(study_id)
            first = {t: again[t] for t in first if t in again}
        marked = []
        storage: Any = self
        for trial_id, reason in first.items():
            try:
                storage.set_trial_user_attr(trial_id, FAIL_ATTR, reason)
            except UpdateFinishedTrialError:
                continue  # finished meanwhile (or failed by another worker)
            marked.append(trial_id)
        return marked

    # -- trials started through this storage ------------------------------------------------
    def _beats(self) -> bool:
        storage: Any = self
        return bool(storage.get_heartbeat_interval())

    def _template(self, template_trial: FrozenTrial | None) -> FrozenTrial | None:
        """The template to create a trial with: with heartbeats on, a plain new trial
        (``None``) becomes a RUNNING one that carries the start mark, written in the same
        operation."""
        if template_trial is not None or not self._beats():
            return template_trial
        return optuna.trial.FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={STARTED_ATTR: start_mark()},
            intermediate_values={},
            trial_id=-1,
        )

    @staticmethod
    def _started(template_trial: FrozenTrial | None, trial_id: int) -> None:
        """After a trial was created: a new RUNNING trial's id goes to this thread's
        :func:`~ncp_hpo.runtime._liveness.on_running` listener."""
        if template_trial is None:
            notify_running(trial_id)

    def _before_running(self, trial_id: int) -> None:
        """Before a queued (WAITING) trial is set RUNNING: mark it, so that it is failed if
        this process dies between the transition and its first beat."""
        storage: Any = self
        if self._beats() and storage.get_trial(trial_id).state == TrialState.WAITING:
            storage.set_trial_system_attr(trial_id, STARTED_ATTR, start_mark())


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
                system_attrs={  # the copy is a new trial: it has neither started nor beaten
                    k: v
                    for k, v in trial.system_attrs.items()
                    if k not in (STARTED_ATTR, HEARTBEAT_ATTR)
                },
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
    "_get_trials",
    "_set_trial_param",
    "_get_best_trial_id",
)
# not retried: no database access, or retried with care below (set_trial_state_values,
# _create_new_trial, _get_stale_trial_ids), or beaten by TrialHeartbeat's own loop
# (record_heartbeat)
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

    def _stale_candidates(self, study_id: int) -> dict[int, str]:
        base = optuna.storages.RDBStorage._get_stale_trial_ids
        ids = call_with_retry(self.health, lambda: base(self, study_id))
        stale = dict.fromkeys(ids, self._stale_reason())
        for unbeaten in call_with_retry(self.health, lambda: self._unbeaten(study_id)):
            stale.setdefault(unbeaten, self._unbeaten_reason())
        return stale

    def _unbeaten(self, study_id: int) -> list[int]:
        """RUNNING trials started through a heartbeat storage longer than the grace period
        ago that never recorded a heartbeat (Optuna's own check skips them)."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        grace, now = self._grace_s(), time.time()
        old = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            age = mark_age(t.system_attrs, now)
            if age is not None and age[0] > grace:
                old.append(trial_id(t))
        if not old:
            return []
        beats = models.TrialHeartbeatModel
        with _create_scoped_session(self.scoped_session) as session:
            rows = session.query(beats.trial_id).filter(beats.trial_id.in_(old)).all()
        beaten = {row[0] for row in rows}
        return [t for t in old if t not in beaten]

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        """Retried; a new RUNNING trial is created with the start mark (one transaction)
        and its id told to this thread's ``on_running`` listener."""
        base = optuna.storages.RDBStorage._create_new_trial
        template = self._template(template_trial)
        frozen = call_with_retry(self.health, lambda: base(self, study_id, template))
        self._started(template_trial, trial_id(frozen))
        return frozen

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

        if state == TrialState.RUNNING:
            self._before_running(trial_id)
        done = call_with_retry(self.health, once)
        if done and state == TrialState.RUNNING:
            notify_running(trial_id)
        return done


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
        delay: seconds before the first beat (0; fault injection only: ``nobeat``).
    """

    def __init__(
        self,
        storage: Any,
        trial_id: int,
        *,
        interval: float,
        health: StorageHealth,
        delay: float = 0.0,
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.health = health
        self.delay = delay
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
        if self.delay > 0 and self._stop.wait(self.delay):
            return
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
