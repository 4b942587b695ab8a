"""``ncp-hpo train`` and ``ncp-hpo study``: real training trials from the command line.

Train one architecture code on a task's embedded dataset::

    ncp-hpo train --task cls --code 64_64-2_1_2_64-...-64 --epochs 3 [--save-weights w.pt]

Run (or resume) an Optuna study of real training trials, pruned by default, tracked in
MLflow as one parent run per study with a nested run per trial::

    ncp-hpo study --task cls --sampler ncp --prior cls-50-1000 --trials 20 \\
        --storage sqlite:///study.db --study-name digits-ncp --epochs 3

``--trials`` is the study's total budget of COMPLETE + PRUNED trials: running the same
command again (same ``--storage`` and ``--study-name``) runs only the missing trials and
keeps logging under the same MLflow parent run (its id is the study user attribute
``mlflow_parent_run_id``). An unreachable MLflow store costs one warning, never a trial:
results always stay in the Optuna storage (trial user attributes).

The pieces shared with ``ncp-hpo worker`` (sampler construction, the training objective,
storage URLs, the one-line CLI output) come from :mod:`ncp_hpo.runtime.worker`, so a study
started here can be joined by workers and the other way round.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import NCPError
from ncp_hpo.runtime.worker import (
    FAIL_ATTR,
    OBJECTIVE_ATTR,
    _cli_output,
    _describe,
    _describe_key,
    _key_value,
    _non_negative_float,
    _non_negative_int,
    _positive_float,
    _positive_int,
    _short,
)
from ncp_hpo.search.registry import OPTUNA_SAMPLERS, PREDICTOR_SAMPLERS, TASKS, make_sampler
from ncp_hpo.trainers._progress import StudyProgress

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.trial import FrozenTrial

    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.trainers.tracking import MLflowTracker

__all__ = [
    "PARENT_RUN_ATTR",
    "TrainingCLIError",
    "register_training_commands",
]

PRUNERS = ("auto", "median", "hyperband", "none")
PARENT_RUN_ATTR = "mlflow_parent_run_id"
TRACKING_URI_ATTR = "mlflow_tracking_uri"
MAX_FAILURES_IN_ROW = 3
MAX_REFUSALS_IN_ROW = 500
TOP_K = 5


class TrainingCLIError(NCPError, ValueError):
    """A bad ``train``/``study`` argument, or a study that had to stop."""


# ---------------------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------------------
def _cpu_default(key: str) -> Any:
    from ncp_hpo.trainers._budget import CPU_STUDY_DEFAULTS

    return CPU_STUDY_DEFAULTS["cls"][key]


def _cap_arg(text: str) -> float:
    """A positive budget cap, or ``none`` (no cap: returned as ``inf``)."""
    t = text.strip().lower()
    if t in ("none", "off", "inf"):
        return math.inf
    try:
        v = float(t)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or none, got {text!r}")
    return v


def _device_arg(text: str) -> str:
    t = text.strip().lower()
    if t in ("cpu", "cuda", "auto") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")


def _add_training_options(
    p: argparse.ArgumentParser, *, epochs: int, device_defaults: bool = False
) -> None:
    g = p.add_argument_group("training")
    on_cpu = "; on the CPU, cls: {}" if device_defaults else ""
    g.add_argument(
        "--epochs",
        type=_positive_int,
        default=None if device_defaults else epochs,
        metavar="N",
        help=f"training epochs (default: {epochs}{on_cpu.format(_cpu_default('epochs'))})",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None if device_defaults else 32,
        metavar="N",
        help=f"batch size (default: 32{on_cpu.format(_cpu_default('batch_size'))})",
    )
    g.add_argument(
        "--image-size",
        type=_positive_int,
        metavar="N",
        help="input side in pixels "
        f"(default: the dataset's{on_cpu.format(_cpu_default('image_size'))})",
    )
    g.add_argument(
        "--dataset",
        metavar="NAME|DIR",
        help="embedded dataset or image folder (default: the task's embedded dataset)",
    )
    g.add_argument(
        "--optimizer",
        choices=("sgd", "adam", "adamw"),
        help="instead of the task recipe's (sgd for cls"
        f"{', adamw on the CPU' if device_defaults else ''}); give --lr with it",
    )
    cpu_lr = f"; {_cpu_default('lr')} with adamw on the CPU" if device_defaults else ""
    g.add_argument(
        "--lr",
        type=_positive_float,
        metavar="LR",
        help=f"learning rate (recipe default: 0.1 for sgd{cpu_lr})",
    )
    g.add_argument("--train-size", type=_positive_int, metavar="N", help="training samples")
    g.add_argument("--val-size", type=_positive_int, metavar="N", help="validation samples")
    g.add_argument(
        "--device",
        type=_device_arg,
        default="auto",
        metavar="DEVICE",
        help="cpu, cuda, cuda:N or auto (default: auto, CUDA when available)",
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="CPU threads of torch; 1 is fastest when processes share cores (default: torch's)",
    )
    g.add_argument(
        "--amp",
        choices=("auto", "bf16", "fp16", "off"),
        default="auto",
        help="mixed precision; auto: bf16 on CUDA where supported, off on the CPU",
    )


def _add_tracking_options(p: argparse.ArgumentParser, *, experiment_help: str) -> None:
    g = p.add_argument_group("MLflow tracking (on by default)")
    g.add_argument(
        "--mlflow-uri",
        metavar="URI",
        help="tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    g.add_argument("--mlflow-experiment", metavar="NAME", help=experiment_help)
    g.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")


_TASK_HELP = "cls (top1), seg (mIoU), video (top1) or bev-det (AP50), on its embedded dataset"
_TRAIN_EPILOG = """\
examples:
  ncp-hpo train --task cls --epochs 3 \\
      --code 64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64
  ncp-hpo train --task seg --threads 1 --no-mlflow --save-weights seg.safetensors \\
      --code 32_32-1_1_1_32-1_2_1_1_32_32-1_3_1_1_1_32_32_32-1_4_1_1_1_1_32_32_32_32-32
