"""``ncp-hpo worker``: run trials of a shared study; start one per process or machine.

Parses the command line, opens the storage (:func:`ncp_hpo.runtime.open_storage`), builds
the objective and the sampler, and runs a :class:`ncp_hpo.runtime.Worker` (see there for
how many workers share one budget and ride out dead workers and storage outages).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import warnings
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact, remember_url
from ncp_hpo.benchmarks import OBJECTIVES
from ncp_hpo.cli._options import (
    add_quiet_option,
    add_threads_option,
    add_tracking_options,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    sampler_param,
)
from ncp_hpo.cli._output import cli_output, make_tracker
from ncp_hpo.cli._parser import add_deprecated_alias
from ncp_hpo.exceptions import WorkerError
from ncp_hpo.search import OPTUNA_SAMPLERS, TASKS
from ncp_hpo.search._registry import budget_refusal

if TYPE_CHECKING:
    from ncp_hpo.runtime import ObjectiveSpec, Worker
    from ncp_hpo.tracking import MLflowTracker

__all__ = ["register_worker_commands"]


def register_worker_commands(subparsers: Any) -> None:
    """Add ``ncp-hpo worker``."""
    p = subparsers.add_parser(
        "worker",
        help="run trials of a shared study; start one per process or machine",
        description=(
            "Join (or create) the study --study-name in STORAGE and run trials until it holds "
            "--trials COMPLETE + PRUNED trials (as 'ncp-hpo study' counts them). Start any "
            "number of workers with the same --study-name/--storage; a killed worker's trial "
            "is failed after --grace seconds without a heartbeat and re-run."
        ),
        epilog="""examples:
  ncp-hpo worker --study-name nb201 --storage sqlite:///nb201.db --benchmark nas-bench-201 \\
      --trials 100 --seed 0
  ncp-hpo worker --study-name seg-mo --storage postgresql://USER:PW@HOST:5432/DB \\
      --benchmark seg --objective metric+flops --trials 200 --seed 1
  ncp-hpo worker --study-name digits --storage journal:digits.log --task cls --epochs 2 \\
      --trials 20
