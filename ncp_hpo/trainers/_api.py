"""User-facing entry points: train a model, train a code end to end, an Optuna objective."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from ncp_hpo.trainers._loop import fit
from ncp_hpo.trainers._task import AmpMode, EpochCallback, Recipe, Task, TrainResult
from ncp_hpo.trainers.classification import ClassificationTask
from ncp_hpo.trainers.datasets import DEFAULT_DATASET, DatasetInfo, dataset_info, make_loaders
from ncp_hpo.trainers.detection import DetectionTask
from ncp_hpo.trainers.segmentation import SegmentationTask
from ncp_hpo.trainers.video import VideoTask

if TYPE_CHECKING:
    import optuna

    from ncp_hpo.spaces import CodeSpace
    from ncp_hpo.tracking import MLflowTracker

__all__ = [
    "TASKS",
    "TrainingObjective",
    "build_model",
    "make_task",
    "train",
    "train_classification",
    "train_code",
    "train_detection",
    "train_segmentation",
    "train_video",
]

TASKS: dict[str, type[Task]] = {
    "cls": ClassificationTask,
    "seg": SegmentationTask,
    "video": VideoTask,
    "bev-det": DetectionTask,
}
"""Task key -> its :class:`~ncp_hpo.trainers.Task` strategy."""


def make_task(task: str | Task, num_classes: int | None = None, **options: Any) -> Task:
    """The strategy of ``task`` (a key of :data:`TASKS`); a :class:`Task` passes through."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    if num_classes is None:
        raise ValueError(f"task {task!r} needs num_classes (not found on the dataset)")
    return TASKS[task](num_classes, **options)


def build_model(
    code: Any, *, task: str, num_classes: int, in_chans: int = 3, seed: int = 0, **options: Any
) -> nn.Module:
    """``ncp_hpo.models.create_model`` with seeded weights and the global RNG left untouched.

    The weights are drawn inside ``torch.random.fork_rng`` after seeding it with ``seed``,
    so the same code and seed give the same initial model.
    """
    from ncp_hpo.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        return create_model(code, task=task, num_classes=num_classes, in_chans=in_chans, **options)


def _task_options(task: str, info: DatasetInfo | None) -> dict[str, Any]:
    """Task options a dataset implies: flips only where mirroring keeps labels; the
    dataset's suggested segmentation class weights."""
    if info is None:
        return {}
    opts: dict[str, Any] = {}
    if task != "video":  # video flips are off unless asked for (they reverse motions)
        opts["flip"] = info.flip_invariant
    if task == "seg" and info.class_weights is not None:
        opts["class_weights"] = info.class_weights
    return opts


def train(
    model: nn.Module,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    *,
    task: str | Task = "cls",
    num_classes: int | None = None,
    epochs: int = 1,
    **fit_kwargs: Any,
) -> TrainResult:
    """Train any model on any loaders with a task's recipe, loss and metrics.

    ``num_classes`` and whether flips are allowed come from the loader's dataset when it
    carries them (the embedded datasets and :class:`~ncp_hpo.trainers.DatasetAdapter` do).
    Other keyword arguments go to :func:`~ncp_hpo.trainers.fit` (``lr``, ``device``,
    ``amp``, ``seed``, ``trial``, ``callback``, ``progress``, ``code``, ...).
    """
    info = dataset_info(train_loader)
    if not isinstance(task, Task):
        n = num_classes if num_classes is not None else (info.num_classes if info else None)
        task = make_task(task, n, **_task_options(task, info))
    return fit(model, task, train_loader, val_loader, epochs=epochs, **fit_kwargs)


def train_classification(
    model: nn.Module, train_loader: Any, val_loader: Any, **kw: Any
) -> TrainResult:
    """:func:`train` with ``task="cls"``: logits ``B x K``; metrics ``top1``/``top5``."""
    return train(model, train_loader, val_loader, task="cls", **kw)


def train_segmentation(
    model: nn.Module, train_loader: Any, val_loader: Any, **kw: Any
) -> TrainResult:
    """:func:`train` with ``task="seg"``: logits ``B x K x H x W``; mIoU, mAcc, aAcc."""
    return train(model, train_loader, val_loader, task="seg", **kw)


