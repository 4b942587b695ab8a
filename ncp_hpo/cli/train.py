"""``ncp-hpo train``: train one architecture code on a task and print what it measured.

    ncp-hpo train --task cls --code 64_64-2_1_2_64-...-64 --epochs 3 [--save-weights w.pt]

Parses the command line, checks the code, device and dataset (one-line errors), trains
with :func:`ncp_hpo.trainers.train_code` (one MLflow run unless ``--no-mlflow``) and
prints the metrics, cost, wall time and where the run and weights went.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ncp_hpo.cli._options import (
    TASK_HELP,
    add_quiet_option,
    add_tracking_options,
    add_training_options,
)
from ncp_hpo.cli._output import make_tracker, training_output
from ncp_hpo.exceptions import TrainingError
from ncp_hpo.search import TASKS

__all__ = ["register_train_commands", "train_options"]

_EPILOG = """\
examples:
  ncp-hpo train --task cls --epochs 3 \\
      --code 64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64
  ncp-hpo train --task seg --no-mlflow --save-weights seg.safetensors \\
      --code 32_32-1_1_1_32-1_2_1_1_32_32-1_3_1_1_1_32_32_32-1_4_1_1_1_1_32_32_32_32-32
"""


def register_train_commands(subparsers: Any) -> None:
    """Add ``ncp-hpo train``."""
    t = subparsers.add_parser(
        "train",
        epilog=_EPILOG,
        help="train one architecture code on a task and print its metrics and cost",
        description=(
            "Build the network of CODE for TASK, train it on the task's embedded dataset "
            "(or --dataset), print the validation metrics, FLOPs, parameters, wall time and "
            "throughput, and log one MLflow run."
        ),
    )
    t.add_argument("--task", required=True, choices=TASKS, help=TASK_HELP)
    t.add_argument(
        "--code",
        required=True,
        metavar="CODE",
        help="multi-resolution code string, e.g. "
        "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64",
    )
    add_training_options(t, epochs=3)
    t.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the data split, weights, augmentation",
    )
    t.add_argument(
        "--save-weights",
        metavar="PATH",
        help="save the trained state_dict (torch.save; safetensors for a .safetensors PATH)",
    )
    add_tracking_options(t, experiment_help="MLflow experiment (default: ncp-hpo)")
    add_quiet_option(t)
    t.add_argument("--verbose", action="store_true", help="tracebacks and library logs")
    t.set_defaults(func=_cmd_train)


def train_options(args: argparse.Namespace, device: str | None) -> dict[str, Any]:
    """The trainer's keyword arguments from the ``training`` options (unset ones left out)."""
    opts: dict[str, Any] = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "device": device,
        "amp": args.amp,
        "optimizer": args.optimizer,
        "lr": args.lr,
    }
    return {k: v for k, v in opts.items() if v is not None}


def _cmd_train(args: argparse.Namespace) -> int:
    from ncp_hpo.runtime import trial_threads

    with training_output(verbose=args.verbose), trial_threads(args.threads):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from ncp_hpo._secrets import error_line
    from ncp_hpo.runtime import (
        check_dataset,
        check_device,
        check_weights_path,
        parse_code,
        save_weights,
    )
    from ncp_hpo.trainers import train_code

    code = parse_code(args.code)
    device = check_device(args.device)
    weights = Path(args.save_weights).expanduser() if args.save_weights else None
    if weights is not None:
        check_weights_path(weights)
    opts = train_options(args, device)
    check_dataset(args.task, opts)
    tracker = None
    if not args.no_mlflow:
        tracker = make_tracker(
            args.mlflow_uri, args.mlflow_experiment or "ncp-hpo", verbose=args.verbose
        )
    started = time.time()
    try:
        result = train_code(
            code,
            task=args.task,
            seed=args.seed,
            tracker=tracker,
            progress=not args.quiet and sys.stderr.isatty(),
            **opts,
        )
    except ValueError as exc:
        if args.verbose:
            raise
        raise TrainingError(error_line(exc)) from None
    _print_result(result, code, args.task)
    if weights is not None:
        save_weights(result, weights, task=args.task)
        print(f"weights  {weights}")
    if tracker is not None:
        _print_run(tracker, since=started)
    return 0


def _print_result(result: Any, code: str, task: str) -> None:
    from ncp_hpo.runtime import human

    print(f"code     {result.code or code}")
    print(
        f"task     {task}: {result.epochs} epoch(s) on {result.device}"
        f"{f' ({result.amp} autocast)' if result.amp else ''}"
        f"{'; DIVERGED (loss became NaN/inf)' if result.diverged else ''}"
    )
    width = max(len(k) for k in result.metrics) if result.metrics else 8
    for k, v in result.metrics.items():
        mark = "  <- main metric" if k == result.main_metric else ""
        print(f"  {k:<{width}}  {v:.4f}{mark}")
    analytic = (
        f" (closed form {human(result.macs_analytic)})" if result.macs_analytic is not None else ""
    )
    print(f"MACs     {human(result.macs)}{analytic}; FLOPs {human(result.flops)} per sample")
    print(f"params   {result.params:,} ({human(result.params)})")
    print(
        f"time     {result.wall_time_s:.1f} s wall; {result.samples_per_s:.0f} samples/s training"
    )


def _print_run(tracker: Any, *, since: float) -> None:
    from ncp_hpo.tracking import latest_trial_run_id, tracking_hint

    run_id = latest_trial_run_id(tracker, since=since)
    if run_id is not None:
        print(
            f"MLflow   run {run_id} in experiment {tracker.experiment!r} at "
            f"{tracker.resolved_uri}; see it with: "
            f"{tracking_hint(tracker.resolved_uri, tracker.experiment_id(), run_id)}"
        )
