"""The Ax loop of ``compare``: an Ax ``Client`` proposes, the study evaluates."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ncp_hpo.experiments.compare._config import GEN_ATTR
from ncp_hpo.experiments.compare._studies import StudyTask, fail_stale, open_study, quiet_ax
from ncp_hpo.experiments.compare._trials import run_compare_trials
from ncp_hpo.runtime._runner import RunHooks

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.tracking import LiveStudyRun


def run_ax(
    task: StudyTask, obj: BenchmarkObjective, queue: Any, live: LiveStudyRun | None = None
) -> int:
    """The Ax loop: a Client with ``ncp_generation_strategy`` (``ax``) or with the strategy
    Ax picks itself (``ax-default``: none set); each candidate is one Optuna trial of the
    study (enqueued parameters), so it is evaluated, counted and stored like the others, by
    the same runner. A candidate Ax proposes again is evaluated again (the study counts
    it), as an Ax user's loop would."""
    quiet_ax()
    import optuna
    from ax.api.client import Client
    from optuna.trial import TrialState

    from ncp_hpo.runtime import open_sqlite_storage
    from ncp_hpo.samplers import ncp_generation_strategy

    storage = open_sqlite_storage(task.path)
    study = open_study(task, optuna.samplers.RandomSampler(seed=task.seed), storage)
    fail_stale(study)
    space = obj.space
    names = ["metric"] if obj.cost is None else ["metric", obj.cost]
    client = Client(random_seed=task.seed)
    client.configure_experiment(name=task.name, parameters=space.ax_parameters())
    client.configure_optimization(objective=", -".join(names))  # "metric" or "metric, -flops"
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if live is not None:
        live.replay(done)
    for t in done:  # resume: replay the finished trials into the experiment
        idx = client.attach_trial(parameters=dict(t.params))
        client.complete_trial(idx, raw_data=dict(zip(names, t.values, strict=True)))
    if task.sampler == "ax":
        n_init = max(0, 10 - len(done))
        strategy = ncp_generation_strategy(space, n_init=n_init, seed=task.seed)
        client.set_generation_strategy(strategy)
    ax = _AxTrials(client, names, max_misses=3 * task.trials)
    hooks = RunHooks(before_trial=ax.propose, on_finish=ax.finish)
    return run_compare_trials(
        study, obj, storage=storage, task=task, queue=queue, live=live, hooks=hooks
    )


class _AxTrials:
    """Ax's side of the runner's trials: its next candidate enqueued before each trial,
    the trial's values (or its failure) told back after it."""

    def __init__(self, client: Any, names: list[str], *, max_misses: int) -> None:
        self.client, self.names, self.max_misses = client, names, max_misses
        self.pending: int | None = None
        self.misses = 0
        self.last_error = "no trial generated"

    def propose(self, study: Any) -> None:
        """Enqueue Ax's next candidate (with its generation time) as the next trial."""
        while self.pending is None:
            if self.misses >= self.max_misses:
                raise RuntimeError(f"Ax generated no usable trial: {self.last_error}")
            t0 = time.perf_counter()
            try:
                batch = self.client.get_next_trials(max_trials=1)
            except Exception as exc:  # e.g. DataRequiredError right after the Sobol phase
                batch, self.last_error = {}, f"{type(exc).__name__}: {exc}"
            if not batch:
                self.misses += 1
                continue
            (idx, params), *_ = batch.items()
            study.enqueue_trial(dict(params), user_attrs={GEN_ATTR: time.perf_counter() - t0})
            self.pending = idx

    def finish(self, study: Any, frozen: Any, end: str) -> None:
        """Tell Ax the trial's values, or that it failed."""
        from optuna.trial import TrialState

        idx, self.pending = self.pending, None
        if idx is None:
            return
        if frozen.state == TrialState.COMPLETE and frozen.values is not None:
            self.client.complete_trial(
                idx, raw_data=dict(zip(self.names, frozen.values, strict=True))
            )
        else:
            self.client.mark_trial_failed(idx)
            self.misses += 1
            self.last_error = f"trial {frozen.number} {frozen.state.name}"
