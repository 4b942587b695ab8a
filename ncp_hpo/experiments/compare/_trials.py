"""The trials of one ``compare`` study, run by the one runner (:mod:`ncp_hpo.runtime._runner`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ncp_hpo.experiments.compare._studies import StudyTask, stop_requested
from ncp_hpo.runtime._runner import RunHooks

if TYPE_CHECKING:
    from ncp_hpo.tracking import LiveStudyRun

__all__ = ["run_compare_trials"]


def run_compare_trials(
    study: Any,
    obj: Any,
    *,
    storage: Any,
    task: StudyTask,
    queue: Any,
    live: LiveStudyRun | None,
    hooks: RunHooks | None = None,
) -> int:
    """Run ``study`` to ``task.trials`` counted trials; the COMPLETE trials run here.

    Each finished trial goes to the live MLflow run and, COMPLETE, to the parent's progress
    ``queue``; Ctrl-C (:func:`stop_requested`) starts no further trial. ``hooks`` adds the
    caller's own (their ``on_finish`` runs first). Raises ``RuntimeError`` with the runner's
    one-line reason when it stopped early (failures or errors in a row).
    """
    from optuna.trial import TrialState

    from ncp_hpo.runtime._runner import RunPolicy, run_trials

    extra = hooks or RunHooks()

    def finish(study_: Any, frozen: Any, end: Any) -> None:
        if extra.on_finish is not None:
            extra.on_finish(study_, frozen, end)
        if live is not None:
            live(study_, frozen)
        if frozen.state == TrialState.COMPLETE and queue is not None:
            queue.put(1)

    run = run_trials(
        study,
        obj,
        storage=storage,
        policy=RunPolicy(budget=task.trials, poll=0.5),
        hooks=RunHooks(
            before_trial=extra.before_trial, on_finish=finish, should_stop=stop_requested
        ),
    )
    if run.stop_reason is not None:
        raise RuntimeError(run.stop_reason)
    return run.count("complete")