def train_video(model: nn.Module, train_loader: Any, val_loader: Any, **kw: Any) -> TrainResult:
    """:func:`train` with ``task="video"``: clips ``B x C x T x H x W`` -> logits ``B x K``."""
    return train(model, train_loader, val_loader, task="video", **kw)


def train_detection(model: nn.Module, train_loader: Any, val_loader: Any, **kw: Any) -> TrainResult:
    """:func:`train` with ``task="bev-det"``: ``(heatmap, boxes)`` maps; ``AP50``."""
    return train(model, train_loader, val_loader, task="bev-det", **kw)


def train_code(
    code: Any,
    *,
    task: str = "cls",
    dataset: str | Path | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    image_size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    recipe: Recipe | None = None,
    optimizer: str | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    amp: AmpMode | None = "auto",
    num_workers: int = 0,
    trial: optuna.trial.BaseTrial | None = None,
    tracker: MLflowTracker | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
    model_options: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    max_steps_per_epoch: int | None = None,
) -> TrainResult:
    """Build the network of ``code`` for ``task``, train it on a dataset, log it, return it.

    Args:
        code: a :class:`~ncp_hpo.spaces.NetworkCode`, code string or 27 integers.
        task: ``"cls"``, ``"seg"``, ``"video"`` or ``"bev-det"``.
        dataset: an embedded dataset name or an image folder (default: the task's embedded
            dataset, see :data:`~ncp_hpo.trainers.datasets.DEFAULT_DATASET`).
        epochs, batch_size, image_size, train_size, val_size, lr, weight_decay: the recipe
            scaled down (``None`` keeps the dataset's / recipe's default).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"`` instead of the recipe's (its
            schedule and weight decay stay; give ``lr`` too, Adam wants ~100x less than SGD).
        seed: fixes the data split and order, the initial weights and the augmentation.
        trial: an Optuna trial: per-epoch reports and pruning; at the end its user
            attributes get the final metrics, ``macs``, ``params``, ``wall_time_s``, ... so
            the results live in the Optuna storage even without MLflow.
        tracker: log the trial to MLflow (see :class:`~ncp_hpo.tracking.MLflowTracker`).
        model_options: more ``create_model`` options (e.g. ``box_channels``).
        dataset_options: more dataset options (e.g. ``frames``, ``directions``).

    Raises:
        optuna.TrialPruned: when ``trial``'s pruner stops it (the MLflow run is closed as
            KILLED first).
    """
    loaders, info, model, strategy = _setup(
        code,
        task=task,
        dataset=dataset,
        batch_size=batch_size,
        seed=seed,
        image_size=image_size,
        sizes=(train_size, val_size),
        num_workers=num_workers,
        model_options=model_options,
        dataset_options=dataset_options,
    )
    if optimizer is not None:
        recipe = replace(recipe or strategy.recipe, optimizer=optimizer)  # type: ignore[arg-type]
    settings = _settings(
        info, loaders, recipe or strategy.recipe, epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed,
    )  # fmt: skip
    fit_options = dict(
        epochs=epochs, recipe=recipe, lr=lr, weight_decay=weight_decay, device=device, amp=amp,
        seed=seed, trial=trial, progress=progress, code=code,
        max_steps_per_epoch=max_steps_per_epoch,
    )  # fmt: skip
    result = _fit_tracked(
        model, strategy, loaders, tracker=tracker, settings=settings, callback=callback,
        fit_options=fit_options,
    )  # fmt: skip
    if trial is not None:
        _store_in_trial(trial, result)
    return result


def _fit_tracked(
    model: nn.Module,
    strategy: Task,
    loaders: tuple[DataLoader[Any], DataLoader[Any]],
    *,
    tracker: MLflowTracker | None,
    settings: Mapping[str, Any],
    callback: EpochCallback | None,
    fit_options: dict[str, Any],
) -> TrainResult:
    """:func:`fit` inside the trial's MLflow run (epochs and the result logged to it)."""
    from ncp_hpo.trainers._cost import code_string

    code, trial = fit_options["code"], fit_options["trial"]
    run_ctx: Any = (
        tracker.trial_run(code=code, task=strategy.name, trial=trial, params=dict(settings))
        if tracker is not None
        else nullcontext(None)
    )
    with run_ctx as run:
        on_epoch = _chain(callback, run.log_epoch if run is not None else None)
        result = fit(model, strategy, *loaders, callback=on_epoch, **fit_options)
        if result.code is None:
            result.code = code_string(code)
        if run is not None:
            run.log_result(result, task=strategy.name)
    return result


