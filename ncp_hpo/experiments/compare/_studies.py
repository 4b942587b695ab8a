"""One sampler x seed study: the objective (cached per process), opening,
resuming (stale RUNNING trials), and reading it back as a :class:`RunRecord`."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.experiments.compare._config import GEN_ATTR, SETTINGS_ATTR
from ncp_hpo.experiments.compare._records import RunRecord
from ncp_hpo.runtime import open_sqlite_storage

if TYPE_CHECKING:
    import optuna

    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.tracking import LiveTarget


@dataclass(frozen=True)
class StudyTask:
    """One sampler x seed study to run to ``trials`` COMPLETE trials (picklable: it is
    sent to spawned workers; settings and MLflow params travel as JSON)."""

    benchmark: str
    sampler: str
    seed: int
    trials: int
    path: str
    name: str
    mode: str
    objective: str
    flops_weight: float | None
    data_dir: str | None
    settings_json: str
    live: LiveTarget | None = None  # MLflow parent of the live child run, if tracking
    live_params_json: str = "{}"
    max_flops: float | None = None  # the absolute FLOPs budget (every worker the same)
    prior: str | None = None  # the setting whose predictor +prior samplers start from


@dataclass(frozen=True)
class TaskOutcome:
    """What running a :class:`StudyTask` did (``error``: the exception, one line;
    ``interrupted``: stopped by Ctrl-C before its budget)."""

    name: str
    ran: int  # trials run in this call
    seconds: float
    error: str | None = None
    interrupted: bool = False


# -- stopping on Ctrl-C: no trial starts once asked, the running ones end normally --------
_STOP_FLAG = False  # set by a SIGINT handler (a plain bool: safe inside a signal handler)
_STOP_EVENT: Any = None  # a multiprocessing Event the parent sets for its workers


def request_stop() -> None:
    """Ask the studies of this process to stop after their running trials."""
    global _STOP_FLAG
    _STOP_FLAG = True


def watch_stop(event: Any) -> None:
    """Reset the stop request; ``event`` (or None): the parent's stop event to watch too."""
    global _STOP_FLAG, _STOP_EVENT
    _STOP_FLAG, _STOP_EVENT = False, event


def on_sigint(signum: int, frame: Any) -> None:
    """SIGINT handler: the first Ctrl-C asks to stop after the running trials, a second
    one stops at once (``KeyboardInterrupt``)."""
    global _STOP_FLAG
    if _STOP_FLAG:
        raise KeyboardInterrupt
    _STOP_FLAG = True


def mask_sigint(block: bool) -> None:
    """Block (hold pending) or unblock SIGINT in this thread; threads and processes started
    meanwhile inherit the mask (a no-op where the platform has no signal masks)."""
    import signal

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, {signal.SIGINT})


def stop_requested() -> bool:
    """Whether Ctrl-C asked the studies to stop (checked after every trial)."""
    return _STOP_FLAG or (_STOP_EVENT is not None and _STOP_EVENT.is_set())


# per process: one objective per settings (a surrogate oracle loads once per worker)
_OBJECTIVES: dict[tuple[Any, ...], BenchmarkObjective] = {}


def objective_for(
    benchmark: str,
    mode: str | None,
    objective: str,
    flops_weight: float | None,
    data_dir: str | None,
    max_flops: float | str | None = None,
) -> BenchmarkObjective:
    """The (cached) objective of a comparison (``max_flops``: its FLOPs budget, a number or
    ``"pNN"``)."""
    key = (benchmark, mode, objective, flops_weight, data_dir, max_flops)
    if key not in _OBJECTIVES:
        from ncp_hpo.benchmarks import BenchmarkObjective

        _OBJECTIVES[key] = BenchmarkObjective(
            benchmark,
            mode=mode,  # type: ignore[arg-type]
            objective=objective,  # type: ignore[arg-type]
            flops_weight=flops_weight,
            data_dir=data_dir,
            max_flops=max_flops,
        )
    return _OBJECTIVES[key]


def task_objective(task: StudyTask) -> BenchmarkObjective:
    """The objective ``task`` evaluates (:func:`objective_for` with its settings)."""
    return objective_for(
        task.benchmark,
        task.mode,
        task.objective,
        task.flops_weight,
        task.data_dir,
        max_flops=task.max_flops,
    )


def quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "ax" in sys.modules:
        quiet_ax()


def quiet_ax() -> None:
    """Import Ax without its INFO lines, then keep its stderr handler at WARNING."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # Ax logs at INFO while it is imported
    try:
        from ax.utils.common.logger import set_stderr_log_level

        set_stderr_log_level(logging.WARNING)
    except Exception:  # pragma: no cover - logging only
        pass
    finally:
        logging.disable(previous)


def open_study(task: StudyTask, sampler: Any, storage: Any = None) -> optuna.Study:
    """The study of ``task`` in its SQLite file (or in ``storage``, that file's storage)."""
    import optuna

    storage = open_sqlite_storage(task.path) if storage is None else storage
    obj = task_objective(task)
    study = optuna.create_study(
        study_name=task.name,
        storage=storage,
        sampler=sampler,
        directions=obj.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, json.loads(task.settings_json))
    if study.metric_names is None:  # optuna-dashboard's axes and columns name them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(obj.objective_names))
    return study


def fail_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials (left by a killed run) as FAIL; return how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        with contextlib.suppress(Exception):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    return len(stale)


def n_complete(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def complete_trials(study: optuna.Study) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def read_run(path: Path, name: str, sampler: str, seed: int, trials: int) -> RunRecord | None:
    """The :class:`RunRecord` of study ``name`` in ``path`` (None if absent)."""
    import optuna
    from optuna.trial import TrialState

    if not path.is_file():
        return None
    storage = open_sqlite_storage(path)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    trials_all = study.get_trials(deepcopy=False)
    done = sorted(
        (t for t in trials_all if t.state == TrialState.COMPLETE), key=lambda t: t.number
    )[:trials]
    n_failed = sum(t.state == TrialState.FAIL for t in trials_all)
    n_refused, refused_s = _refusals(study, trials_all)
    values = np.array([list(t.values) for t in done], dtype=np.float64).reshape(len(done), -1)
    walls, stamps = [], []
    for t in done:
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else float("nan")
        )
        walls.append(dur + float(t.user_attrs.get(GEN_ATTR, 0.0)))
        stamps.append(int(t.datetime_complete.timestamp() * 1000) if t.datetime_complete else 0)
    storage.engine.dispose()
    return RunRecord(
        sampler=sampler,
        seed=seed,
        study_name=name,
        values=values,
        wall_s=np.asarray(walls, dtype=np.float64),
        codes=[str(t.user_attrs.get("code", "")) for t in done],
        sources=[str(t.user_attrs.get("source", "")) for t in done],
        metrics=[dict(t.user_attrs.get("metrics", {})) for t in done],
        n_failed=n_failed,
        n_refused=n_refused,
        refused_s=refused_s,
        timestamps_ms=stamps,
    )


def _refusals(study: optuna.Study, trials: list[Any]) -> tuple[int | None, float]:
    """(trials refused for the FLOPs budget, their seconds); ``(None, 0)`` when the study
    has no budget."""
    from ncp_hpo.spaces.budget import OVER_BUDGET

    if "max_flops" not in (study.user_attrs.get(SETTINGS_ATTR) or {}):
        return None, 0.0
    refused = [t for t in trials if t.user_attrs.get("fail_reason") == OVER_BUDGET]
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in refused
        if t.datetime_complete and t.datetime_start
    )
    return len(refused), float(seconds)


def study_status(path: Path, name: str) -> tuple[int, int, dict[str, Any] | None]:
    """(COMPLETE trials, RUNNING trials, stored settings) of a study; zeros if absent."""
    import optuna
    from optuna.trial import TrialState

    if not path.is_file():
        return 0, 0, None
    storage = open_sqlite_storage(path)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0, 0, None
    ts = study.get_trials(deepcopy=False)
    settings = study.user_attrs.get(SETTINGS_ATTR)
    storage.engine.dispose()
    return (
        sum(t.state == TrialState.COMPLETE for t in ts),
        sum(t.state == TrialState.RUNNING for t in ts),
        settings,
    )


def study_path(out: Path, name: str) -> Path:
    """``<out>/studies/<name>.db``: the SQLite file of study ``name`` (one file per sampler x
    seed study, so parallel workers never contend for one database lock)."""
    return out / "studies" / f"{name}.db"
