"""Running one sampler x seed study to its budget (in this process or a spawned worker)."""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from ncp_hpo._numerics import deterministic_threads
from ncp_hpo.experiments.compare._ax_loop import run_ax
from ncp_hpo.experiments.compare._config import (
    PRIOR_SEED,
    PRIOR_SUFFIX,
    WARM_START_SUFFIX,
    base_sampler,
    compare_warm_start_codes,
)
from ncp_hpo.experiments.compare._studies import (
    StudyTask,
    TaskOutcome,
    complete_trials,
    fail_stale,
    mask_sigint,
    on_sigint,
    open_study,
    quiet,
    stop_requested,
    task_objective,
    watch_stop,
)
from ncp_hpo.experiments.compare._trials import run_compare_trials
from ncp_hpo.samplers import make_sampler
from ncp_hpo.search import AX_SAMPLERS

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.tracking import LiveStudyRun


# set by init_worker in a spawned worker: where run_task reports finished trials
_WORKER_QUEUE: Any = None


def init_worker(queue: Any = None, parent_pid: int | None = None, stop: Any = None) -> None:
    """Worker set-up: one torch thread, quiet libraries, the progress queue, Ctrl-C (and
    the parent's ``stop`` event) ending the studies after their running trials, and a
    watchdog that ends the worker when the parent process is gone (killed runs leave no
    orphans)."""
    import signal
    import threading

    import torch

    global _WORKER_QUEUE
    _WORKER_QUEUE = queue
    watch_stop(stop)
    # the parent spawned this process with SIGINT blocked: a Ctrl-C that came meanwhile is
    # pending and arrives here, once the handler that stops cleanly is in place
    signal.signal(signal.SIGINT, on_sigint)
    mask_sigint(False)
    torch.set_num_threads(1)
    quiet()
    if parent_pid is not None:

        def _watch() -> None:
            while True:
                time.sleep(1.0)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=_watch, daemon=True).start()


def run_task(task: StudyTask, queue: Any = None) -> TaskOutcome:
    """Run (or continue) one sampler x seed study to ``task.trials`` COMPLETE trials."""
    t0 = time.perf_counter()
    ran = 0
    if queue is None:
        queue = _WORKER_QUEUE
    if stop_requested():  # Ctrl-C before this study started: it does not start
        return TaskOutcome(task.name, 0, 0.0, interrupted=True)
    live = None
    try:
        with deterministic_threads():
            obj = task_objective(task)
            live = _live_run(task, obj)
            ran = _run_study(task, obj, queue, live)
    except Exception as exc:  # reported by the parent; other studies go on
        if live is not None:
            live.close("FAILED")
        return TaskOutcome(task.name, ran, time.perf_counter() - t0, _error_text(exc))
    except BaseException:
        if live is not None:
            live.close("KILLED")
        raise
    stopped = stop_requested()
    if live is not None:
        live.close("KILLED" if stopped else "FINISHED")
    return TaskOutcome(task.name, ran, time.perf_counter() - t0, interrupted=stopped)


def _error_text(exc: Exception) -> str:
    """``Type: message`` on one line; a database error by its driver's own words (SQLite's
    "attempt to write a readonly database", not SQLAlchemy's statement dump)."""
    from ncp_hpo._secrets import error_line

    orig = getattr(exc, "orig", None)
    return error_line(orig if isinstance(orig, Exception) else exc)


def _live_run(task: StudyTask, obj: BenchmarkObjective) -> LiveStudyRun | None:
    """The study's live MLflow child run (None without tracking, or with one warning)."""
    if task.live is None:
        return None
    from ncp_hpo.tracking import CompareTrackingWarning, LiveStudyRun

    try:
        return LiveStudyRun(
            task.live,
            study_name=task.name,
            params=json.loads(task.live_params_json),
            maximize=obj.directions[0] == "maximize",
        )
    except Exception as exc:  # tracking never costs the study
        warnings.warn(
            f"MLflow live logging unavailable for {task.name} ({type(exc).__name__}: {exc}); "
            "it is logged when the comparison ends",
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _resume_state(sampler: Any, study: Any) -> None:
    """Bring a fresh sampler to the state it would have after the study's stored trials
    (a resumed study then continues exactly as an uninterrupted one)."""
    from ncp_hpo.exceptions import NCPWarning
    from ncp_hpo.samplers._replay import replay_sampler

    message = replay_sampler(sampler, study).message(study.study_name)
    if message:
        warnings.warn(message, NCPWarning, stacklevel=2)


_PRIORS: dict[tuple[str, str | None], Any] = {}


def compare_prior(setting: str | None, data_dir: str | None) -> Any:
    """``setting``'s predictor (:data:`PRIOR_SEED`), fitted once and then read from the user
    cache (:func:`ncp_hpo.benchmarks.predictors.setting_predictor`); one per process."""
    if setting is None:
        raise ValueError("a +prior study needs its prior's setting")
    key = (setting, data_dir)
    if key not in _PRIORS:
        from ncp_hpo.benchmarks import load_benchmark
        from ncp_hpo.benchmarks.predictors import setting_predictor

        _PRIORS[key], _ = setting_predictor(load_benchmark(setting, data_dir), seed=PRIOR_SEED)
    return _PRIORS[key]


def _run_study(
    task: StudyTask, obj: BenchmarkObjective, queue: Any, live: LiveStudyRun | None
) -> int:
    """The study loop of :func:`run_task` (one thread: see :mod:`ncp_hpo._numerics`): the
    trials run under the one runner's rules (:mod:`ncp_hpo.runtime._runner`)."""
    if task.sampler in AX_SAMPLERS:
        with warnings.catch_warnings():  # Ax/pandas deprecations, BoTorch jitter: per trial
            warnings.filterwarnings("ignore", module=r"(ax|botorch|gpytorch|linear_operator)(\.|$)")
            return run_ax(task, obj, queue, live)
    from ncp_hpo.runtime import open_sqlite_storage

    params = {}
    if task.sampler.endswith(PRIOR_SUFFIX):
        params["prior"] = compare_prior(task.prior, task.data_dir)
    sampler = make_sampler(
        base_sampler(task.sampler), space=obj.space, seed=task.seed, params=params
    )
    storage = open_sqlite_storage(task.path)
    study = open_study(task, sampler, storage)
    fail_stale(study)
    if task.sampler.endswith(WARM_START_SUFFIX) and not study.trials:
        codes = compare_warm_start_codes(
            obj.space, base_sampler(task.sampler), task.seed, n_objectives=obj.n_objectives
        )
        for code in codes:
            study.enqueue_trial(obj.space.to_params(code))
    _resume_state(sampler, study)
    if live is not None:
        live.replay(complete_trials(study))
    return run_compare_trials(study, obj, storage=storage, task=task, queue=queue, live=live)