"""
_STUDY_EPILOG = """\
examples:
  ncp-hpo study --task cls --trials 20 --storage sqlite:///study.db --study-name digits-ncp
  ncp-hpo study --task cls --sampler ncp --prior cls-50-1000 --trials 20 --epochs 3
  ncp-hpo study --task seg --sampler tpe --trials 30 --pruner hyperband --quiet
  ncp-hpo study --task cls --trials 20 --sampler-param iterations=20 --log-models
"""


def register_training_commands(subparsers: Any) -> None:
    """Add ``ncp-hpo train`` and ``ncp-hpo study``."""
    t = subparsers.add_parser(
        "train",
        epilog=_TRAIN_EPILOG,
        help="train one architecture code on a task and print its metrics and cost",
        description=(
            "Build the network of CODE for TASK, train it on the task's embedded dataset "
            "(or --dataset), print the validation metrics, FLOPs, parameters, wall time and "
            "throughput, and log one MLflow run."
        ),
    )
    t.add_argument("--task", required=True, choices=TASKS, help=_TASK_HELP)
    t.add_argument(
        "--code",
        required=True,
        metavar="CODE",
        help="multi-resolution code string, e.g. "
        "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64",
    )
    _add_training_options(t, epochs=3)
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
    _add_tracking_options(t, experiment_help="MLflow experiment (default: ncp-hpo)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--verbose", action="store_true", help="tracebacks and library logs")
    t.set_defaults(func=_cmd_train)

    s = subparsers.add_parser(
        "study",
        epilog=_STUDY_EPILOG,
        help="run or resume an Optuna study of real training trials (MLflow-tracked)",
        description=(
            "Search architecture codes for TASK with SAMPLER, training each trial for real. "
            "--trials is the total of COMPLETE + PRUNED trials: rerunning with the same "
            "--storage and --study-name runs only what is missing."
        ),
    )
    s.add_argument("--task", required=True, choices=TASKS, help=_TASK_HELP)
    s.add_argument("--sampler", choices=OPTUNA_SAMPLERS, default="ncp", help="search algorithm")
    s.add_argument(
        "--prior",
        metavar="SETTING|PATH",
        help="predictor prior for ncp/netadapt/neural-predictor: a NAS-Bench-MR setting "
        "(e.g. cls-50-1000; fitted now) or a saved NeuralPredictor (.safetensors)",
    )
    s.add_argument(
        "--data-dir",
        metavar="DIR",
        help="benchmark data for --prior SETTING (default: $NCP_HPO_DATA, then the user cache)",
    )
    s.add_argument(
        "--lam",
        type=_non_negative_float,
        help="FLOPs penalty of the ncp/netadapt/neural-predictor proposals (default: 0)",
    )
    s.add_argument(
        "--startup-trials",
        type=_non_negative_int,
        metavar="N",
        help="random trials before the sampler's model is used "
        "(default: the sampler's; 0 with a prior)",
    )
    s.add_argument(
        "--sampler-param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sampler argument, VALUE in JSON (repeatable), e.g. iterations=20",
    )
    s.add_argument(
        "--trials",
        type=_positive_int,
        required=True,
        metavar="N",
        help="total COMPLETE + PRUNED trials of the study (a resumed study runs the rest)",
    )
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
        help="training seed and sampler seed (a resumed study offsets the sampler's)",
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
        "--timeout", type=_positive_float, metavar="SECONDS", help="start no trial after this"
    )
    _add_training_options(s, epochs=3, device_defaults=True)
    b = s.add_argument_group("compute budget (a code over it is never trained)")
    b.add_argument(
        "--max-gflops",
        type=_cap_arg,
        metavar="G|none",
        help="at most G GFLOPs (multiply-accumulates per sample at the training input size, "
        f"exact); default on the CPU for cls: {_cpu_default('max_gflops')}, else none",
    )
    b.add_argument(
        "--max-params", type=_cap_arg, metavar="M|none", help="at most M million parameters"
    )
    _add_tracking_options(s, experiment_help="MLflow experiment (default: the study name)")
    s.add_argument("--log-models", action="store_true", help="log every trial's weights to MLflow")
    s.add_argument(
        "--quiet", action="store_true", help="print only the summary (no progress, no trial lines)"
    )
    s.add_argument("--verbose", action="store_true", help="Optuna's logs, with tracebacks")
    s.set_defaults(func=_cmd_study)


# ---------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------
def _parse_code(text: str, *, option: str = "--code") -> str:
    """The canonical code string of ``text`` (one-line error naming the bad dimension)."""
    from ncp_hpo.exceptions import InvalidCodeError
    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    try:
        return str(space.encode(space.decode(text.strip())))
    except InvalidCodeError as exc:
        text = str(exc)
        text = text[len("code: ") :] if text.startswith("code: ") else text
        raise TrainingCLIError(f"{option}: {text}") from None


def _device(name: str) -> str | None:
    if name == "auto":
        return None
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise TrainingCLIError(f"--device {name}: CUDA is not available here; use cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise TrainingCLIError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)"
            )
    return name


def _train_options(args: argparse.Namespace, device: str | None) -> dict[str, Any]:
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


def _check_dataset(task: str, opts: Mapping[str, Any]) -> None:
    """Build the loaders once now, so a bad size or folder is a one-line error up front."""
    from ncp_hpo.trainers.datasets import DEFAULT_DATASET, make_loaders

    name = opts.get("dataset", DEFAULT_DATASET.get(task))
    try:
        make_loaders(
            name,
            batch_size=opts.get("batch_size", 32),
            image_size=opts.get("image_size"),
            train_size=opts.get("train_size"),
            val_size=opts.get("val_size"),
            task=task,
        )
    except NCPError:
        raise
    except (ValueError, OSError) as exc:
        raise TrainingCLIError(f"dataset {name!r} for task {task!r}: {_short(exc)}") from None


def _tracking_hint(uri: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """How to look at the runs of ``uri`` (links open MLflow's "Model training" pages)."""
    from ncp_hpo.tracking import ui_url

    if uri.startswith(("http://", "https://")):
        return f"open {ui_url(uri, experiment_id, run_id)}"
    if uri.startswith("databricks"):
        return "open your Databricks workspace"
    return f"mlflow ui --backend-store-uri {uri}, then open {ui_url(uri, experiment_id, run_id)}"


def _human(n: float | int | None, unit: str = "") -> str:
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "-"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g} {unit}".rstrip()


