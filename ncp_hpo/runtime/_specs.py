"""What a worker or a study evaluates: an objective, the study shape it needs, and the
record that keeps a shared study to one objective.

:func:`benchmark_objective` (a benchmark table) and :func:`task_objective` (real training,
:mod:`ncp_hpo.trainers`) build an :class:`ObjectiveSpec`. :func:`ensure_study_objective`
records the spec's description as the study user attribute ``ncp_hpo.objective`` when the
study is new, and refuses a study created for another objective (``ncp-hpo worker`` and
``ncp-hpo study`` both call it, so either can join a study the other started).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import NCPError, WorkerError
from ncp_hpo.runtime._attrs import OBJECTIVE_ATTR

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ObjectiveSpec",
    "benchmark_objective",
    "describe",
    "ensure_study_objective",
    "run_params",
    "task_objective",
]

_IGNORED_CHANGES = ("kind", "task", "objective", "progress", "device")


@dataclass(kw_only=True)
class ObjectiveSpec:
    """What a worker evaluates: a callable objective plus how the study must look."""

    objective: Callable[[optuna.trial.Trial], Any]
    directions: list[str]
    metric_names: list[str]
    space: Any
    description: dict[str, Any]
    close: Callable[[], None] = field(default=lambda: None)
    tracker: Any = None  # the MLflow tracker trials are logged to (fail reasons too)


def benchmark_objective(
    setting: str,
    *,
    mode: str | None = None,
    objective: str = "metric",
    flops_weight: float | None = None,
    data_dir: str | None = None,
    tracker: Any = None,
    lam: float | None = None,
) -> ObjectiveSpec:
    """An :class:`ObjectiveSpec` over a benchmark table (optionally logged to MLflow).

    ``flops_weight`` scalarises ``objective="metric+flops"`` into one value (see
    :class:`~ncp_hpo.benchmarks.BenchmarkObjective`); ``lam`` is its deprecated old name.
    """
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.benchmarks._objectives import renamed_lam

    flops_weight = renamed_lam(flops_weight, lam, "benchmark_objective")

    try:
        obj = BenchmarkObjective(
            setting,
            mode=mode,  # type: ignore[arg-type]
            objective=objective,  # type: ignore[arg-type]
            flops_weight=flops_weight,
            data_dir=data_dir,
        )
    except NCPError:
        raise
    except ValueError as exc:
        raise WorkerError(f"benchmark {setting!r}: {exc}") from None
    description = {
        "kind": "benchmark",
        "setting": obj.setting,
        "mode": obj.mode,
        "objective": objective,
        "flops_weight": obj.flops_weight,
    }
    fn: Callable[[optuna.trial.Trial], Any] = obj
    if tracker is not None:
        fn = _tracked(obj, tracker, description)
    return ObjectiveSpec(
        objective=fn,
        directions=list(obj.directions),
        metric_names=list(obj.objective_names),
        space=obj.space,
        description=description,
        tracker=tracker,
    )


def _tracked(
    obj: Callable[[optuna.trial.Trial], Any], tracker: Any, description: Mapping[str, Any]
) -> Callable[[optuna.trial.Trial], Any]:
    """Log each evaluated benchmark trial as an MLflow run (never costs the trial)."""

    def fn(trial: optuna.trial.Trial) -> Any:
        values = obj(trial)
        attrs = trial.user_attrs
        params = {k: v for k, v in description.items() if v is not None}
        with tracker.trial_run(
            code=attrs.get("code"), task=str(description["setting"]), trial=trial, params=params
        ) as run:
            metrics = dict(attrs.get("metrics") or {})
            vals = values if isinstance(values, tuple) else (values,)
            metrics.update({f"objective_{i}": float(v) for i, v in enumerate(vals)})
            run.log_metrics(metrics)
        return values

    return fn


def task_objective(
    task: str,
    *,
    objective: str = "metric",
    tracker: Any = None,
    train_options: Mapping[str, Any] | None = None,
    max_flops: float | None = None,
    max_params: float | None = None,
    search_recipe: bool = False,
) -> ObjectiveSpec:
    """An :class:`ObjectiveSpec` that trains each code for real (:mod:`ncp_hpo.trainers`).

    ``search_recipe`` also searches the recipe's learning rate and weight decay (see
    :class:`~ncp_hpo.trainers.TrainingObjective`); the study records it, so a study of the
    architecture alone and one with the recipe are never mixed.

    ``max_flops``/``max_params`` set a compute budget: the spec's space is restricted to it
    (predictor-based samplers never propose a code over it) and the objective refuses such
    a code without training it (see :class:`~ncp_hpo.trainers.TrainingObjective`).
    """
    from ncp_hpo.trainers import TASKS as STRATEGIES
    from ncp_hpo.trainers import TrainingObjective

    # metric+flops trains against the exact MACs, metric+params against the parameter count
    costs = {"metric": None, "metric+flops": "macs", "metric+params": "params"}
    if objective not in costs:
        raise WorkerError(f"objective must be one of {', '.join(costs)}, got {objective!r}")
    cost = costs[objective]
    objectives = ("metric",) if cost is None else ("metric", cost)
    opts = {k: v for k, v in (train_options or {}).items() if v is not None}
    try:
        obj = TrainingObjective(
            task,
            objectives=objectives,
            tracker=tracker,
            max_flops=max_flops,
            max_params=max_params,
            search_recipe=search_recipe,
            **opts,
        )
    except ValueError as exc:
        raise WorkerError(f"task {task!r}: {exc}") from None
    two = len(objectives) == 2
    caps = {"max_flops": max_flops, "max_params": max_params}
    main = STRATEGIES[task].main_metric
    return ObjectiveSpec(
        objective=obj,
        directions=["maximize", "minimize"] if two else ["maximize"],
        metric_names=[main, str(cost)] if two else [main],
        space=obj.space,
        description={
            "kind": "task",
            "task": task,
            "objective": objective,
            **opts,
            **{k: v for k, v in caps.items() if v is not None},
            **({"search_recipe": True} if search_recipe else {}),
        },
        tracker=tracker,
    )


def run_params(spec: ObjectiveSpec) -> dict[str, Any]:
    """The spec's description without unset entries (MLflow run parameters)."""
    return {k: v for k, v in spec.description.items() if v is not None}


