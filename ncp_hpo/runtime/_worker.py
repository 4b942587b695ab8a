"""A worker: one of many processes (or machines) running trials of one shared Optuna study.

``ncp-hpo worker`` builds a :class:`Worker`; start the same command N times, on one
machine or many, against one storage::

    ncp-hpo worker --study-name nb201 --storage postgresql://ncp:pw@db:5432/ncp \\
        --benchmark nas-bench-201 --sampler ncp --trials 200 --seed $i

Every worker creates the study if it is missing (directions from the objective) or joins
it, then runs trials until the study holds ``--trials`` *counted* trials: COMPLETE +
PRUNED, as ``ncp-hpo study`` counts them, and as
``optuna.study.MaxTrialsCallback(states=(COMPLETE, PRUNED))`` would; neither a trial pruned
unevaluated at the budget's edge (below) nor a code refused for the compute budget counts.
Together the workers finish exactly that many:

* before asking for a trial, a worker checks that counted + RUNNING trials leave room
  (else it waits, failing stale trials meanwhile, in case a running one dies);
* after asking, a trial whose number ranks past the budget among the counted and RUNNING
  trials (two workers raced for the last slot) is PRUNED unevaluated, with user attribute
  ``over_budget``. (``optuna.study.MaxTrialsCallback`` alone checks only after each trial,
  so N workers overshoot by up to N - 1.)

With a heartbeat (``--heartbeat``, on by default) a worker that dies mid-trial leaves a
trial that another worker marks FAILED after ``--grace`` seconds; it is queued again up to
``--retries`` times with the same parameters (see :mod:`ncp_hpo.runtime._storage`). The
trial's heartbeat starts the moment the storage has created it, and a trial whose worker
died before its first beat is failed the same way (:mod:`ncp_hpo.runtime._liveness`). A
worker stopped by SIGTERM or Ctrl-C fails its own trial (``interrupted``), from the moment
the trial exists.

Each trial gets user attribute ``worker`` (``host:pid``); a failed one gets
``fail_reason``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact
from ncp_hpo.exceptions import WorkerError
from ncp_hpo.runtime._attrs import FAIL_ATTR, OVER_BUDGET_ATTR, WORKER_ATTR
from ncp_hpo.runtime._faults import active_faults, first_beat_delay, inject, stall
from ncp_hpo.runtime._runner import (
    MAX_FAILURES_IN_ROW,
    RunHooks,
    RunPolicy,
    run_trials,
    storage_stop_reason,
)
from ncp_hpo.runtime._specs import ObjectiveSpec, ensure_study_objective, run_params
from ncp_hpo.runtime._trial import tag_failure

if TYPE_CHECKING:
    import optuna
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage

__all__ = ["Worker", "WorkerSummary"]


@dataclass(kw_only=True)
class WorkerSummary:
    """What one worker did, and where the study stands."""

    worker: str
    study: str
    budget: int | None
    ran: int = 0
    complete: int = 0
    pruned: int = 0  # counted toward the budget
    failed: int = 0
    refused: int = 0  # over the compute budget: PRUNED unevaluated, never counted
    past_budget: int = 0  # lost the race for the study's last slots: PRUNED unevaluated
    study_complete: int = 0
    study_pruned: int = 0  # counted toward the budget, with study_complete
    wall_time_s: float = 0.0
    stopped_reason: str | None = None
    storage: str = ""  # outages seen, when there were any

    def line(self) -> str:
        budget = f"/{self.budget}" if self.budget is not None else ""
        outages = f"; {self.storage}" if self.storage else ""
        pruned = f"{self.pruned} pruned, " if self.pruned else ""
        refused = f"{self.refused} refused over the compute budget, " if self.refused else ""
        study = f"{self.study_complete}{budget} complete"
        if self.study_pruned:
            study = (
                f"{self.study_counted}{budget} counted ({self.study_complete} complete, "
                f"{self.study_pruned} pruned)"
            )
        return (
            f"worker {self.worker}: {self.ran} trials here ({self.complete} complete, {pruned}"
            f"{self.failed} failed, {refused}{self.past_budget} past the trial budget) in "
            f"{self.wall_time_s:.1f} s; "
            f"study {self.study!r}: {study}{outages}"
        )

    @property
    def study_counted(self) -> int:
        """The study's trials counted toward the budget: COMPLETE + PRUNED (-1: unknown)."""
        if self.study_complete < 0:
            return -1
        return self.study_complete + self.study_pruned