# ---------------------------------------------------------------------------------------
# ncp-hpo train
# ---------------------------------------------------------------------------------------
@contextmanager
def _output(*, verbose: bool) -> Iterator[None]:
    """The worker's one-line CLI output, with MLflow's INFO logs (database setup) quiet."""
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    imported = "mlflow" in sys.modules
    if not verbose:
        # MLflow sets its logger to INFO when imported: import it first where it is used
        mlflow_log.setLevel(logging.WARNING)
    try:
        with _cli_output(verbose=verbose):
            yield
    finally:
        if imported:  # else the level is the one MLflow's import would have left
            mlflow_log.setLevel(level)


def _make_tracker(uri: str | None, experiment: str, *, verbose: bool, **kw: Any) -> MLflowTracker:
    import mlflow  # noqa: F401 - configures MLflow's loggers; quiet them afterwards

    from ncp_hpo.trainers import MLflowTracker

    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MLflowTracker(uri, experiment=experiment, **kw)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block (nothing when ``n`` is ``None``)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cmd_train(args: argparse.Namespace) -> int:
    with _output(verbose=args.verbose), _threads(args.threads):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    code = _parse_code(args.code)
    device = _device(args.device)
    weights = Path(args.save_weights).expanduser() if args.save_weights else None
    if weights is not None and not weights.parent.is_dir():
        raise TrainingCLIError(f"--save-weights: folder {weights.parent} does not exist")
    if weights is not None and weights.is_dir():
        raise TrainingCLIError(f"--save-weights: {weights} is a folder; give a file name")
    opts = _train_options(args, device)
    _check_dataset(args.task, opts)

    from ncp_hpo.trainers import train_code

    tracker = None
    if not args.no_mlflow:
        tracker = _make_tracker(
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
        raise TrainingCLIError(_short(exc)) from None

    print(f"code     {result.code or code}")
    print(
        f"task     {args.task}: {result.epochs} epoch(s) on {result.device}"
        f"{f' ({result.amp} autocast)' if result.amp else ''}"
        f"{'; DIVERGED (loss became NaN/inf)' if result.diverged else ''}"
    )
    width = max(len(k) for k in result.metrics) if result.metrics else 8
    for k, v in result.metrics.items():
        mark = "  <- main metric" if k == result.main_metric else ""
        print(f"  {k:<{width}}  {v:.4f}{mark}")
    analytic = (
        f" (closed form {_human(result.macs_analytic)})" if result.macs_analytic is not None else ""
    )
    print(f"MACs     {_human(result.macs)}{analytic}; FLOPs {_human(result.flops)} per sample")
    print(f"params   {result.params:,} ({_human(result.params)})")
    print(
        f"time     {result.wall_time_s:.1f} s wall; {result.samples_per_s:.0f} samples/s training"
    )

    if weights is not None:
        _save_weights(result, weights, task=args.task)
        print(f"weights  {weights}")
    if tracker is not None:
        run_id = _latest_run_id(tracker, since=started)
        if run_id is not None:
            print(
                f"MLflow   run {run_id} in experiment {tracker.experiment!r} at "
                f"{tracker.resolved_uri}; see it with: "
                f"{_tracking_hint(tracker.resolved_uri, tracker.experiment_id(), run_id)}"
            )
    return 0


def _save_weights(result: Any, path: Path, *, task: str) -> None:
    import torch

    if result.model is None:  # pragma: no cover - train_code always keeps the model
        raise TrainingCLIError("the training result holds no model to save")
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(path), metadata={"code": str(result.code), "task": task})
        else:
            torch.save(state, path)
    except OSError as exc:
        raise TrainingCLIError(f"--save-weights {path}: {_short(exc)}") from None


