"""Argument types and option groups shared by the ``worker``, ``train`` and ``study``
sub-commands.

Each type turns one command-line word into a value or raises :class:`argparse.ArgumentTypeError`
with one line naming what is wrong and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ncp_hpo._numerics import STUDY_THREADS

__all__ = [
    "QUIET_HELP",
    "TASK_HELP",
    "add_quiet_option",
    "add_threads_option",
    "add_tracking_options",
    "add_training_options",
    "cap_arg",
    "cpu_default",
    "device_arg",
    "key_value",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "sampler_param",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _float(text)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    v = _float(text)
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def key_value(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with a Python name as NAME and VALUE in JSON (else a bare string)."""
    key, eq, raw = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with a Python name as NAME, got {text!r}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string
    return key.strip(), value


def sampler_param(text: str) -> tuple[str, Any]:
    """A ``--sampler-param NAME=VALUE`` (:func:`key_value`); ``strategy=wta`` is read as
    ``strategy=winner_takes_all``, as ``search --strategy`` reads it."""
    key, value = key_value(text)
    if key == "strategy" and value == "wta":
        value = "winner_takes_all"
    return key, value


def cap_arg(text: str) -> float:
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


def device_arg(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (lower-cased)."""
    t = text.strip().lower()
    if t in ("cpu", "cuda", "auto") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")


TASK_HELP = "cls (top1), seg (mIoU), video (top1) or bev-det (AP50), on its embedded dataset"


def cpu_default(key: str) -> Any:
    """The CPU default of ``ncp-hpo study --task cls`` for ``key`` (for the help text)."""
    from ncp_hpo.runtime import CPU_STUDY_DEFAULTS

    return CPU_STUDY_DEFAULTS["cls"][key]


def add_training_options(
    p: argparse.ArgumentParser, *, epochs: int, device_defaults: bool = False
) -> None:
    """The ``training`` options of ``train`` and ``study`` (``device_defaults``: leave
    epochs and batch size unset, for the per-device defaults to fill)."""
    g = p.add_argument_group("training")
    on_cpu = "; on the CPU, cls: {}" if device_defaults else ""
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=None if device_defaults else epochs,
        metavar="N",
        help=f"training epochs (default: {epochs}{on_cpu.format(cpu_default('epochs'))})",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=None if device_defaults else 32,
        metavar="N",
        help=f"batch size (default: 32{on_cpu.format(cpu_default('batch_size'))})",
    )
    g.add_argument(
        "--image-size",
        type=positive_int,
        metavar="N",
        help="input side in pixels "
        f"(default: the dataset's{on_cpu.format(cpu_default('image_size'))})",
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
    cpu_lr = f"; {cpu_default('lr')} with adamw on the CPU" if device_defaults else ""
    g.add_argument(
        "--lr",
        type=positive_float,
        metavar="LR",
        help=f"learning rate (recipe default: 0.1 for sgd{cpu_lr})",
    )
    g.add_argument("--train-size", type=positive_int, metavar="N", help="training samples")
    g.add_argument("--val-size", type=positive_int, metavar="N", help="validation samples")
    g.add_argument(
        "--device",
        type=device_arg,
        default="auto",
        metavar="DEVICE",
        help="cpu, cuda, cuda:N or auto (default: auto, CUDA when available)",
    )
    add_threads_option(g)
    g.add_argument(
        "--amp",
        choices=("auto", "bf16", "fp16", "off"),
        default="auto",
        help="mixed precision; auto: bf16 on CUDA where supported, off on the CPU",
    )


QUIET_HELP = "print only the result: no progress bars, no informational lines"


def add_quiet_option(p: argparse.ArgumentParser | Any) -> None:
    """``--quiet``, one meaning on every command (see ``ncp-hpo --help``): only the result
    lines on stdout; warnings and errors still go to stderr."""
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def add_threads_option(p: argparse.ArgumentParser | Any) -> None:
    """``--threads``: torch threads per process, 1 unless asked (issue 23)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=STUDY_THREADS,
        metavar="N",
        help=f"torch threads per process (default: {STUDY_THREADS}; parallelism comes from "
        "--jobs/workers)",
    )


def add_tracking_options(p: argparse.ArgumentParser, *, experiment_help: str) -> None:
    """The ``MLflow tracking`` options of ``train``, ``study`` and ``worker``."""
    g = p.add_argument_group("MLflow tracking (on by default)")
    g.add_argument(
        "--mlflow-uri",
        metavar="URI",
        help="tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    g.add_argument("--mlflow-experiment", metavar="NAME", help=experiment_help)
    g.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
