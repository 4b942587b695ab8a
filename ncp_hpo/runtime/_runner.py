"""The one trial runner: every loop of ncp-hpo that runs trials of a study runs them here.

``ncp-hpo study``, ``ncp-hpo worker``, ``compare`` (each sampler x seed study, Ax's
included) call :func:`run_trials` with a :class:`RunPolicy` (the rules) and
:class:`RunHooks` (what they show or log). Each trial goes through
:func:`ncp_hpo.runtime._trial.run_trial` (ask, heartbeat, evaluate, tell, ``fail_reason``).

The rules, the same for every caller:

* **Budget.** A study's budget counts its COMPLETE and PRUNED trials, as
  ``optuna.study.MaxTrialsCallback(states=(COMPLETE, PRUNED))`` does. Not counted: FAILED
  trials, codes refused for a compute budget (PRUNED unevaluated,
  :func:`ncp_hpo.trainers.is_over_budget`) and trials PRUNED unevaluated because other
  processes had taken the last slots (user attribute ``over_budget``).
* **Many processes, one study.** Before asking for a trial the runner checks that counted
  plus RUNNING trials leave room (else it waits, failing stale trials meanwhile, in case a
  running one died); a trial that ranks past the budget once asked (two processes raced
  for the last slot) is PRUNED unevaluated. So N processes together finish exactly the
  budget, where ``MaxTrialsCallback`` alone overshoots by up to N - 1.
* **Stops.** After ``max_failures_in_row`` FAILED trials in a row, after
  ``max_refusals_in_row`` compute-budget refusals in a row, after ``max_errors`` errors
  in a row outside the objective (storage, sampler; each retried after a back-off), when
  ``timeout`` seconds have passed (no trial starts after it), or when a hook's
  ``should_stop`` says so (signals). The summary's ``stop_reason`` is one line saying why
  (``None``: budget met or stopped on request).
* **Heartbeat.** Wherever the storage has one (:func:`ncp_hpo.runtime.open_storage`), the
  outage-proof trial heartbeat of :mod:`ncp_hpo.runtime._heartbeat`, from the moment the
  storage created the trial.
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ncp_hpo._secrets import error_line
from ncp_hpo.exceptions import StorageUnavailableError
from ncp_hpo.runtime._attrs import FAIL_ATTR, OVER_BUDGET_ATTR
from ncp_hpo.runtime._errors import root_cause
from ncp_hpo.runtime._heartbeat import trial_id
from ncp_hpo.runtime._trial import is_storage_error, run_trial

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "MAX_FAILURES_IN_ROW",
    "MAX_REFUSALS_IN_ROW",
    "RunHooks",
    "RunPolicy",
    "RunSummary",
    "TrialEnd",
    "counted_trials",
    "is_counted",
    "run_trials",
    "storage_stop_reason",
]

MAX_FAILURES_IN_ROW = 3
"""Default: FAILED trials in a row after which a run stops."""

MAX_REFUSALS_IN_ROW = 500
"""Default: codes in a row refused for the compute budget after which a run stops."""

TrialEnd = Literal["complete", "pruned", "failed", "refused", "raced", "elsewhere"]
"""How a trial ended for the runner: COMPLETE, PRUNED (counted), FAILED, refused for the
compute budget, PRUNED unevaluated past the study's budget (``raced``), or failed by
another process as stale while this one ran it (``elsewhere``)."""


@dataclass(frozen=True, kw_only=True)
class RunPolicy:
    """The rules of a run (module docstring).

    Attributes:
        budget: counted trials the study should hold (COMPLETE + PRUNED); ``None``: no
            limit (until stopped).
        max_failures_in_row: stop after this many FAILED trials in a row (>= 1).
        max_refusals_in_row: stop after this many compute-budget refusals in a row.
        max_errors: stop after this many errors in a row outside the objective (the
            sampler, the storage; each retried after a back-off of ``poll`` x 2, 4, ...
            seconds); an unavailable storage stops at once.
        timeout: seconds after which no trial starts (``None``: none).
        poll: seconds between checks while other processes hold the remaining budget.
        gc_after_trial: run the garbage collector after every trial.
        refusal_hint: appended to the stop reason after too many refusals (what to raise).
    """

    budget: int | None = None
    max_failures_in_row: int = MAX_FAILURES_IN_ROW
    max_refusals_in_row: int = MAX_REFUSALS_IN_ROW
    max_errors: int = 3
    timeout: float | None = None
    poll: float = 2.0
    gc_after_trial: bool = False
    refusal_hint: str = ""

    def __post_init__(self) -> None:
        for name in ("max_failures_in_row", "max_refusals_in_row"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.budget is not None and self.budget < 0:
            raise ValueError(f"budget must be >= 0 or None, got {self.budget}")


@dataclass(kw_only=True)
class RunHooks:
    """What a caller does around the runner's trials (each optional; none may raise
    except to abort the run).

    Attributes:
        before_trial: ``(study)`` before each ask (e.g. Ax enqueues its candidate).
        on_start: ``(trial)`` once the storage created the trial, before the objective.
        on_finish: ``(study, frozen, end)`` after each trial is told.
        should_stop: ``()`` checked before each trial; ``True`` ends the run (a signal).
        beat_delay: fault injection only: seconds the first beat of a trial id waits.
        log: ``(line)`` for the runner's own events (retries, waiting for the budget).
    """

    before_trial: Callable[[optuna.Study], None] | None = None
    on_start: Callable[[optuna.trial.Trial], None] | None = None
    on_finish: Callable[[optuna.Study, FrozenTrial, TrialEnd], None] | None = None
    should_stop: Callable[[], bool] | None = None
    beat_delay: Callable[[int], float] | None = None
    log: Callable[[str], None] | None = None


@dataclass(kw_only=True)
class RunSummary:
    """What one run did: trials run here by how they ended, why it stopped, wall seconds."""

    ends: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    wall_s: float = 0.0

    def count(self, end: TrialEnd) -> int:
        """Trials of this run that ended ``end``."""
        return self.ends.get(end, 0)

    @property
    def ran(self) -> int:
        """Trials run here, refused codes and trials pruned past the budget aside."""
        return sum(n for end, n in self.ends.items() if end not in ("refused", "raced"))


def is_counted(t: FrozenTrial) -> bool:
    """Whether trial ``t`` counts toward a study's budget (module docstring)."""
    from optuna.trial import TrialState

    from ncp_hpo.trainers import is_over_budget

    return (
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and not t.user_attrs.get(OVER_BUDGET_ATTR)
        and not is_over_budget(t)
    )


