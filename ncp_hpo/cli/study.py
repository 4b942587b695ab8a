"""``ncp-hpo study``: run or resume an Optuna study of real training trials.

    ncp-hpo study --task cls --sampler ncp --prior cls-50-1000 --trials 20 \\
        --storage sqlite:///study.db --study-name digits-ncp --epochs 3

Parses the command line, fills the per-device defaults, checks the options (one-line
errors), runs :func:`ncp_hpo.runtime.run_training_study` (pruned by default, one MLflow
parent run per study with a nested run per trial) and prints the best trials.
``--trials`` is the study's total budget of COMPLETE + PRUNED trials: the same command
again (same ``--storage`` and ``--study-name``) runs only the missing trials.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ncp_hpo.cli._options import (
    TASK_HELP,
    add_quiet_option,
    add_tracking_options,
    add_training_options,
    cap_arg,
    cpu_default,
    non_negative_int,
    positive_float,
    positive_int,
    sampler_param,
)
from ncp_hpo.cli._output import make_tracker, training_output
from ncp_hpo.exceptions import TrainingError
from ncp_hpo.runtime import PRUNERS
from ncp_hpo.search import OPTUNA_SAMPLERS, PREDICTOR_SAMPLERS, TASKS
from ncp_hpo.search._registry import budget_refusal

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from ncp_hpo.runtime import StudyConfig, StudyOutcome
    from ncp_hpo.tracking import MLflowTracker

__all__ = ["register_study_commands"]

TOP_K = 5

_EPILOG = """\
examples:
  ncp-hpo study --task cls --trials 20 --storage sqlite:///study.db --study-name digits-ncp
  ncp-hpo study --task cls --sampler ncp --prior none --trials 20 --epochs 3
  ncp-hpo study --task seg --sampler tpe --trials 30 --pruner hyperband --quiet
  ncp-hpo study --task cls --trials 20 --sampler-param iterations=20 --log-models