def _upgraded(d: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded description with the key ``lam`` of studies created before 0.2.0 (the
    benchmark objective's FLOPs weight) read as ``flops_weight``."""
    if "lam" in d and "flops_weight" not in d:
        return {("flops_weight" if k == "lam" else k): v for k, v in d.items()}
    return dict(d)


def _describe_key(d: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = ("kind", "setting", "task", "mode", "objective", "flops_weight")
    d = _upgraded(d)
    return tuple(d.get(k) for k in keys)


def describe(d: Mapping[str, Any]) -> str:
    """One phrase for an objective description, e.g. ``benchmark 'seg' (surrogate, metric)``."""
    if d.get("kind") == "task":
        return f"task {d.get('task')!r} ({d.get('objective')})"
    d = _upgraded(d)
    w = d.get("flops_weight")
    weight = f", flops_weight={w}" if w is not None else ""
    return f"benchmark {d.get('setting')!r} ({d.get('mode')}, {d.get('objective')}{weight})"


def ensure_study_objective(
    study: optuna.Study,
    spec: ObjectiveSpec,
    *,
    hint: str,
    error: Callable[[str], Exception] = WorkerError,
) -> None:
    """Record what ``study`` optimises, or check that a study joined or resumed optimises
    the same (directions, and benchmark or task with its objective).

    Args:
        study: the study, created with ``spec.directions`` if it was missing.
        spec: the objective this process evaluates.
        hint: the option that picks another study, for the error (e.g. ``--study-name``).
        error: the exception raised for a study made for something else.

    Warns (``UserWarning``) when a resumed task study goes on with other training
    settings (epochs, batch size, ...) than it started with.
    """
    import optuna

    have = [d.name.lower() for d in study.directions]
    if have != list(spec.directions):
        raise error(
            f"study {study.study_name!r} exists with directions {have}, but this objective "
            f"needs {list(spec.directions)}; use another {hint}"
        )
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    if recorded is not None:
        recorded = _upgraded(recorded)
    if recorded is None:
        study.set_user_attr(OBJECTIVE_ATTR, dict(spec.description))
        if study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(spec.metric_names))
        return
    if _describe_key(recorded) != _describe_key(spec.description):
        raise error(
            f"study {study.study_name!r} was created for {describe(recorded)}, not "
            f"{describe(spec.description)}; use another {hint}"
        )
    changed = [
        f"{k} {recorded.get(k)!r} -> {spec.description.get(k)!r}"
        for k in sorted(set(recorded) | set(spec.description))
        if k not in _IGNORED_CHANGES and recorded.get(k) != spec.description.get(k)
    ]
    if changed:
        warnings.warn(
            f"study {study.study_name!r} continues with other training settings than it "
            f"started with ({', '.join(changed)}); its trials are not comparable",
            UserWarning,
            stacklevel=2,
        )