class Worker:
    """Runs trials of one shared study until its budget of COMPLETE + PRUNED trials is reached.

    Args:
        study_name: the study (created with the objective's directions if missing).
        storage: an Optuna storage shared with the other workers (see
            :func:`ncp_hpo.runtime.open_storage`).
        spec: the objective and the study shape it needs.
        sampler: this worker's sampler.
        budget: total COMPLETE + PRUNED trials of the study (all workers; as
            ``ncp-hpo study`` counts them); ``None``: until stopped.
        max_failures: stop after this many failed trials in a row.
        timeout: start no trial after this many seconds.
        poll: seconds between checks while other workers hold the remaining budget.
        log: where per-trial lines go (``None``: nowhere).
    """

    def __init__(
        self,
        *,
        study_name: str,
        storage: BaseStorage,
        spec: ObjectiveSpec,
        sampler: BaseSampler,
        budget: int | None = None,
        max_failures: int = MAX_FAILURES_IN_ROW,
        timeout: float | None = None,
        poll: float = 2.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.spec = spec
        self.sampler = sampler
        self.budget = budget
        self.max_failures = max_failures
        self.timeout = timeout
        self.poll = poll
        self.log = log
        self.max_storage_errors = 3
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._faults = active_faults()

    def open_study(self) -> optuna.Study:
        """Create the study, or join it after checking it fits this worker's objective."""
        import optuna

        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=self.spec.directions,  # type: ignore[arg-type]
            load_if_exists=True,
        )
        ensure_study_objective(study, self.spec, hint="--study-name or --objective")
        return study

    def run(self) -> WorkerSummary:
        """Run trials until the budget is met, the timeout passes or failures pile up."""
        from optuna.trial import TrialState

        start = time.monotonic()
        summary = WorkerSummary(worker=self.worker_id, study=self.study_name, budget=self.budget)
        health = getattr(self.storage, "health", None)
        if health is not None:
            health.listener = self._on_storage
        stale: Any = getattr(self.storage, "get_heartbeat_stale_trial_callback", lambda: None)()
        if self.spec.tracker is not None and hasattr(stale, "listeners"):
            stale.listeners.append(self._tag_stale)
        study = self._open_study_or_stop()  # WorkerError: one line, no summary
        policy = RunPolicy(
            budget=self.budget,
            max_failures_in_row=self.max_failures,
            max_errors=self.max_storage_errors,
            timeout=self.timeout,
            poll=self.poll,
        )
        hooks = RunHooks(
            on_start=self._on_start,
            on_finish=lambda _study, frozen, end: self._tally(summary, frozen, end),
            beat_delay=self._beat_delay if self._faults else None,
            log=self._emit,
        )
        try:
            run = run_trials(
                study, self._objective, storage=self.storage, policy=policy, hooks=hooks
            )
            summary.stopped_reason = run.stop_reason
        finally:
            summary.wall_time_s = time.monotonic() - start
            summary.storage = _health_line(health)
            try:
                counts = self._counts(study)
                summary.study_complete = counts[TrialState.COMPLETE]
                summary.study_pruned = counts[TrialState.PRUNED]
            except Exception:  # the storage is gone; the summary says -1
                summary.study_complete = -1
            if self.budget is not None and summary.study_counted >= self.budget:
                self.spec.close()
        return summary

    def _tally(self, summary: WorkerSummary, frozen: optuna.trial.FrozenTrial, end: str) -> None:
        """Count a finished trial and show its line."""
        summary.ran += 1
        if end == "raced":
            summary.past_budget += 1
            return
        if end == "elsewhere":
            # another worker failed our trial as stale (we stalled or were cut off past the
            # grace period); it was queued again if retries are on: carry on
            summary.failed += 1
            self._emit(f"trial {frozen.number} was failed by another worker (missed heartbeats)")
            return
        if end == "complete":
            summary.complete += 1
            values = _values(frozen.values, self.spec.metric_names)
            self._emit(f"trial {frozen.number} COMPLETE {values}")
            return
        reason = str(frozen.user_attrs.get(FAIL_ATTR, "unknown error"))
        tag_failure(self.spec.tracker, self.study_name, frozen, run_params(self.spec))
        if end == "pruned":
            summary.pruned += 1  # counted toward the budget, as in `ncp-hpo study`
            self._emit(f"trial {frozen.number} PRUNED")
        elif end == "refused":
            summary.refused += 1
            self._emit(f"trial {frozen.number} PRUNED unevaluated: {reason}")
        elif end == "failed":
            summary.failed += 1
            self._emit(f"trial {frozen.number} FAIL: {reason}")
        else:
            self._emit(f"trial {frozen.number} {frozen.state.name}")

    def _open_study_or_stop(self) -> optuna.Study:
        """:meth:`open_study`, with a storage error turned into one :class:`WorkerError`."""
        try:
            return self.open_study()
        except WorkerError:
            raise
        except Exception as exc:
            reason = storage_stop_reason(exc)
            if reason is None:
                raise
            raise WorkerError(reason) from None

    def _on_start(self, trial: optuna.trial.Trial) -> None:
        trial.set_user_attr(WORKER_ATTR, self.worker_id)
        if self._faults:
            stall(self._faults, trial.number)

    def _beat_delay(self, started: int) -> float:
        """Fault injection (``nobeat``): seconds the first beat of trial id ``started`` waits."""
        if not any(f.action == "nobeat" for f in self._faults):
            return 0.0
        return first_beat_delay(self._faults, self.storage.get_trial_number_from_id(started))

    def _on_storage(self, event: str, detail: str) -> None:
        self._emit(f"storage {event}: {detail}")

    def _tag_stale(self, frozen: optuna.trial.FrozenTrial) -> None:
        tag_failure(self.spec.tracker, self.study_name, frozen, run_params(self.spec))

    def _emit(self, text: str) -> None:
        if self.log is not None:
            self.log(redact(f"[{self.worker_id}] {text}"))

    @staticmethod
    def _counts(study: optuna.Study) -> dict[Any, int]:
        """Trials by state, leaving out those pruned unevaluated at the budget's edge; PRUNED
        counts only the trials counted toward the budget (not codes refused for the
        compute budget), so COMPLETE + PRUNED is what ``ncp-hpo study`` counts."""
        from collections import Counter

        from optuna.trial import TrialState

        from ncp_hpo.trainers import is_over_budget

        counts: Counter[Any] = Counter()
        for t in study.get_trials(deepcopy=False):
            if not t.user_attrs.get(OVER_BUDGET_ATTR) and not is_over_budget(t):
                counts[t.state] += 1
        return {s: counts.get(s, 0) for s in TrialState}

    def _objective(self, trial: optuna.trial.Trial) -> Any:
        """The spec's objective, after any injected faults (the outcome, and its
        ``fail_reason``, is classified by :func:`~ncp_hpo.runtime._trial.run_trial`)."""
        if self._faults:
            self.spec.space.suggest(trial)  # faults fire after the code is chosen
            if inject(self._faults, trial.number):
                return float("nan")
        return self.spec.objective(trial)


def _health_line(health: Any) -> str:
    if health is None or not health.outages:
        return ""
    longest = max(health.longest_outage_s, health.down_for())  # the last may go on
    return (
        f"storage: {health.outages} outage(s), longest {longest:.1f} s, "
        f"{health.errors} failed call(s)"
    )


def _values(values: Sequence[float] | None, names: Sequence[str] = ()) -> str:
    """``"Acc 42.4  params 0.593"`` (the values alone where the names do not match)."""
    if not values:
        return ""
    if len(names) != len(values):
        return " ".join(f"{v:.6g}" for v in values)
    return "  ".join(f"{n} {v:.6g}" for n, v in zip(names, values, strict=True))