""",
    )
    _add_objective_options(p)
    add_deprecated_alias(p, "--study", "--study-name")
    add_deprecated_alias(p, "--lam", "--flops-weight")  # its name until 0.2.0
    _add_search_options(p)
    _add_resilience_options(p)
    _add_training_options(p)
    add_threads_option(p)
    add_quiet_option(p)
    p.add_argument("--verbose", action="store_true", help="Optuna's logs, with tracebacks")
    p.set_defaults(func=_cmd_worker)


def _add_objective_options(p: argparse.ArgumentParser) -> None:
    """What the worker evaluates: a benchmark table or real training."""
    p.add_argument("--study-name", required=True, metavar="NAME", help="study name (shared)")
    p.add_argument(
        "--storage",
        metavar="URL",
        default=os.environ.get("NCP_HPO_STORAGE"),
        help="postgresql://USER:PW@HOST:PORT/DB, sqlite:///FILE or journal:FILE "
        "(default: $NCP_HPO_STORAGE)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--benchmark",
        metavar="SETTING",
        help="evaluate on a benchmark table (nas-bench-201, seg, cls-50-1000, ...; see "
        "'ncp-hpo data list')",
    )
    what.add_argument(
        "--task", choices=TASKS, help="train each code for real on the task's embedded dataset"
    )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="metric",
        help="maximise the main metric, or also minimise FLOPs (MACs for --task) or the "
        "parameter count: two objectives (metric+flops: one with --flops-weight)",
    )
    p.add_argument(
        "--flops-weight",
        type=float,
        metavar="W",
        help="benchmark only: scalarise --objective metric+flops into one objective, "
        "metric - W * z(flops), z(flops) being the FLOPs standardised over the benchmark "
        "table; not the sampler's FLOPs penalty (--sampler-param lam=...) (default: none, "
        "two objectives)",
    )
    p.add_argument(
        "--mode",
        choices=("surrogate", "table", "exact"),
        help="benchmark evaluation mode (default: exact for nas-bench-201, else surrogate)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="look for benchmark files here first")


def _add_search_options(p: argparse.ArgumentParser) -> None:
    """The sampler and the study budget."""
    p.add_argument("--sampler", choices=OPTUNA_SAMPLERS, default="ncp", help="search algorithm")
    p.add_argument(
        "--startup-trials",
        type=non_negative_int,
        metavar="N",
        help="random trials before the sampler's model is used (default: the sampler's)",
    )
    p.add_argument(
        "--sampler-param",
        type=sampler_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra sampler argument, VALUE in JSON (repeatable), e.g. iterations=20 or "
        "predictor_params='{\"epochs\": 60}'",
    )
    p.add_argument(
        "--trials",
        type=positive_int,
        metavar="N",
        help="the study's total budget of COMPLETE + PRUNED trials (all workers together) "
        "(default: run until stopped)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="sampler seed (give each worker its own, e.g. its index)",
    )


def _add_resilience_options(p: argparse.ArgumentParser) -> None:
    """Heartbeats, retries, storage outages, failures, time."""
    p.add_argument(
        "--heartbeat",
        type=non_negative_int,
        default=10,
        metavar="SECONDS",
        help="heartbeat interval of a running trial, 0 to disable",
    )
    p.add_argument(
        "--grace",
        type=positive_int,
        metavar="SECONDS",
        help="seconds without a heartbeat before a trial counts as dead (default: 2x --heartbeat)",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=2,
        metavar="N",
        help="times a dead worker's trial is queued again",
    )
    p.add_argument(
        "--storage-retry",
        type=non_negative_float,
        default=60.0,
        metavar="SECONDS",
        help="ride out a storage outage this long (retrying, heartbeats kept), then stop "
        "with one line",
    )
    p.add_argument(
        "--max-failures",
        type=positive_int,
        default=3,
        metavar="N",
        help="stop this worker after N failed trials in a row (default: %(default)s, as "
        "every ncp-hpo command)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="start no trial after this many seconds",
    )
    p.add_argument(
        "--poll",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="wait between checks when the budget is held by other workers",
    )


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """MLflow tracking and the real-training options of ``--task``."""
    add_tracking_options(p, experiment_help="MLflow experiment (default: the study name)")
    train = p.add_argument_group("real training (--task)")
    train.add_argument(
        "--epochs", type=positive_int, default=1, metavar="N", help="epochs per trial"
    )
    train.add_argument(
        "--dataset",
        metavar="NAME|DIR",
        help="embedded dataset or image folder (default: the task's embedded dataset)",
    )
    train.add_argument(
        "--batch-size", type=positive_int, default=32, metavar="N", help="batch size"
    )
    train.add_argument("--train-size", type=positive_int, metavar="N", help="training samples")
    train.add_argument("--val-size", type=positive_int, metavar="N", help="validation samples")
    train.add_argument("--device", help="torch device (default: CUDA when available)")
    train.add_argument(
        "--max-gflops",
        type=positive_float,
        metavar="G",
        help="compute budget: never train a code above G GFLOPs (multiply-accumulates "
        "per sample at the training input size)",
    )
    train.add_argument(
        "--max-params",
        type=positive_float,
        metavar="M",
        help="never train a code above M million parameters",
    )


def _cmd_worker(args: argparse.Namespace) -> int:
    from ncp_hpo.runtime import trial_threads

    with cli_output(verbose=args.verbose), trial_threads(args.threads):
        previous = signal.signal(signal.SIGTERM, _sigterm)
        try:
            worker = _build_worker(args)
            summary = worker.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(summary.line(), flush=True)
    if summary.stopped_reason:
        raise WorkerError(summary.stopped_reason)
    return 0


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the running trial is told FAIL; its budget slot is freed


def _check_args(args: argparse.Namespace) -> None:
    """One :class:`WorkerError` line for an option combination that cannot work."""
    if not args.storage:
        raise WorkerError("no storage: pass --storage URL or set NCP_HPO_STORAGE")
    if args.task is None and (args.max_gflops is not None or args.max_params is not None):
        raise WorkerError("--max-gflops/--max-params apply to --task (real training)")
    capped = [v for v in (args.max_gflops, args.max_params) if v is not None and not math.isinf(v)]
    refusal = budget_refusal(args.sampler) if capped else None
    if refusal is not None:
        raise WorkerError(refusal)
    if args.grace is not None and args.heartbeat == 0:
        raise WorkerError("--grace needs a heartbeat; drop --heartbeat 0")
    if args.grace is not None and args.grace <= args.heartbeat:
        raise WorkerError(
            f"--grace ({args.grace} s) must exceed --heartbeat ({args.heartbeat} s), "
            "or live trials would be failed"
        )
    if args.flops_weight is not None and args.task:
        raise WorkerError("--flops-weight applies to --benchmark only")
    from ncp_hpo.benchmarks._objectives import check_flops_weight

    try:
        check_flops_weight(args.flops_weight, args.objective, name="--flops-weight")
    except ValueError as exc:
        raise WorkerError(str(exc)) from None
    if args.task and (args.mode or args.data_dir):
        raise WorkerError("--mode and --data-dir apply to --benchmark only")
    if not args.study_name.strip():
        raise WorkerError("--study-name must not be empty")


def _build_worker(args: argparse.Namespace) -> Worker:
    from ncp_hpo.runtime import Worker, open_storage
    from ncp_hpo.samplers import make_sampler

    remember_url(args.storage)
    _check_args(args)
    storage = open_storage(
        args.storage,
        heartbeat=args.heartbeat,
        grace=args.grace,
        retries=args.retries,
        retry_window=args.storage_retry,
    )
    tracker = None if args.no_mlflow else _tracker(args)
    spec = _objective(args, tracker)
    if tracker is not None:
        spec.close = tracker.close
    sampler = make_sampler(
        args.sampler,
        space=spec.space,
        seed=args.seed,
        startup_trials=args.startup_trials,
        params=dict(args.sampler_param),
    )
    return Worker(
        study_name=args.study_name.strip(),
        storage=storage,
        spec=spec,
        sampler=sampler,
        budget=args.trials,
        max_failures=args.max_failures,
        timeout=args.timeout,
        poll=args.poll,
        log=None if args.quiet else (lambda s: print(s, flush=True)),
    )


def _objective(args: argparse.Namespace, tracker: MLflowTracker | None) -> ObjectiveSpec:
    from ncp_hpo.runtime import benchmark_objective, task_objective

    if args.benchmark is not None:
        return benchmark_objective(
            args.benchmark,
            mode=args.mode,
            objective=args.objective,
            flops_weight=args.flops_weight,
            data_dir=args.data_dir,
            tracker=tracker,
        )
    return task_objective(
        args.task,
        objective=args.objective,
        tracker=tracker,
        train_options={
            "epochs": args.epochs,
            "dataset": args.dataset,
            "batch_size": args.batch_size,
            "train_size": args.train_size,
            "val_size": args.val_size,
            "device": args.device,
            "progress": False,
        },
        max_flops=None if args.max_gflops is None else args.max_gflops * 1e9,
        max_params=None if args.max_params is None else args.max_params * 1e6,
    )


def _tracker(args: argparse.Namespace) -> MLflowTracker | None:
    """An MLflow tracker for ``--mlflow-uri`` (default: ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` here, as ``study``), or ``None`` (with one warning) when the
    server does not answer."""
    tracker = make_tracker(
        args.mlflow_uri,
        args.mlflow_experiment or args.study_name.strip(),
        verbose=args.verbose,
        log_model=False,
        log_architecture=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = tracker.reachable()
    if not ok:  # like `study`: one warning, and the trials still run (kept in the storage)
        print(
            redact(
                f"warning: MLflow tracking at {tracker.resolved_uri} is unreachable "
                f"({tracker.last_error}); trials run and are kept in the Optuna storage only"
            ),
            file=sys.stderr,
        )
        return None
    tracker.warned = False
    return tracker
