"""A real-training study (``ncp-hpo study``): run or resume it, pruned, tracked in MLflow.

:func:`run_training_study` creates the study or resumes it (same storage and name), checks
that it optimises the same task, queues the requested codes, loads or fits the predictor
prior, and runs trials until the study holds ``trials`` COMPLETE + PRUNED trials, with one
MLflow parent run per study (reused on resume, :class:`ncp_hpo.tracking.StudyParentRun`)
and a nested run per trial. An unreachable MLflow store costs one warning, never a trial:
results always stay in the Optuna storage (trial user attributes).

Trials run under the one runner's rules (:mod:`ncp_hpo.runtime._runner`): it stops early
after :data:`~ncp_hpo.runtime._runner.MAX_FAILURES_IN_ROW` failed trials in a row, or when
the sampler proposes :data:`~ncp_hpo.runtime._runner.MAX_REFUSALS_IN_ROW` codes in a row
over the compute budget; the outcome says why (:attr:`StudyOutcome.stop_reason`).

A study started here can be joined by ``ncp-hpo worker --task`` and the other way round:
both describe the objective the same way
(:func:`ncp_hpo.runtime._specs.ensure_study_objective`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import TrainingError, WorkerError
from ncp_hpo.runtime._attrs import FAIL_ATTR
from ncp_hpo.runtime._progress import StudyProgress, human
from ncp_hpo.runtime._specs import ObjectiveSpec, ensure_study_objective, task_objective
from ncp_hpo.search._registry import budget_refusal

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.tracking import MLflowTracker

__all__ = [
    "CPU_STUDY_DEFAULTS",
    "PRUNERS",
    "StudyConfig",
    "StudyOutcome",
    "open_study_storage",
    "run_training_study",
    "trial_line",
]

PRUNERS = ("auto", "median", "hyperband", "none")

CPU_STUDY_DEFAULTS: dict[str, dict[str, Any]] = {
    # digits at 16x16 (the scans are 8x8): 4x fewer FLOPs than 32x32. On these tiny inputs
    # deep networks train slowly and cost time per layer, so the budget is tight: 0.004
    # GFLOPs admits about 1 random code in 10^4 (the paper's start code costs 0.031), and
    # small, shallow codes reach > 90 % top-1 in 2-3 epochs of AdamW
    "cls": {
        "image_size": 16,
        "batch_size": 16,
        "epochs": 2,
        "optimizer": "adamw",
        "lr": 3e-3,
        "max_gflops": 0.004,
    },
}
"""``ncp-hpo study`` defaults on the CPU, per task (only where not given)."""


@dataclass(kw_only=True)
class StudyConfig:
    """What a real-training study runs.

    Attributes:
        task: ``cls``, ``seg``, ``video`` or ``bev-det``.
        sampler: a name of :data:`ncp_hpo.search.OPTUNA_SAMPLERS`.
        name: the study name.
        trials: total COMPLETE + PRUNED trials of the study (a resumed study runs the rest).
        epochs: training epochs per trial (the pruner's last step).
        pruner: ``median``, ``hyperband`` or ``none``
            (see :func:`ncp_hpo.runtime._pruning.choose_pruner`).
        train_options: keyword arguments of :class:`~ncp_hpo.trainers.TrainingObjective`
            (dataset, batch size, image size, device, seed, ...).
        seed: training and sampler seed (a resumed study continues the sampler's stream).
        prior: a NAS-Bench-MR setting or a saved predictor, for the predictor samplers.
        data_dir: where the prior's setting is looked up.
        lam: the predictor samplers' own FLOPs penalty (their ``lam``); ``None``: their
            default, 0 (no penalty). The objective's values are not changed by it.
        startup_trials: random trials before the sampler's model is used.
        sampler_params: extra sampler arguments.
        enqueue: canonical codes to evaluate first (skipped when the study holds them).
        timeout: seconds after which no trial starts.
        max_flops, max_params: the compute budget (raw counts; ``None``: no cap).
        search_recipe: search the recipe's learning rate and weight decay with the code.
        log_models: log every trial's weights to MLflow.
        progress: show the trial and epoch progress (and per-trial lines).
    """

    task: str
    sampler: str
    name: str
    trials: int
    epochs: int
    pruner: str
    train_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prior: str | None = None
    data_dir: str | None = None
    lam: float | None = None
    startup_trials: int | None = None
    sampler_params: dict[str, Any] = field(default_factory=dict)
    enqueue: list[str] = field(default_factory=list)
    timeout: float | None = None
    max_flops: float | None = None
    max_params: float | None = None
    search_recipe: bool = False
    progress: bool = True

    def settings(self) -> dict[str, Any]:
        """The settings logged as parameters of the study's MLflow parent run."""
        return {
            "task": self.task,
            "sampler": self.sampler,
            "prior": self.prior,
            "lam": self.lam,
            "trials": self.trials,
            "pruner": self.pruner,
            "epochs": self.epochs,
            "seed": self.seed,
            "search_recipe": self.search_recipe,
        }


@dataclass(kw_only=True)
class StudyOutcome:
    """What one run of a study did: the study, the trials run now (``ran``; ``refused``
    codes over the budget are not counted), its wall time in seconds, and why it stopped
    early (``None``: it did not)."""

    study: optuna.Study
    main_metric: str
    ran: int = 0
    refused: int = 0
    wall_s: float = 0.0
    stop_reason: str | None = None


def open_study_storage(url: str | None) -> Any:
    """The storage at ``url`` with heartbeats (a killed run's trial is failed and queued
    again on the next resume), or an in-memory one for ``None``."""
    import optuna

    from ncp_hpo.runtime._storage import open_storage

    if url is None:
        return optuna.storages.InMemoryStorage()
    return open_storage(url, heartbeat=10, retries=1)


def _enqueue(study: optuna.Study, codes: Sequence[str], *, limit: int) -> int:
    """Queue ``codes`` as WAITING trials unless the study already holds them, up to
    ``limit`` waiting trials in all (the rest of the budget); the number queued."""
    from optuna.trial import TrialState

    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    seen: set[str] = {
        str(space.encode(space.from_params(t.params)))
        for t in study.get_trials(deepcopy=False)
        if all(n in t.params for n in space.optuna_distributions())
    }
    seen |= {
        str(t.user_attrs.get("code"))
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("code")
    }
    n = 0
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for code in codes:
        if waiting + n >= limit:
            break
        if code in seen:
            continue
        study.enqueue_trial(space.to_params(space.decode(code)), skip_if_exists=True)
        seen.add(code)
        n += 1
    return n


def recipe_text(params: Mapping[str, Any]) -> str:
    """``"lr 0.003  wd 1e-05  "`` for a trial that searched the recipe, else ``""``."""
    parts = [
        f"{short} {params[name]:.3g}"
        for name, short in (("lr", "lr"), ("weight_decay", "wd"))
        if name in params
    ]
    return "".join(f"{p}  " for p in parts)


def trial_line(t: FrozenTrial, main_metric: str) -> str:
    """One line for a finished trial: state, metric, cost, time and code."""
    from optuna.trial import TrialState

    head = f"trial {t.number:>3} {t.state.name:<8}"
    attrs = t.user_attrs
    if t.state == TrialState.COMPLETE:
        wall = attrs.get("wall_time_s")
        return (
            f"{head} {main_metric} {t.value:.4g}  MACs {human(attrs.get('macs'))}  "
            f"params {human(attrs.get('params'))}  "
            f"{f'{wall:.1f} s' if isinstance(wall, int | float) else ''}  "
            f"{recipe_text(t.params)}{attrs.get('code', '')}"
        )
    if t.state == TrialState.PRUNED:
        step = t.last_step
        value = t.intermediate_values.get(step) if step is not None else None
        shown = f"{value:.4g}" if isinstance(value, int | float) else "-"
        return f"{head} after epoch {step}: {main_metric} {shown}"
    return f"{head} {attrs.get(FAIL_ATTR, '')}".rstrip()


def _geometry(opts: Mapping[str, Any]) -> str:
    size = opts.get("image_size")
    return (
        f"batch {opts.get('batch_size', 32)}"
        f"{f', {size}x{size} input' if size else ', the dataset input size'}"
    )


class _TrialLines:
    """After each trial: its line, with the codes refused for the compute budget before it."""

    def __init__(self, progress: StudyProgress, main_metric: str) -> None:
        self.progress, self.main_metric = progress, main_metric
        self.refused_in_row = 0

    def __call__(self, study: optuna.Study, frozen: FrozenTrial, end: str) -> None:
        from optuna.trial import TrialState

        if end in ("refused", "raced"):
            self.refused_in_row += end == "refused"
            self.progress.end_trial("", value=None, counted=False)
            return
        line = trial_line(frozen, self.main_metric)
        if self.refused_in_row:
            line += f"  (+{self.refused_in_row} over budget, not trained)"
        self.refused_in_row = 0
        value = frozen.value if frozen.state == TrialState.COMPLETE else None
        self.progress.end_trial(line, value=value)


def _spec(config: StudyConfig, tracker: MLflowTracker | None) -> ObjectiveSpec:
    try:
        return task_objective(
            config.task,
            objective="metric",
            tracker=tracker,
            train_options={**config.train_options, "progress": False},
            max_flops=config.max_flops,
            max_params=config.max_params,
            search_recipe=config.search_recipe,
        )
    except WorkerError as exc:
        raise TrainingError(str(exc)) from None


def _set_sampler(
    study: optuna.Study,
    spec: ObjectiveSpec,
    config: StudyConfig,
    *,
    before: int,
    remaining: int,
    log: Callable[[str], None],
) -> None:
    """Queue the codes to run first, load the prior, and give the study its sampler."""
    from ncp_hpo.samplers import make_sampler

    enqueue = list(config.enqueue)
    if getattr(spec.space, "budget", None) is not None and config.sampler == "tpe":
        if not before:
            # their random startup would mostly draw codes over the budget: start them from
            # random codes within it (seeded), then they learn the budget as a constraint
            n_start = 10 if config.startup_trials is None else config.startup_trials
            draws = spec.space.sample(n_start, seed=config.seed)
            enqueue += [str(spec.space.encode(c)) for c in draws]
    queued = _enqueue(study, enqueue, limit=remaining)
    if queued:
        log(f"queued {queued} code(s) to run first (--enqueue; startup codes within the budget)")
    recipe = getattr(spec.objective, "recipe_defaults", {})
    if recipe and not before and not queued:
        # --search-recipe starts from the recipe as configured; the search moves from there
        study.enqueue_trial(dict(recipe), skip_if_exists=True)
    params = dict(config.sampler_params)
    if config.prior is not None:
        from ncp_hpo.runtime._setup import load_prior

        prior: NeuralPredictor = load_prior(
            config.prior, data_dir=config.data_dir, seed=config.seed or 0, log=log
        )
        params["prior"] = prior
    if config.lam is not None:
        params["lam"] = config.lam
    study.sampler = make_sampler(
        config.sampler,
        space=spec.space,
        seed=config.seed,
        startup_trials=config.startup_trials,
        params=params,
    )
    if before and config.seed is not None:
        # a resumed seeded study goes on as if never stopped: the sampler is taken through
        # the stored trials first (its random stream and fitted predictors advance)
        from ncp_hpo.samplers._replay import replay_sampler

        message = replay_sampler(study.sampler, study).message(config.name)
        if message:
            log(f"warning: {message}")


def _objective(spec: ObjectiveSpec, progress: StudyProgress) -> Callable[[optuna.trial.Trial], Any]:
    """The spec's objective, its epochs shown by the progress display."""
    from ncp_hpo.trainers import TrainingObjective

    trainer = spec.objective
    if isinstance(trainer, TrainingObjective):  # epochs of the running trial
        trainer.train_options["callback"] = progress.on_epoch
    return spec.objective


def run_training_study(
    config: StudyConfig,
    *,
    storage: Any,
    tracker: MLflowTracker | None,
    log: Callable[[str], None],
) -> StudyOutcome:
    """Run (or resume) the study ``config`` describes in ``storage`` (module docstring).

    Args:
        config: the study's settings.
        storage: an Optuna storage (:func:`open_study_storage`).
        tracker: MLflow tracking (``None``: none); closed at the end.
        log: where progress lines go.

    Raises:
        TrainingError: a sampler that cannot search under the budget (``gp``), a study of
            that name made for another task or directions, a training setting the trainer
            refuses, a missing prior file.
    """
    import optuna

    from ncp_hpo.runtime._pruning import make_pruner
    from ncp_hpo.runtime._runner import is_counted
    from ncp_hpo.trainers import TASKS as STRATEGIES

    spec = _spec(config, tracker)
    refusal = budget_refusal(config.sampler) if getattr(spec.space, "restricted", False) else None
    if refusal is not None:
        raise TrainingError(refusal)  # before the study is made
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        direction="maximize",
        pruner=make_pruner(config.pruner, config.epochs),
        load_if_exists=True,
    )
    ensure_study_objective(study, spec, hint="--study-name", error=TrainingError)
    main_metric = STRATEGIES[config.task].main_metric
    before = study.get_trials(deepcopy=False)
    done = sum(is_counted(t) for t in before)
    remaining = config.trials - done
    if before:
        log(
            f"study {config.name!r}: resuming with {done} of {config.trials} trials done "
            f"({len(before)} in storage)"
        )
    if remaining <= 0:
        log(f"study {config.name!r} already holds {done} COMPLETE + PRUNED trials; nothing to run")
        return StudyOutcome(study=study, main_metric=main_metric)
    _set_sampler(study, spec, config, before=len(before), remaining=remaining, log=log)
    return _optimize(study, spec, config, storage, tracker, log, remaining, main_metric)


def _optimize(
    study: optuna.Study,
    spec: ObjectiveSpec,
    config: StudyConfig,
    storage: Any,
    tracker: MLflowTracker | None,
    log: Callable[[str], None],
    remaining: int,
    main_metric: str,
) -> StudyOutcome:
    from ncp_hpo.runtime._runner import RunHooks, RunPolicy, run_trials
    from ncp_hpo.tracking import StudyParentRun, log_study_outcome

    budget = getattr(spec.space, "budget", None)
    progress = StudyProgress(
        total=remaining, epochs=config.epochs, metric=main_metric, enabled=config.progress
    )
    objective = _objective(spec, progress)
    log(
        f"study {config.name!r}: {remaining} trial(s) to run on {config.task} with "
        f"{config.sampler}{f' (prior {config.prior})' if config.prior else ''}, pruner "
        f"{config.pruner}, {config.epochs} epoch(s) each, {_geometry(config.train_options)}"
        f"{f'; budget {budget.describe()}' if budget else ''}"
    )
    parent = StudyParentRun(
        study, tracker, sampler=config.sampler, settings=config.settings(), log=log
    )
    policy = RunPolicy(
        budget=config.trials,
        timeout=config.timeout,
        gc_after_trial=True,
        refusal_hint=(
            f" ({budget.describe() if budget else '-'}); raise --max-gflops/--max-params"
        ),
    )
    hooks = RunHooks(
        on_start=lambda trial: progress.start_trial(trial.number),
        on_finish=_TrialLines(progress, main_metric),
        log=log,
    )
    try:
        with parent as parent_id, progress:
            run = run_trials(study, objective, storage=storage, policy=policy, hooks=hooks)
            if parent_id is not None and tracker is not None:
                log_study_outcome(tracker, parent_id, study, main_metric)
    finally:
        if tracker is not None:
            tracker.close()  # parents opened lazily by trials (MLflow came back mid-study)
    return StudyOutcome(
        study=study,
        main_metric=main_metric,
        ran=run.ran,
        refused=run.count("refused"),
        wall_s=run.wall_s,
        stop_reason=run.stop_reason,
    )