"""


def register_study_commands(subparsers: Any) -> None:
    """Add ``ncp-hpo study``."""
    s = subparsers.add_parser(
        "study",
        epilog=_EPILOG,
        help="run or resume an Optuna study of real training trials (MLflow-tracked)",
        description=(
            "Search architecture codes for TASK with SAMPLER, training each trial for real. "
            "--trials is the total of COMPLETE + PRUNED trials: rerunning with the same "
            "--storage and --study-name runs only what is missing. The study stops early, "
            "with one line, after 3 failed trials in a row (each failure's reason is the "
            "trial's fail_reason), as every ncp-hpo command does."
        ),
    )
    s.add_argument("--task", required=True, choices=TASKS, help=TASK_HELP)
    _add_search_options(s)
    _add_study_options(s)
    add_training_options(s, epochs=3, device_defaults=True)
    _add_budget_options(s)
    add_tracking_options(s, experiment_help="MLflow experiment (default: the study name)")
    s.add_argument("--log-models", action="store_true", help="log every trial's weights to MLflow")
    add_quiet_option(s)
    s.add_argument("--verbose", action="store_true", help="Optuna's logs, with tracebacks")
    s.set_defaults(func=_cmd_study)


def _add_search_options(s: argparse.ArgumentParser) -> None:
    """The sampler, its prior and the study budget."""
    s.add_argument("--sampler", choices=OPTUNA_SAMPLERS, default="ncp", help="search algorithm")
    s.add_argument(
        "--prior",
        metavar="auto|none|SETTING|PATH",
        default="auto",
        help="predictor prior for ncp/netadapt/neural-predictor: a NAS-Bench-MR setting "
        "(e.g. cls-50-1000; fitted on first use, then cached) or a saved NeuralPredictor "
        "(.safetensors); auto: the task's setting (cls: cls-50-1000, seg: seg, video: video) "
        "when its data are found; none: no prior (default: auto)",
    )
    s.add_argument(
        "--data-dir",
        metavar="DIR",
        help="benchmark data for --prior SETTING (default: $NCP_HPO_DATA, then the user cache)",
    )
    s.add_argument(
        "--lam",
        type=float,
        help="the sampler's own FLOPs penalty: the ncp/netadapt/neural-predictor samplers "
        "propose codes with fewer FLOPs at some predicted metric; the study's objective is "
        "unchanged (default: 0, no penalty)",
    )
    s.add_argument(
        "--startup-trials",
        type=non_negative_int,
        metavar="N",
        help="random trials before the sampler's model is used "
        "(default: the sampler's; 0 with a prior)",
    )
    s.add_argument(
        "--sampler-param",
        type=sampler_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra sampler argument, VALUE in JSON (repeatable), e.g. iterations=20",
    )
    s.add_argument(
        "--search-recipe",
        action="store_true",
        help="also search the training recipe: lr from 1/10 to 10x the recipe's and weight "
        "decay from 1/100 to 100x (log scale), one vector with the architecture code",
    )
    s.add_argument(
        "--trials",
        type=positive_int,
        required=True,
        metavar="N",
        help="total COMPLETE + PRUNED trials of the study (a resumed study runs the rest)",
    )


def _add_study_options(s: argparse.ArgumentParser) -> None:
    """Where the study lives, its pruner, seed, first codes and time limit."""
    s.add_argument(
        "--storage",
        metavar="URL",
        default=os.environ.get("NCP_HPO_STORAGE"),
        help="sqlite:///FILE, postgresql://..., journal:FILE (default: $NCP_HPO_STORAGE, "
        "else in memory: not resumable)",
    )
    s.add_argument(
        "--study-name", metavar="NAME", help="study name (default: ncp-hpo-TASK-SAMPLER)"
    )
    s.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="auto",
        help="stop poor trials early, never after the final epoch; auto: none for "
        "ncp/netadapt/neural-predictor (they learn only from completed trials), else median",
    )
    s.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="training seed and sampler seed (a resumed study continues the sampler's stream)",
    )
    s.add_argument(
        "--enqueue",
        action="append",
        default=[],
        metavar="CODE",
        help="evaluate this code first, e.g. the paper's start code (repeatable; skipped "
        "when the study already holds it)",
    )
    s.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="start no trial after this"
    )


def _add_budget_options(s: argparse.ArgumentParser) -> None:
    """The compute budget: codes over it are never trained."""
    b = s.add_argument_group("compute budget (a code over it is never trained)")
    b.add_argument(
        "--max-gflops",
        type=cap_arg,
        metavar="G|none",
        help="at most G GFLOPs (multiply-accumulates per sample at the training input size, "
        f"exact); default on the CPU for cls: {cpu_default('max_gflops')}, else none; "
        "--sampler gp needs none",
    )
    b.add_argument(
        "--max-params", type=cap_arg, metavar="M|none", help="at most M million parameters"
    )


def _validate(args: argparse.Namespace) -> None:
    if args.prior not in ("auto", "none") and args.sampler not in PREDICTOR_SAMPLERS:
        raise TrainingError(
            f"--prior applies to the {', '.join(PREDICTOR_SAMPLERS)} samplers, not {args.sampler}"
        )
    if args.lam is not None and args.sampler not in PREDICTOR_SAMPLERS:
        raise TrainingError(
            f"--lam applies to the {', '.join(PREDICTOR_SAMPLERS)} samplers, not {args.sampler}"
        )
    if args.lam is not None:
        from ncp_hpo.search._tradeoff import check_lam

        try:
            check_lam(args.lam)
        except ValueError as exc:
            raise TrainingError(f"--{exc}") from None
    if args.data_dir is not None and args.prior == "none":
        raise TrainingError("--data-dir is where the prior's setting is looked up; --prior is none")
    if args.study_name is not None and not args.study_name.strip():
        raise TrainingError("--study-name must not be empty")


def _apply_device_defaults(args: argparse.Namespace, device: str | None) -> None:
    """Fill the options left unset with the per-device defaults (CPU: a cheaper study on
    the embedded dataset, see ``CPU_STUDY_DEFAULTS``)."""
    from ncp_hpo.runtime import CPU_STUDY_DEFAULTS, cuda_available

    on_cpu = device == "cpu" or (device is None and not cuda_available())
    defaults = CPU_STUDY_DEFAULTS.get(args.task, {}) if on_cpu and args.dataset is None else {}
    if args.epochs is None:
        args.epochs = defaults.get("epochs", 3)
    if args.batch_size is None:
        args.batch_size = defaults.get("batch_size", 32)
    if args.image_size is None:
        args.image_size = defaults.get("image_size")
    if args.max_gflops is None:
        args.max_gflops = defaults.get("max_gflops")
    if args.optimizer is None and args.lr is None:
        args.optimizer, args.lr = defaults.get("optimizer"), defaults.get("lr")


def _caps(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``(max_flops, max_params)`` in raw counts; ``None`` for no cap."""
    g, m = args.max_gflops, args.max_params
    flops = None if g is None or math.isinf(g) else g * 1e9
    n_params = None if m is None or math.isinf(m) else m * 1e6
    return flops, n_params


