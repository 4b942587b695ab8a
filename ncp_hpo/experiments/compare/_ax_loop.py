"""The Ax loop of ``compare``: an Ax ``Client`` proposes, the study evaluates."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ncp_hpo.experiments.compare._config import GEN_ATTR
from ncp_hpo.experiments.compare._studies import (
    StudyTask,
    fail_stale,
    open_study,
    quiet_ax,
    stop_requested,
)

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.tracking import LiveStudyRun


def run_ax(
    task: StudyTask, obj: BenchmarkObjective, queue: Any, live: LiveStudyRun | None = None
) -> int:
    """The Ax loop: Client + ``ncp_generation_strategy``; each candidate is one Optuna trial
    of the study (enqueued parameters), so it is evaluated and stored like the others."""
    quiet_ax()
    import optuna
    from ax.api.client import Client
    from optuna.trial import TrialState

    from ncp_hpo.samplers import ncp_generation_strategy

    study = open_study(task, optuna.samplers.RandomSampler(seed=task.seed))
    fail_stale(study)
    space = obj.space
    names = ["metric", "flops"] if obj.n_objectives == 2 else ["metric"]
    client = Client(random_seed=task.seed)
    client.configure_experiment(name=task.name, parameters=space.ax_parameters())
    client.configure_optimization(objective="metric, -flops" if obj.n_objectives == 2 else "metric")
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    callbacks: list[Any] = [] if live is None else [live]
    if live is not None:
        live.replay(done)
    for t in done:  # resume: replay the finished trials into the experiment
        idx = client.attach_trial(parameters=dict(t.params))
        client.complete_trial(idx, raw_data=dict(zip(names, t.values, strict=True)))
    n_init = max(0, 10 - len(done))
    client.set_generation_strategy(ncp_generation_strategy(space, n_init=n_init, seed=task.seed))
    ran = 0
    misses = 0
    last_error = "no trial generated"
    while len(done) + ran < task.trials and not stop_requested():
        if misses >= 3 * task.trials:
            raise RuntimeError(f"Ax stopped after {len(done) + ran} trials: {last_error}")
        t0 = time.perf_counter()
        try:
            batch = client.get_next_trials(max_trials=1)
        except Exception as exc:  # e.g. DataRequiredError right after the Sobol phase
            batch, last_error = {}, f"{type(exc).__name__}: {exc}"
        gen_s = time.perf_counter() - t0
        if not batch:
            misses += 1
            continue
        for idx, params in batch.items():
            study.enqueue_trial(dict(params), user_attrs={GEN_ATTR: gen_s})
            study.optimize(obj, n_trials=1, catch=(Exception,), callbacks=callbacks)
            trial = study.get_trials(deepcopy=False)[-1]
            if trial.state == TrialState.COMPLETE and trial.values is not None:
                client.complete_trial(idx, raw_data=dict(zip(names, trial.values, strict=True)))
                ran += 1
                if queue is not None:
                    queue.put(1)
            else:
                client.mark_trial_failed(idx)
                misses += 1
                last_error = f"trial {trial.number} {trial.state.name}"
    return ran