def _latest_run_id(tracker: MLflowTracker, *, since: float) -> str | None:
    """The run ``train_code`` just logged (the newest trial run of the experiment)."""
    if tracker.warned:
        return None
    try:
        runs = tracker.client.search_runs(
            [tracker.experiment_id()],
            filter_string=f"tags.`ncp_hpo.role` = 'trial' and attributes.start_time >= "
            f"{int(since * 1000) - 1000}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    except Exception:  # the run was logged; only the look-up failed
        return None
    return str(runs[0].info.run_id) if runs else None


# ---------------------------------------------------------------------------------------
# ncp-hpo study
# ---------------------------------------------------------------------------------------
def _make_pruner(name: str, epochs: int) -> BasePruner:
    import optuna

    from ncp_hpo.trainers._pruning import LastEpochGuard

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        # Samplers special-case HyperbandPruner (TPE filters trials by bracket), so it is
        # not wrapped; its brackets end at max_resource = epochs.
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return LastEpochGuard(optuna.pruners.MedianPruner(n_startup_trials=5), epochs)


def _load_prior(spec: str, *, data_dir: str | None, seed: int, log: Callable[[str], None]) -> Any:
    """A fitted :class:`~ncp_hpo.predictor.NeuralPredictor`: loaded, or fitted on a setting."""
    from ncp_hpo.predictor import NeuralPredictor, fit_setting_predictor

    path = Path(spec).expanduser()
    if path.suffix == ".safetensors" or path.exists() or os.sep in spec:
        if not path.is_file():
            raise TrainingCLIError(f"--prior {spec}: no such predictor file")
        predictor = NeuralPredictor.load(path)  # CheckpointError is an NCPError
        log(f"prior: predictor loaded from {path}")
        return predictor
    from ncp_hpo.benchmarks import load_benchmark

    table = load_benchmark(spec, data_dir)  # unknown / missing / corrupt: NCPError, one line
    t0 = time.perf_counter()
    predictor, info = fit_setting_predictor(table, seed=seed)
    # the validation split (500 codes): the test split is only what 2,000 + 500 leave over
    score = info.get("val_score") or info.get("test_score")
    fidelity = (
        f"; held-out Spearman {score.spearman_rho:.3f}, Kendall {score.kendall_tau:.3f} "
        f"on {score.n} codes"
        if score is not None
        else ""
    )
    log(
        f"prior: predictor fitted on {spec} ({len(table.codes)} codes) in "
        f"{time.perf_counter() - t0:.1f} s{fidelity}"
    )
    return predictor


def _make_sampler(
    args: argparse.Namespace, space: Any, seed: int | None, prior: NeuralPredictor | None
) -> BaseSampler:
    params = dict(args.sampler_param)
    if prior is not None:
        params["prior"] = prior
    if args.lam is not None:
        params["lam"] = args.lam
    return make_sampler(
        args.sampler, space=space, seed=seed, startup_trials=args.startup_trials, params=params
    )


def _validate_study_args(args: argparse.Namespace) -> None:
    if args.prior is not None and args.sampler not in PREDICTOR_SAMPLERS:
        raise TrainingCLIError(
            f"--prior applies to the {', '.join(PREDICTOR_SAMPLERS)} samplers, not {args.sampler}"
        )
    if args.lam is not None and args.sampler not in PREDICTOR_SAMPLERS:
        raise TrainingCLIError(
            f"--lam applies to the {', '.join(PREDICTOR_SAMPLERS)} samplers, not {args.sampler}"
        )
    if args.data_dir is not None and args.prior is None:
        raise TrainingCLIError("--data-dir is where --prior SETTING is looked up; add --prior")
    if args.study_name is not None and not args.study_name.strip():
        raise TrainingCLIError("--study-name must not be empty")


def _cmd_study(args: argparse.Namespace) -> int:
    with _output(verbose=args.verbose), _threads(args.threads):
        return _study(args)


def _study(args: argparse.Namespace) -> int:
    import optuna
    from optuna.trial import TrialState

    from ncp_hpo.runtime.worker import WorkerError, task_objective
    from ncp_hpo.trainers import TrainingObjective
    from ncp_hpo.trainers._budget import is_over_budget

    _validate_study_args(args)
    device = _device(args.device)
    _apply_device_defaults(args, device)
    if args.pruner == "auto":
        args.pruner = "none" if args.sampler in PREDICTOR_SAMPLERS else "median"
    log: Callable[[str], None] = (
        (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    )
    opts = _train_options(args, device)
    if args.seed is not None:
        opts["seed"] = args.seed
    _check_dataset(args.task, opts)
    enqueue = [_parse_code(c, option="--enqueue") for c in args.enqueue]
    name = (args.study_name or f"ncp-hpo-{args.task}-{args.sampler}").strip()
    max_flops, max_params = _caps(args)

    storage = _open_storage(args.storage)
    if args.storage is None:
        log("storage: in memory (pass --storage sqlite:///FILE to keep and resume the study)")

    tracker = None
    if not args.no_mlflow:
        tracker = _make_tracker(
            args.mlflow_uri,
            args.mlflow_experiment or name,
            verbose=args.verbose,
            log_model=args.log_models,
        )
    try:
        spec = task_objective(
            args.task,
            objective="metric",
            tracker=tracker,
            train_options={**opts, "progress": False},
            max_flops=max_flops,
            max_params=max_params,
        )
    except WorkerError as exc:
        raise TrainingCLIError(str(exc)) from None
    budget = getattr(spec.space, "budget", None)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        pruner=_make_pruner(args.pruner, args.epochs),
        load_if_exists=True,
    )
    _check_study(study, spec.description, spec.metric_names)
    main_metric = _main_metric(args.task)
    before = study.get_trials(deepcopy=False)
    done = _n_counted(before)
    remaining = args.trials - done
    if before:
        log(
            f"study {name!r}: resuming with {done} of {args.trials} trials done "
            f"({len(before)} in storage)"
        )
    if remaining <= 0:
        log(f"study {name!r} already holds {done} COMPLETE + PRUNED trials; nothing to run")
        _print_summary(study, main_metric, args.trials, wall=0.0, ran=0, tracker=tracker)
        return 0

    if budget is not None and args.sampler in ("tpe", "gp") and not before:
        # their random startup would mostly draw codes over the budget: start them from
        # random codes within it instead (seeded), then they learn the budget as a constraint
        n_start = 10 if args.startup_trials is None else args.startup_trials
        draws = spec.space.sample(n_start, seed=args.seed)
        enqueue += [str(spec.space.encode(c)) for c in draws]
    queued = _enqueue(study, enqueue, limit=remaining)
    if queued:
        log(f"queued {queued} code(s) to run first (--enqueue; startup codes within the budget)")
    prior = None
    if args.prior is not None:
        prior = _load_prior(args.prior, data_dir=args.data_dir, seed=args.seed or 0, log=log)
    # a resumed seeded study must not replay the random draws of its first run
    sampler_seed = None if args.seed is None else args.seed + len(before)
    study.sampler = _make_sampler(args, spec.space, sampler_seed, prior)

    stop_reason: list[str] = []
    failures_in_row = ran = refused = refused_in_row = 0
    progress = StudyProgress(
        total=remaining, epochs=args.epochs, metric=main_metric, enabled=not args.quiet
    )
    trainer = spec.objective
    if isinstance(trainer, TrainingObjective):  # epochs of the running trial
        trainer.train_options["callback"] = progress.on_epoch

    def objective(trial: optuna.trial.Trial) -> Any:
        progress.start_trial(trial.number)
        try:
            return spec.objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr(FAIL_ATTR, _short(exc))
            raise

    def on_done(study: optuna.Study, frozen: FrozenTrial) -> None:
        nonlocal failures_in_row, ran, refused, refused_in_row
        if is_over_budget(frozen):
            refused += 1
            refused_in_row += 1
            progress.end_trial("", value=None, counted=False)
            if refused_in_row >= MAX_REFUSALS_IN_ROW:
                stop_reason.append(
                    f"the {args.sampler} sampler proposed {refused_in_row} codes in a row over "
                    f"the compute budget ({budget.describe() if budget else '-'}); raise "
                    "--max-gflops/--max-params"
                )
                study.stop()
            return
        ran += 1
        line = _trial_line(frozen, main_metric)
        if refused_in_row:
            line += f"  (+{refused_in_row} over budget, not trained)"
        refused_in_row = 0
        value = frozen.value if frozen.state == TrialState.COMPLETE else None
        progress.end_trial(line, value=value)
        if _n_counted(study.get_trials(deepcopy=False)) >= args.trials:
            study.stop()
        if frozen.state == TrialState.FAIL:
            failures_in_row += 1
            if failures_in_row >= MAX_FAILURES_IN_ROW:
                stop_reason.append(
                    f"stopped after {failures_in_row} failed trials in a row; last: "
                    f"{frozen.user_attrs.get(FAIL_ATTR, 'unknown error')}"
                )
                study.stop()
        else:
            failures_in_row = 0

    log(
        f"study {name!r}: {remaining} trial(s) to run on {args.task} with {args.sampler}"
        f"{f' (prior {args.prior})' if args.prior else ''}, pruner {args.pruner}, "
        f"{args.epochs} epoch(s) each, {_geometry(opts)}"
        f"{f'; budget {budget.describe()}' if budget else ''}"
    )
    t0 = time.perf_counter()
    try:
        with _ParentRun(study, tracker, args, log) as parent_id, progress:
            study.optimize(
                objective,
                n_trials=None,
                timeout=args.timeout,
                catch=(Exception,),
                callbacks=[on_done],
                gc_after_trial=True,
            )
            if parent_id is not None and tracker is not None:
                _log_study_outcome(tracker, parent_id, study, main_metric)
    finally:
        if tracker is not None:
            tracker.close()  # parents opened lazily by trials (MLflow came back mid-study)
    wall = time.perf_counter() - t0
    _print_summary(study, main_metric, args.trials, wall=wall, ran=ran, tracker=tracker)
    if refused:
        print(f"{refused} proposed code(s) were over the compute budget and not trained")
    if stop_reason:
        raise TrainingCLIError(stop_reason[0])
    return 0


def _n_counted(trials: Sequence[FrozenTrial]) -> int:
    """COMPLETE + PRUNED trials, not counting codes refused for the compute budget."""
    from optuna.trial import TrialState

    from ncp_hpo.trainers._budget import is_over_budget

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_over_budget(t)
        for t in trials
    )


