"""One trial of ``ncp-hpo worker``: ask, heartbeat, evaluate, tell - through storage outages.

:func:`run_trial` replaces ``study.optimize(n_trials=1)`` so that the worker owns the
parts an outage breaks (see :mod:`ncp_hpo.runtime._heartbeat`): its heartbeat thread survives
storage errors, and the ``tell`` is retried until the storage is back, so a value
computed during an outage is written, not lost. Every trial that does not end COMPLETE
gets the user attribute ``fail_reason``, one line starting with its kind:

``objective error: TYPE: message``   the objective raised
``objective returned nan`` (or ``inf``, a wrong count of values)   not a usable result
``interrupted (SIGTERM or Ctrl-C)``   the worker was stopped during the trial (from the
                                      moment the storage created it)
``worker error: TYPE: message``       the sampler or the worker failed before the
                                      objective ran
``over budget: ...``                  PRUNED unevaluated at the budget's edge
``stale heartbeat: ...``              set by the worker that failed it (the trial's worker
                                      was killed, stalled or cut off past ``--grace``)

With an MLflow tracker the reason also becomes the tag ``ncp_hpo.fail_reason`` of the
trial's run (created, FAILED, when the objective never opened one).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import error_line, redact
from ncp_hpo.exceptions import StorageUnavailableError
from ncp_hpo.runtime._attrs import FAIL_ATTR, FAIL_TAG, OVER_BUDGET_ATTR
from ncp_hpo.runtime._errors import chain
from ncp_hpo.runtime._heartbeat import StaleCheck, TrialHeartbeat, trial_id
from ncp_hpo.runtime._liveness import on_running

if TYPE_CHECKING:
    from types import TracebackType

    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["INTERRUPTED", "is_storage_error", "run_trial", "tag_failure"]

INTERRUPTED = "interrupted (SIGTERM or Ctrl-C)"
_STORAGE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "sqlite3", "pymysql", "MySQLdb")


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the storage (database, driver, Optuna's storage layer)."""
    import optuna

    for e in chain(exc):
        if isinstance(e, StorageUnavailableError | optuna.exceptions.StorageInternalError):
            return True
        if type(e).__module__.split(".")[0] in _STORAGE_MODULES:
            return True
    return False


def _check_values(values: Any, n_objectives: int) -> str | None:
    """Why ``values`` cannot be told as COMPLETE, or ``None`` when they can."""
    flat = (
        list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
    )
    if len(flat) != n_objectives:
        return f"objective returned {len(flat)} values for {n_objectives} objectives"
    try:
        finite = all(math.isfinite(float(v)) for v in flat)
    except (TypeError, ValueError):
        return f"objective returned a non-number: {values!r}"[:300]
    if not finite:
        shown = ", ".join(str(float(v)) for v in flat)
        return f"objective returned {shown}"
    return None


def _evaluate(
    trial: optuna.trial.Trial, objective: Callable[[optuna.trial.Trial], Any], n_obj: int
) -> tuple[Any, Any, str | None, BaseException | None]:
    """(values, state, fail_reason, interrupt) of one evaluation; storage errors raise."""
    import optuna
    from optuna.trial import TrialState

    try:
        values = objective(trial)
    except optuna.TrialPruned as exc:
        reason = None
        if trial.user_attrs.get(OVER_BUDGET_ATTR):
            reason = f"over budget: {exc}" if str(exc) else "over budget"
        return None, TrialState.PRUNED, reason, None
    except KeyboardInterrupt as exc:
        return None, TrialState.FAIL, INTERRUPTED, exc
    except Exception as exc:
        if is_storage_error(exc):
            raise
        return None, TrialState.FAIL, f"objective error: {error_line(exc)}", None
    bad = _check_values(values, n_obj)
    if bad is not None:
        return None, TrialState.FAIL, bad, None
    return values, None, None, None


def run_trial(
    study: optuna.Study,
    objective: Callable[[optuna.trial.Trial], Any],
    *,
    storage: Any,
    on_start: Callable[[optuna.trial.Trial], None] | None = None,
    beat_delay: Callable[[int], float] | None = None,
) -> tuple[FrozenTrial, bool]:
    """Run one trial of ``study`` (``storage`` is the study's raw storage).

    The trial's heartbeat starts the moment the storage has created it (or popped it from
    the queue), before anything else is done with it. Returns the finished trial and
    whether another worker finished it first (failed it as stale: this worker stalled or
    was cut off past the grace period). Raises storage errors (:func:`is_storage_error`;
    the trial is left to the heartbeat mechanism) and, after the trial is told FAIL,
    ``KeyboardInterrupt`` and any other error raised before the objective ran.
    ``beat_delay(trial_id)`` (fault injection only) holds back the first beat.
    """
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental; "heartbeat ... with Study.optimize"
        fail_stale_trials(study)
    with _Started(study, storage, beat_delay) as started:
        running = _running_ids(study, storage)
        with on_running(started.begin), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                trial = study.ask()
            except BaseException:
                started.begin_new(running)  # the sampler failed after the trial was created
                raise
        started.begin(trial_id(trial))  # a storage that does not tell (no heartbeat)
        if on_start is not None:
            on_start(trial)
        values, state, reason, interrupt = _evaluate(trial, objective, len(study.directions))
        if storage.get_trial(trial_id(trial)).state.is_finished():
            frozen = storage.get_trial(trial_id(trial))
            return frozen, True
        if reason is not None:
            with contextlib.suppress(Exception):  # finished meanwhile: the tell says so
                trial.set_user_attr(FAIL_ATTR, reason)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frozen = study.tell(
                trial,
                values if state is None else None,
                state=state,
                skip_if_finished=True,
            )
    elsewhere = frozen.state == TrialState.FAIL and reason is None
    if interrupt is not None:
        raise interrupt
    return frozen, elsewhere