def _setup(
    code: Any,
    *,
    task: str,
    dataset: str | Path | None,
    batch_size: int,
    seed: int,
    image_size: int | None,
    sizes: tuple[int | None, int | None],
    num_workers: int,
    model_options: Mapping[str, Any] | None,
    dataset_options: Mapping[str, Any] | None,
) -> tuple[tuple[DataLoader[Any], DataLoader[Any]], DatasetInfo, nn.Module, Task]:
    """The loaders, the dataset's info, the network of ``code`` and the task strategy."""
    name = DEFAULT_DATASET.get(task) if dataset is None else dataset
    if name is None:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    loaders = make_loaders(
        name,
        batch_size=batch_size,
        seed=seed,
        image_size=image_size,
        train_size=sizes[0],
        val_size=sizes[1],
        num_workers=num_workers,
        task=task,
        **dict(dataset_options or {}),
    )
    info = dataset_info(loaders[0])
    assert info is not None
    model = build_model(
        code,
        task=task,
        num_classes=info.num_classes,
        in_chans=info.in_channels,
        seed=seed,
        **dict(model_options or {}),
    )
    strategy = make_task(task, info.num_classes, **_task_options(task, info))
    return loaders, info, model, strategy


def _settings(
    info: DatasetInfo,
    loaders: tuple[DataLoader[Any], DataLoader[Any]],
    recipe: Recipe,
    *,
    epochs: int,
    batch_size: int,
    lr: float | None,
    seed: int,
) -> dict[str, Any]:
    """The run's settings (MLflow parameters of the trial run)."""
    return {
        "dataset": info.name,
        "epochs": epochs,
        "batch_size": batch_size,
        "image_size": "x".join(map(str, info.input_size)),
        "train_size": len(loaders[0].dataset),  # type: ignore[arg-type]
        "val_size": len(loaders[1].dataset),  # type: ignore[arg-type]
        "lr": lr if lr is not None else recipe.lr,
        "seed": seed,
        "optimizer": recipe.optimizer,
        "schedule": recipe.schedule,
    }


def _chain(*callbacks: EpochCallback | None) -> EpochCallback:
    """One epoch callback calling each of ``callbacks`` that is not ``None``, in order."""
    active = [cb for cb in callbacks if cb]

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
        for cb in active:
            cb(epoch, metrics)

    return on_epoch