def _apply_device_defaults(args: argparse.Namespace, device: str | None) -> None:
    """Fill the options left unset with the per-device defaults (CPU: a cheaper study on
    the embedded dataset, see ``CPU_STUDY_DEFAULTS``)."""
    from ncp_hpo.trainers._budget import CPU_STUDY_DEFAULTS

    on_cpu = device == "cpu" or (device is None and not _cuda_available())
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


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _caps(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``(max_flops, max_params)`` in raw counts; ``None`` for no cap."""
    g, m = args.max_gflops, args.max_params
    flops = None if g is None or math.isinf(g) else g * 1e9
    n_params = None if m is None or math.isinf(m) else m * 1e6
    return flops, n_params


def _geometry(opts: Mapping[str, Any]) -> str:
    size = opts.get("image_size")
    return (
        f"batch {opts.get('batch_size', 32)}"
        f"{f', {size}x{size} input' if size else ', the dataset input size'}"
    )


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


def _open_storage(url: str | None) -> Any:
    import optuna

    from ncp_hpo.runtime.storage import open_storage

    if url is None:
        return optuna.storages.InMemoryStorage()
    # heartbeats: a trial of a killed run is failed and queued again on the next resume
    return open_storage(url, heartbeat=10, retries=1)


def _main_metric(task: str) -> str:
    from ncp_hpo.trainers import TASKS as STRATEGIES

    return STRATEGIES[task].main_metric


def _check_study(
    study: optuna.Study, description: Mapping[str, Any], metric_names: Sequence[str]
) -> None:
    """Record what the study optimises, or check that a resumed one optimises the same."""
    if [d.name.lower() for d in study.directions] != ["maximize"]:
        raise TrainingCLIError(
            f"study {study.study_name!r} exists with directions "
            f"{[d.name.lower() for d in study.directions]}; use another --study-name"
        )
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    if recorded is None:
        study.set_user_attr(OBJECTIVE_ATTR, dict(description))
        if study.metric_names is None:
            study.set_metric_names(list(metric_names))
        return
    if _describe_key(recorded) != _describe_key(description):
        raise TrainingCLIError(
            f"study {study.study_name!r} was created for {_describe(recorded)}, not "
            f"{_describe(description)}; use another --study-name"
        )
    changed = [
        f"{k} {recorded.get(k)!r} -> {description.get(k)!r}"
        for k in sorted(set(recorded) | set(description))
        if k not in ("kind", "task", "objective", "progress", "device")
        and recorded.get(k) != description.get(k)
    ]
    if changed:
        warnings.warn(
            f"study {study.study_name!r} continues with other training settings than it "
            f"started with ({', '.join(changed)}); its trials are not comparable",
            UserWarning,
            stacklevel=2,
        )


class _ParentRun:
    """The study's MLflow parent run: reused from the study user attribute on resume."""

    def __init__(
        self,
        study: optuna.Study,
        tracker: MLflowTracker | None,
        args: argparse.Namespace,
        log: Callable[[str], None],
    ) -> None:
        self.study, self.tracker, self.args, self.log = study, tracker, args, log
        self._ctx: Any = None

    def __enter__(self) -> str | None:
        tracker, study = self.tracker, self.study
        if tracker is None:
            return None
        stored = study.user_attrs.get(PARENT_RUN_ATTR)
        reused = False
        if stored and tracker.reachable():
            reused = self._adopt(str(stored))
        self._ctx = tracker.study_run(study.study_name, sampler=self.args.sampler)
        parent_id: str | None = self._ctx.__enter__()
        if parent_id is None:
            return None
        if parent_id != stored:
            study.set_user_attr(PARENT_RUN_ATTR, parent_id)
            study.set_user_attr(TRACKING_URI_ATTR, tracker.resolved_uri)
        if not reused:
            self._log_settings(parent_id)
        self.log(
            f"MLflow: {'resumed' if reused else 'parent'} run {parent_id} in experiment "
            f"{tracker.experiment!r} at {tracker.resolved_uri}"
        )
        return parent_id

    def _adopt(self, run_id: str) -> bool:
        """Reopen the stored parent run if it is in the tracker's experiment."""
        tracker = self.tracker
        assert tracker is not None
        try:
            run = tracker.client.get_run(run_id)
            if run.info.experiment_id != tracker.experiment_id():
                return False
            tracker.client.update_run(run_id, status="RUNNING")
        except Exception:  # deleted, or another tracking store: start a new parent
            return False
        # MLflowTracker finds a study's parent by tags; give it the recorded one instead
        tracker._parents[self.study.study_name] = run_id
        return True

    def _log_settings(self, run_id: str) -> None:
        from mlflow.entities import Param

        args = self.args
        settings = {
            "task": args.task,
            "sampler": args.sampler,
            "prior": args.prior,
            "lam": args.lam,
            "trials": args.trials,
            "pruner": args.pruner,
            "epochs": args.epochs,
            "seed": args.seed,
        }
        params = [Param(k, str(v)) for k, v in settings.items() if v is not None]
        assert self.tracker is not None
        try:
            self.tracker.client.log_batch(run_id, params=params)
        except Exception as exc:  # never costs the study
            self.tracker._unavailable(f"logging the study settings: {exc!r}")

    def __exit__(self, *exc: Any) -> bool:
        if self._ctx is not None:
            return bool(self._ctx.__exit__(*exc))
        return False


def _log_study_outcome(
    tracker: MLflowTracker, run_id: str, study: optuna.Study, main_metric: str
) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    metrics: dict[str, float] = {
        "n_complete": counts[TrialState.COMPLETE],
        "n_pruned": counts[TrialState.PRUNED],
        "n_failed": counts[TrialState.FAIL],
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = max(complete, key=lambda t: t.value if t.value is not None else -math.inf)
        metrics[f"best.{main_metric}"] = float(best.value or 0.0)
        metrics["best.trial"] = best.number
        for k in ("macs", "params"):
            if isinstance(best.user_attrs.get(k), int | float):
                metrics[f"best.{k}"] = float(best.user_attrs[k])
    from ncp_hpo.trainers.tracking import TrialRun

    TrialRun(tracker, run_id).log_metrics(metrics, step=len(trials))


def _trial_line(t: FrozenTrial, main_metric: str) -> str:
    from optuna.trial import TrialState

    head = f"trial {t.number:>3} {t.state.name:<8}"
    attrs = t.user_attrs
    if t.state == TrialState.COMPLETE:
        wall = attrs.get("wall_time_s")
        return (
            f"{head} {main_metric} {t.value:.4g}  MACs {_human(attrs.get('macs'))}  "
            f"params {_human(attrs.get('params'))}  "
            f"{f'{wall:.1f} s' if isinstance(wall, int | float) else ''}  "
            f"{attrs.get('code', '')}"
        )
    if t.state == TrialState.PRUNED:
        step = t.last_step
        value = t.intermediate_values.get(step) if step is not None else None
        shown = f"{value:.4g}" if isinstance(value, int | float) else "-"
        return f"{head} after epoch {step}: {main_metric} {shown}"
    return f"{head} {attrs.get(FAIL_ATTR, '')}".rstrip()


def _print_summary(
    study: optuna.Study,
    main_metric: str,
    budget: int,
    *,
    wall: float,
    ran: int,
    tracker: MLflowTracker | None,
) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    print(
        f"study {study.study_name!r}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed of "
        f"{budget} (COMPLETE + PRUNED); {ran} trial(s) run now in {wall:.1f} s"
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
            f"{_tracking_hint(str(uri), tracker.experiment_id())}"
        )


def _table(trials: Sequence[FrozenTrial], main_metric: str) -> str:
    header = ("rank", "trial", main_metric, "MACs", "params", "epochs", "time s", "code")
    rows = []
    for rank, t in enumerate(trials, start=1):
        a = t.user_attrs
        wall = a.get("wall_time_s")
        rows.append(
            (
                str(rank),
                str(t.number),
                f"{t.value:.4g}",
                _human(a.get("macs")),
                _human(a.get("params")),
                str(a.get("epochs_completed", "-")),
                f"{wall:.1f}" if isinstance(wall, int | float) else "-",
                str(a.get("code", "-")),
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


if __name__ == "__main__":  # pragma: no cover
    from ncp_hpo.cli import main

    sys.exit(main(sys.argv[1:]))