def _running_ids(study: optuna.Study, storage: Any) -> set[int] | None:
    """Ids of the study's RUNNING trials, where the storage will not tell which trial
    ``ask`` creates (no heartbeat: :mod:`ncp_hpo.runtime._liveness`); else ``None``."""
    from optuna.trial import TrialState

    interval = getattr(storage, "get_heartbeat_interval", None)
    if isinstance(storage, StaleCheck) and interval is not None and interval():
        return None
    return {trial_id(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


class _Started:
    """The trial this worker started: its heartbeat from the moment it exists, and, when
    the worker is stopped (SIGTERM, Ctrl-C) or fails before the objective has run, the
    trial told FAIL with its ``fail_reason`` (a storage error leaves it to the heartbeat
    mechanism: the storage cannot take the write)."""

    def __init__(
        self, study: optuna.Study, storage: Any, delay: Callable[[int], float] | None = None
    ) -> None:
        self.study = study
        self.storage = storage
        self.delay = delay
        self.trial_id: int | None = None
        self.beat: TrialHeartbeat | None = None

    def begin(self, started: int) -> None:
        if self.trial_id is not None:
            return
        self.trial_id = started
        beats = hasattr(self.storage, "record_heartbeat")
        interval = self.storage.get_heartbeat_interval() if beats else None
        health = getattr(self.storage, "health", None)
        if interval and health is not None:
            delay = self.delay(started) if self.delay is not None else 0.0
            self.beat = TrialHeartbeat(
                self.storage, started, interval=interval, health=health, delay=delay
            )
            self.beat.__enter__()

    def begin_new(self, before: set[int] | None) -> None:
        """After a failed ``ask``: take the one trial RUNNING now that was not in
        ``before`` (the trial ``ask`` created) as this worker's, so it is told FAIL."""
        from optuna.trial import TrialState

        if self.trial_id is not None or before is None:
            return
        with contextlib.suppress(Exception):
            now = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            new = {trial_id(t) for t in now} - before
            if len(new) == 1:
                self.begin(new.pop())

    def __enter__(self) -> _Started:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None and self.trial_id is not None and not is_storage_error(exc):
                interrupted = isinstance(exc, KeyboardInterrupt)
                self._fail(INTERRUPTED if interrupted else f"worker error: {error_line(exc)}")
        finally:
            if self.beat is not None:
                self.beat.__exit__(None, None, None)

    def _fail(self, reason: str) -> None:
        """Tell the trial FAIL with ``reason`` unless it is finished (best effort)."""
        from optuna.trial import TrialState

        assert self.trial_id is not None
        try:
            frozen = self.storage.get_trial(self.trial_id)
            if frozen.state.is_finished():
                return  # the objective's interrupt was told FAIL already
            self.storage.set_trial_user_attr(self.trial_id, FAIL_ATTR, reason)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
        except Exception:  # the storage is gone: the stale check fails it later
            pass


def tag_failure(
    tracker: Any, study_name: str, frozen: FrozenTrial, params: dict[str, Any] | None = None
) -> None:
    """Put the trial's ``fail_reason`` on its MLflow run, or on a new FAILED run when the
    trial has none (never raises: tracking must not cost a trial)."""
    reason = frozen.user_attrs.get(FAIL_ATTR)
    if tracker is None or not reason or frozen.user_attrs.get(OVER_BUDGET_ATTR):
        return
    from ncp_hpo.tracking import TrialRun

    tags = {FAIL_TAG: redact(reason), "ncp_hpo.trial": str(frozen.number)}
    run_id = frozen.user_attrs.get("mlflow_run_id")
    try:
        if run_id:
            TrialRun(tracker, str(run_id)).set_tags(tags)
            return
        with tracker.trial_run(
            code=frozen.user_attrs.get("code"),
            study_name=study_name,
            run_name=f"trial-{frozen.number}",
            params=params,
        ) as run:
            run.set_tags(tags)
            raise _Failed
    except _Failed:
        pass
    except Exception:  # MLflow down: the reason is still in the Optuna storage
        pass


class _Failed(Exception):
    """Ends a failure's MLflow run as FAILED."""