def counted_trials(study: optuna.Study) -> int:
    """The study's trials counted toward its budget."""
    return sum(is_counted(t) for t in study.get_trials(deepcopy=False))


def _end_of(frozen: FrozenTrial, elsewhere: bool) -> TrialEnd:
    from optuna.trial import TrialState

    from ncp_hpo.trainers import is_over_budget

    if frozen.user_attrs.get(OVER_BUDGET_ATTR):
        return "raced"
    if is_over_budget(frozen):
        return "refused"
    if elsewhere:
        return "elsewhere"
    if frozen.state == TrialState.COMPLETE:
        return "complete"
    if frozen.state == TrialState.PRUNED:
        return "pruned"
    return "failed"


def storage_stop_reason(exc: BaseException) -> str | None:
    """The one-line reason to stop for a storage error, ``None`` for other errors."""
    if isinstance(exc, StorageUnavailableError):
        return f"stopped: {exc}"
    if is_storage_error(exc):
        return f"stopped on a storage error: {root_cause(exc)}"
    return None


class _Run:
    """State of one :func:`run_trials` call."""

    def __init__(
        self,
        study: optuna.Study,
        objective: Callable[[optuna.trial.Trial], Any],
        storage: Any,
        policy: RunPolicy,
        hooks: RunHooks,
    ) -> None:
        self.study, self.objective, self.storage = study, objective, storage
        self.policy, self.hooks = policy, hooks
        self.summary = RunSummary()
        self.start = time.monotonic()
        self.current: int | None = None  # trial id in progress
        self.failures = self.refusals = self.errors = 0

    def loop(self) -> RunSummary:
        try:
            while self.summary.stop_reason is None and self._may_start():
                self._one()
        except KeyboardInterrupt:
            self.current = None  # run_trial told it FAIL ("interrupted")
            raise
        finally:
            self.summary.wall_s = time.monotonic() - self.start
        return self.summary

    def _one(self) -> None:
        """Run one trial (or retry after an error outside the objective, or stop)."""
        try:
            if self.hooks.before_trial is not None:
                self.hooks.before_trial(self.study)
            frozen, elsewhere = run_trial(
                self.study,
                self._objective,
                storage=self.storage,
                on_start=self._on_start,
                beat_delay=self.hooks.beat_delay,
            )
        except Exception as exc:  # the storage, the sampler or a hook failed
            stop = storage_stop_reason(exc)
            self.errors += 1
            if stop is None and self.errors <= self.policy.max_errors:
                self._log(f"error (retrying): {error_line(exc)}")
                time.sleep(min(30.0, self.policy.poll * 2**self.errors))
                return
            self.summary.stop_reason = stop or (
                f"stopped after {self.errors} errors in a row; last: {error_line(exc)}"
            )
            self._leave_nothing_running()
            return
        self.errors = 0
        self.current = None
        end = _end_of(frozen, elsewhere)
        self.summary.ends[end] = self.summary.ends.get(end, 0) + 1
        self._streaks(frozen, end)
        if self.hooks.on_finish is not None:
            self.hooks.on_finish(self.study, frozen, end)
        if self.policy.gc_after_trial:
            gc.collect()

    def _streaks(self, frozen: FrozenTrial, end: TrialEnd) -> None:
        """Update the failure and refusal streaks; set the stop reason at their limits."""
        if end in ("raced", "elsewhere"):
            return
        self.refusals = self.refusals + 1 if end == "refused" else 0
        if end == "refused":
            if self.refusals >= self.policy.max_refusals_in_row:
                self.summary.stop_reason = (
                    f"the sampler proposed {self.refusals} codes in a row over the compute "
                    f"budget{self.policy.refusal_hint}"
                )
            return
        self.failures = self.failures + 1 if end == "failed" else 0
        if self.failures >= self.policy.max_failures_in_row:
            self.summary.stop_reason = (
                f"stopped after {self.failures} failed trials in a row; last: "
                f"{frozen.user_attrs.get(FAIL_ATTR, 'unknown error')}"
            )

    def _on_start(self, trial: optuna.trial.Trial) -> None:
        self.current = trial_id(trial)
        if self.hooks.on_start is not None:
            self.hooks.on_start(trial)

    def _objective(self, trial: optuna.trial.Trial) -> Any:
        """The objective, after the check that the trial is within the study's budget."""
        import optuna

        if self._past_budget(trial):
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            raise optuna.TrialPruned("the study's budget is taken by other workers' trials")
        return self.objective(trial)

    def _past_budget(self, trial: optuna.trial.Trial) -> bool:
        """Whether counted and RUNNING trials numbered before ``trial`` fill the budget."""
        from optuna.trial import TrialState

        if self.policy.budget is None:
            return False
        ahead = 0
        for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        ):
            if t.number < trial.number and (t.state == TrialState.RUNNING or is_counted(t)):
                ahead += 1
        return ahead >= self.policy.budget

    def _may_start(self) -> bool:
        """Whether to ask for another trial (waits while other processes hold the rest)."""
        from optuna.trial import TrialState

        waited = False
        while True:
            if self.hooks.should_stop is not None and self.hooks.should_stop():
                return False
            timeout = self.policy.timeout
            if timeout is not None and time.monotonic() - self.start > timeout:
                return False
            if self.policy.budget is None:
                return True
            trials = self.study.get_trials(deepcopy=False)
            done = sum(is_counted(t) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if done >= self.policy.budget:
                return False
            if waiting or done + running < self.policy.budget:
                return True
            if not waited:
                self._log(
                    f"budget held: {done} complete or pruned + {running} running of "
                    f"{self.policy.budget}; waiting in case a running trial fails"
                )
                waited = True
            _fail_stale(self.study)  # a dead process's trial frees its slot (is retried)
            time.sleep(self.policy.poll)

    def _log(self, line: str) -> None:
        if self.hooks.log is not None:
            self.hooks.log(line)

    def _leave_nothing_running(self) -> None:
        """Best effort when stopping on an error: fail the trial in progress (one try; if
        the storage is gone, any process fails it as stale once it is back)."""
        from optuna.trial import TrialState

        tid, self.current = self.current, None
        if tid is None:
            return
        try:
            if not self.storage.get_trial(tid).state.is_finished():
                reason = "worker stopped: " + (self.summary.stop_reason or "error")[:300]
                self.storage.set_trial_user_attr(tid, FAIL_ATTR, reason)
                self.storage.set_trial_state_values(tid, TrialState.FAIL)
        except Exception:
            self.summary.stop_reason = (
                f"{self.summary.stop_reason}; its trial in progress stays RUNNING until the "
                "storage is back, then any worker fails it as stale and queues it again"
            )


def _fail_stale(study: optuna.Study) -> None:
    import optuna
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.trial.Trial], Any],
    *,
    storage: Any,
    policy: RunPolicy,
    hooks: RunHooks | None = None,
) -> RunSummary:
    """Run trials of ``study`` under ``policy`` until it says stop (module docstring).

    Args:
        study: the study (its sampler proposes).
        objective: the Optuna objective; its ``fail_reason`` is set by
            :func:`~ncp_hpo.runtime._trial.run_trial`.
        storage: the study's storage object (for the heartbeat and the stale check).
        policy: the rules.
        hooks: what the caller does around each trial.

    Returns:
        The trials run here by how they ended, and why the run stopped.

    Raises:
        KeyboardInterrupt: after the trial in progress is told FAIL (``interrupted``).
        Exception: an error of a hook or of the sampler that is not a storage error.
    """
    return _Run(study, objective, storage, policy, hooks or RunHooks()).loop()