def _config(args: argparse.Namespace) -> StudyConfig:
    """The study's settings from the parsed options (checked, defaults filled)."""
    from ncp_hpo.cli.train import train_options
    from ncp_hpo.runtime import StudyConfig, check_dataset, check_device, choose_pruner, parse_code

    _validate(args)
    device = check_device(args.device)
    budget_given = args.max_gflops is not None
    _apply_device_defaults(args, device)
    args.pruner = choose_pruner(args.pruner, args.sampler)
    opts = train_options(args, device)
    if args.seed is not None:
        opts["seed"] = args.seed
    check_dataset(args.task, opts)
    enqueue = [parse_code(c, option="--enqueue") for c in args.enqueue]
    max_flops, max_params = _caps(args)
    refusal = None if max_flops is None and max_params is None else budget_refusal(args.sampler)
    if refusal is not None:
        drop = "--max-gflops none" + (" and no --max-params" if max_params is not None else "")
        default = (
            "" if budget_given or max_flops is None
            else f"{args.task} on the CPU has a default budget of {args.max_gflops:g} GFLOPs; "
        )  # fmt: skip
        raise TrainingError(f"{default}{refusal}; or search without a budget ({drop})")
    return StudyConfig(
        task=args.task,
        sampler=args.sampler,
        name=(args.study_name or f"ncp-hpo-{args.task}-{args.sampler}").strip(),
        trials=args.trials,
        epochs=args.epochs,
        pruner=args.pruner,
        train_options=opts,
        seed=args.seed,
        prior=args.prior,
        data_dir=args.data_dir,
        lam=args.lam,
        startup_trials=args.startup_trials,
        sampler_params=dict(args.sampler_param),
        enqueue=enqueue,
        timeout=args.timeout,
        max_flops=max_flops,
        max_params=max_params,
        search_recipe=args.search_recipe,
        progress=not args.quiet,
    )


def _cmd_study(args: argparse.Namespace) -> int:
    from ncp_hpo.runtime import trial_threads

    with training_output(verbose=args.verbose), trial_threads(args.threads):
        return _study(args)


def _study(args: argparse.Namespace) -> int:
    from ncp_hpo.runtime import open_study_storage, resolve_prior, run_training_study

    config = _config(args)
    log: Callable[[str], None] = (
        (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    )
    prior = resolve_prior(
        config.prior, task=config.task, sampler=config.sampler, data_dir=args.data_dir, log=log
    )
    config = dataclasses.replace(config, prior=prior)
    warning = _startup_warning(config)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    storage = open_study_storage(args.storage)
    if args.storage is None:
        log("storage: in memory (pass --storage sqlite:///FILE to keep and resume the study)")
    tracker = None
    if not args.no_mlflow:
        tracker = make_tracker(
            args.mlflow_uri,
            args.mlflow_experiment or config.name,
            verbose=args.verbose,
            log_model=args.log_models,
        )
    outcome = run_training_study(config, storage=storage, tracker=tracker, log=log)
    _print_summary(outcome, config.trials, tracker=tracker)
    if outcome.refused:
        print(f"{outcome.refused} proposed code(s) were over the compute budget and not trained")
    if outcome.stop_reason:
        raise TrainingError(outcome.stop_reason)
    return 0


def _startup_warning(config: StudyConfig) -> str | None:
    """compare's one-line warning when ``--trials`` ends within the sampler's random start-up
    trials; none when a prior, ``--enqueue`` codes or an explicit start-up count decide."""
    from ncp_hpo.experiments.compare import startup_warning

    explicit = config.startup_trials is not None or "n_startup_trials" in config.sampler_params
    if config.prior is not None or config.enqueue or explicit:
        return None
    return startup_warning((config.sampler,), config.trials)


def _print_summary(outcome: StudyOutcome, budget: int, *, tracker: MLflowTracker | None) -> None:
    from optuna.trial import TrialState

    from ncp_hpo.tracking import PARENT_RUN_ATTR, TRACKING_URI_ATTR, tracking_hint

    study, main_metric = outcome.study, outcome.main_metric
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    print(
        f"study {study.study_name!r}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed of "
        f"{budget} (COMPLETE + PRUNED); {outcome.ran} trial(s) run now in "
        f"{outcome.wall_s:.1f} s"
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    complete.sort(key=lambda t: -(t.value if t.value is not None else -math.inf))
    if complete:
        print(_table(complete[:TOP_K], main_metric))
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    uri = study.user_attrs.get(TRACKING_URI_ATTR)
    if tracker is not None and parent and uri and not tracker.warned:
        print(
            f"MLflow: parent run {parent} (experiment {tracker.experiment!r}); see it with: "
            f"{tracking_hint(str(uri), tracker.experiment_id())}"
        )


def _table(trials: Sequence[FrozenTrial], main_metric: str) -> str:
    from ncp_hpo.runtime import human
    from ncp_hpo.runtime._study import recipe_text

    last = "recipe and code" if any(recipe_text(t.params) for t in trials) else "code"
    header = ("rank", "trial", main_metric, "MACs", "params", "epochs", "time s", last)
    rows = []
    for rank, t in enumerate(trials, start=1):
        a = t.user_attrs
        wall = a.get("wall_time_s")
        rows.append(
            (
                str(rank),
                str(t.number),
                f"{t.value:.4g}",
                human(a.get("macs")),
                human(a.get("params")),
                str(a.get("epochs_completed", "-")),
                f"{wall:.1f}" if isinstance(wall, int | float) else "-",
                recipe_text(t.params) + str(a.get("code", "-")),
            )
        )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["best trials:"]
    for r in (header, *rows):
        cells = [
            c.rjust(w) if i < len(r) - 1 else c
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells))
    return "\n".join(lines)