def _store_in_trial(trial: Any, result: TrainResult) -> None:
    """Final metrics and cost as trial user attributes (JSON-safe: NaN/inf become None)."""

    def clean(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else None

    attrs: dict[str, Any] = {
        "metrics": {k: clean(v) for k, v in result.metrics.items()},
        "macs": result.macs,
        "params": result.params,
        "macs_analytic": result.macs_analytic,
        "wall_time_s": result.wall_time_s,
        "samples_per_s": clean(result.samples_per_s),
        "device": result.device,
        "epochs_completed": result.epochs,
        "code": result.code,
    }
    for k, v in attrs.items():
        try:
            trial.set_user_attr(k, v)
        except Exception:  # a trial without storage (FixedTrial) or a read-only one
            return


class TrainingObjective:
    """An Optuna objective that trains the network of the trial's code.

    Each call suggests the 27 code dimensions (``trial.suggest_int(name, low, high,
    step=...)`` over :meth:`~ncp_hpo.spaces.MultiResolutionSpace.optuna_distributions`), so
    any sampler, NCPSampler included, drives it; trains with :func:`train_code` (pruning
    on); and returns the task's main metric, or ``(metric, macs)`` for a two-objective
    study (``directions=["maximize", "minimize"]``; Optuna cannot prune those).

    Example:
        >>> study = optuna.create_study(direction="maximize",  # doctest: +SKIP
        ...                             pruner=optuna.pruners.MedianPruner())
        >>> study.optimize(TrainingObjective("cls", epochs=3, tracker=MLflowTracker()), 10)

    Args:
        task: the task key.
        objectives: ``("metric",)``, ``("metric", "macs")`` or ``("metric", "params")``
            (the second minimised: the exact multiply-accumulates per sample, or the
            parameter count).
        tracker: MLflow logging (optional).
        fixed: code dimensions held fixed (``{"b1": 1, ...}``), not suggested.
        max_flops: compute budget: at most this many multiply-accumulates per sample
            (exact, :func:`ncp_hpo.spaces.cost.flops` at the training input size); a code
            over it is never trained: the trial is pruned at once with ``fail_reason``
            ``"over compute budget"``, ``budget_violation`` > 0 and the Optuna constraint
            ``compute_budget`` (TPE learns from it); give the predictor-based samplers
            ``space=objective.space`` so they never propose such a code.
        max_params: the same for parameters.
        search_recipe: also suggest the recipe's learning rate and weight decay (log
            scale, around the recipe's values: :mod:`ncp_hpo.trainers._recipe_search`),
            searched with the architecture as one vector by the predictor-based samplers.
        train_options: everything else :func:`train_code` takes (``dataset``, ``epochs``,
            ``batch_size``, ``image_size``, ``lr``, ``seed``, ``device``, ...).
    """

    def __init__(
        self,
        task: str = "cls",
        *,
        objectives: Sequence[str] = ("metric",),
        tracker: MLflowTracker | None = None,
        fixed: Mapping[str, int] | None = None,
        max_flops: float | None = None,
        max_params: float | None = None,
        search_recipe: bool = False,
        **train_options: Any,
    ) -> None:
        if tuple(objectives) not in (("metric",), ("metric", "macs"), ("metric", "params")):
            raise ValueError(
                "objectives must be ('metric',), ('metric', 'macs') or ('metric', 'params'), "
                f"got {objectives!r}"
            )
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
        self.task = task
        self.objectives = tuple(objectives)
        self.tracker = tracker
        self.fixed = dict(fixed or {})
        self.train_options = train_options
        from ncp_hpo.trainers._budget import training_budget
        from ncp_hpo.trainers._recipe_search import recipe_distributions

        self.recipe_space = recipe_distributions(task, train_options) if search_recipe else {}

        self.budget = training_budget(
            task, max_flops=max_flops, max_params=max_params, train_options=train_options
        )

    @property
    def recipe_defaults(self) -> dict[str, float]:
        """The searched recipe parameters at the recipe's own values (the centre of their
        log ranges; empty without ``search_recipe``): enqueue them to start a search there."""
        return {n: float((d.low * d.high) ** 0.5) for n, d in self.recipe_space.items()}

    @property
    def space(self) -> CodeSpace:
        """The code space of the trials: restricted to the budget when one is set (give it
        to the predictor-based samplers, ``NCPSampler(space=objective.space)``)."""
        from ncp_hpo.spaces import MultiResolutionSpace
        from ncp_hpo.spaces.budget import BudgetedSpace

        base = MultiResolutionSpace()
        return base if self.budget is None else BudgetedSpace(base, self.budget)

    def suggest_code(self, trial: optuna.trial.BaseTrial) -> Any:
        """The trial's code: one ``suggest_int`` per dimension not in ``fixed``."""
        from optuna.distributions import IntDistribution

        from ncp_hpo.spaces import MultiResolutionSpace

        space = MultiResolutionSpace()
        params: dict[str, int] = {}
        for name, base in space.optuna_distributions().items():
            dist = cast(IntDistribution, base)
            if name in self.fixed:
                params[name] = int(self.fixed[name])
            else:
                params[name] = trial.suggest_int(
                    name,
                    int(dist.low),
                    int(dist.high),
                    step=int(dist.step),
                )
        return space.from_params(params)

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, float]:
        from ncp_hpo.trainers._budget import enforce_budget
        from ncp_hpo.trainers._recipe_search import suggest_recipe

        code = self.suggest_code(trial)
        enforce_budget(trial, self.budget, code)
        options = {**self.train_options, **suggest_recipe(trial, self.recipe_space)}
        result = train_code(code, task=self.task, trial=trial, tracker=self.tracker, **options)
        if self.objectives == ("metric",):
            return result.value
        return result.value, float(result.macs if self.objectives[1] == "macs" else result.params)
