"""``ncp-hpo worker``: one of many processes (or machines) sharing one Optuna study.

Start the same command N times, on one machine or many, against one storage::

    ncp-hpo worker --study nb201 --storage postgresql://ncp:pw@db:5432/ncp \\
        --benchmark nas-bench-201 --sampler ncp --trials 200 --seed $i

Every worker creates the study if it is missing (directions from the objective) or joins
it, then runs trials until the study holds ``--trials`` COMPLETE trials. Together the
workers finish exactly that many:

* before asking for a trial, a worker checks that COMPLETE + RUNNING trials leave room
  (else it waits, failing stale trials meanwhile, in case a running one dies);
* after asking, a trial whose number ranks past the budget among the COMPLETE and RUNNING
  trials (two workers raced for the last slot) is PRUNED unevaluated, with user attribute
  ``over_budget``. (``optuna.study.MaxTrialsCallback`` alone checks only after each trial,
  so N workers overshoot by up to N - 1.)

With a heartbeat (``--heartbeat``, on by default) a worker that dies mid-trial leaves a
trial that another worker marks FAILED after ``--grace`` seconds; it is queued again up to
``--retries`` times with the same parameters (see :mod:`ncp_hpo.runtime.storage`).

Each trial gets user attribute ``worker`` (``host:pid``); a failed one gets
``fail_reason``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import NCPError
from ncp_hpo.runtime.secrets import one_line, redact, remember_url
from ncp_hpo.search.registry import OPTUNA_SAMPLERS, TASKS, make_sampler

if TYPE_CHECKING:
    import optuna
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage

__all__ = [
    "OVER_BUDGET_ATTR",
    "ObjectiveSpec",
    "Worker",
    "WorkerError",
    "WorkerSummary",
    "register_worker_commands",
]

OVER_BUDGET_ATTR = "over_budget"
OBJECTIVE_ATTR = "ncp_hpo.objective"
WORKER_ATTR = "worker"
FAIL_ATTR = "fail_reason"  # = ncp_hpo.runtime.heartbeat.FAIL_ATTR (kept light: --help imports this)


class WorkerError(NCPError, RuntimeError):
    """A worker cannot start (bad configuration) or had to stop (too many failures).

    The message is passed through :func:`ncp_hpo.runtime.secrets.one_line` (redacted, one line).
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def _key_value(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with a Python name as KEY, got {text!r}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string
    return key.strip(), value


def register_worker_commands(subparsers: Any) -> None:
    """Add ``ncp-hpo worker``."""
    p = subparsers.add_parser(
        "worker",
        help="run trials of a shared study; start one per process or machine",
        description=(
            "Join (or create) STUDY in STORAGE and run trials until it holds --trials COMPLETE "
            "trials. Start any number of workers with the same --study/--storage; a killed "
            "worker's trial is failed after --grace seconds without a heartbeat and re-run."
        ),
        epilog="""examples:
  ncp-hpo worker --study nb201 --storage sqlite:///nb201.db --benchmark nas-bench-201 \\
      --trials 100 --seed 0
  ncp-hpo worker --study seg-mo --storage postgresql://USER:PW@HOST:5432/DB \\
      --benchmark seg --objective metric+flops --trials 200 --seed 1
  ncp-hpo worker --study digits --storage journal:digits.log --task cls --epochs 2 \\
      --trials 20
""",
    )
    p.add_argument("--study", required=True, metavar="NAME", help="study name (shared)")
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
        choices=("metric", "metric+flops"),
        default="metric",
        help="maximise the main metric, or also minimise FLOPs (MACs for --task): two "
        "objectives unless --lam is given",
    )
    p.add_argument(
        "--lam",
        type=_non_negative_float,
        help="benchmark only: scalarise metric+flops as metric - LAM * z(flops)",
    )
    p.add_argument(
        "--mode",
        choices=("surrogate", "table", "exact"),
        help="benchmark evaluation mode (default: exact for nas-bench-201, else surrogate)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="look for benchmark files here first")
    p.add_argument("--sampler", choices=OPTUNA_SAMPLERS, default="ncp", help="search algorithm")
    p.add_argument(
        "--startup-trials",
        type=_non_negative_int,
        metavar="N",
        help="random trials before the sampler's model is used (default: the sampler's)",
    )
    p.add_argument(
        "--sampler-param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sampler argument, VALUE in JSON (repeatable), e.g. iterations=20 or "
        "predictor_params='{\"epochs\": 60}'",
    )
    p.add_argument(
        "--trials",
        type=_positive_int,
        metavar="N",
        help="the study's total budget of COMPLETE trials (all workers together); "
        "(default: run until stopped)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="sampler seed (give each worker its own, e.g. its index)",
    )
    p.add_argument(
        "--heartbeat",
        type=_non_negative_int,
        default=10,
        metavar="SECONDS",
        help="heartbeat interval of a running trial, 0 to disable",
    )
    p.add_argument(
        "--grace",
        type=_positive_int,
        metavar="SECONDS",
        help="seconds without a heartbeat before a trial counts as dead (default: 2x --heartbeat)",
    )
    p.add_argument(
        "--retries",
        type=_non_negative_int,
        default=2,
        metavar="N",
        help="times a dead worker's trial is queued again",
    )
    p.add_argument(
        "--storage-retry",
        type=_non_negative_float,
        default=60.0,
        metavar="SECONDS",
        help="ride out a storage outage this long (retrying, heartbeats kept), then stop "
        "with one line",
    )
    p.add_argument(
        "--max-failures",
        type=_positive_int,
        default=5,
        metavar="N",
        help="stop this worker after N failed trials in a row",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="start no trial after this many seconds",
    )
    p.add_argument(
        "--poll",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="wait between checks when the budget is held by other workers",
    )
    p.add_argument(
        "--mlflow-uri", metavar="URI", help="log every trial to this MLflow tracking URI"
    )
    p.add_argument(
        "--mlflow-experiment", metavar="NAME", help="MLflow experiment (default: the study name)"
    )
    train = p.add_argument_group("real training (--task)")
    train.add_argument(
        "--epochs", type=_positive_int, default=1, metavar="N", help="epochs per trial"
    )
    train.add_argument(
        "--dataset",
        metavar="NAME|DIR",
        help="embedded dataset or image folder (default: the task's embedded dataset)",
    )
    train.add_argument(
        "--batch-size", type=_positive_int, default=32, metavar="N", help="batch size"
    )
    train.add_argument("--train-size", type=_positive_int, metavar="N", help="training samples")
    train.add_argument("--val-size", type=_positive_int, metavar="N", help="validation samples")
    train.add_argument("--device", help="torch device (default: CUDA when available)")
    train.add_argument(
        "--max-gflops",
        type=_positive_float,
        metavar="G",
        help="compute budget: never train a code above G GFLOPs (multiply-accumulates "
        "per sample at the training input size)",
    )
    train.add_argument(
        "--max-params",
        type=_positive_float,
        metavar="M",
        help="never train a code above M million parameters",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.add_argument("--verbose", action="store_true", help="Optuna's logs, with tracebacks")
    p.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    with _cli_output(verbose=args.verbose):
        previous = signal.signal(signal.SIGTERM, _sigterm)
        try:
            worker = Worker.from_args(args)
            summary = worker.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(summary.line(), flush=True)
    if summary.stopped_reason:
        raise WorkerError(summary.stopped_reason)
    return 0


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the running trial is told FAIL; its budget slot is freed


@contextmanager
def _cli_output(*, verbose: bool) -> Iterator[None]:
    """One-line warnings, no experimental-feature noise, Optuna quiet unless verbose
    (restored afterwards, so calling ``main`` in-process leaves no trace)."""
    import optuna

    level = optuna.logging.get_verbosity()
    quiet = [logging.getLogger(name) for name in ("alembic", "mlflow")]
    levels = [lg.level for lg in quiet]
    fmt = warnings.formatwarning
    with warnings.catch_warnings():
        optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        url_env = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"  # two lines per MLflow run
        url_setting = os.environ.get(url_env)
        if not verbose:
            os.environ[url_env] = "true"
            warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
            for lg in quiet:
                lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            if url_setting is None:
                os.environ.pop(url_env, None)
            else:
                os.environ[url_env] = url_setting
            warnings.formatwarning = fmt
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
            optuna.logging.set_verbosity(level)


def _one_line_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> str:
    text = redact(" ".join(str(message).split()))
    return f"ncp-hpo: warning: {text}\n"


# ---------------------------------------------------------------------------------------
# objectives
# ---------------------------------------------------------------------------------------
@dataclass
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
    lam: float | None = None,
    data_dir: str | None = None,
    tracker: Any = None,
) -> ObjectiveSpec:
    """An :class:`ObjectiveSpec` over a benchmark table (optionally logged to MLflow)."""
    from ncp_hpo.benchmarks import BenchmarkObjective

    try:
        obj = BenchmarkObjective(
            setting,
            mode=mode,  # type: ignore[arg-type]
            objective=objective,  # type: ignore[arg-type]
            lam=lam,
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
        "lam": lam,
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
) -> ObjectiveSpec:
    """An :class:`ObjectiveSpec` that trains each code for real (:mod:`ncp_hpo.trainers`).

    ``max_flops``/``max_params`` set a compute budget: the spec's space is restricted to it
    (predictor-based samplers never propose a code over it) and the objective refuses such
    a code without training it (see :class:`~ncp_hpo.trainers.TrainingObjective`).
    """
    from ncp_hpo.trainers import TASKS as STRATEGIES
    from ncp_hpo.trainers import TrainingObjective

    objectives = ("metric",) if objective == "metric" else ("metric", "macs")
    opts = {k: v for k, v in (train_options or {}).items() if v is not None}
    try:
        obj = TrainingObjective(
            task,
            objectives=objectives,
            tracker=tracker,
            max_flops=max_flops,
            max_params=max_params,
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
        metric_names=[main, "macs"] if two else [main],
        space=obj.space,
        description={
            "kind": "task",
            "task": task,
            "objective": objective,
            **opts,
            **{k: v for k, v in caps.items() if v is not None},
        },
        tracker=tracker,
    )


# ---------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------
# the worker
# ---------------------------------------------------------------------------------------
@dataclass
class WorkerSummary:
    """What one worker did, and where the study stands."""

    worker: str
    study: str
    budget: int | None
    ran: int = 0
    complete: int = 0
    failed: int = 0
    over_budget: int = 0
    study_complete: int = 0
    wall_time_s: float = 0.0
    stopped_reason: str | None = None
    storage: str = ""  # outages seen, when there were any

    def line(self) -> str:
        budget = f"/{self.budget}" if self.budget is not None else ""
        outages = f"; {self.storage}" if self.storage else ""
        return (
            f"worker {self.worker}: {self.ran} trials here ({self.complete} complete, "
            f"{self.failed} failed, {self.over_budget} over budget) in {self.wall_time_s:.1f} s; "
            f"study {self.study!r}: {self.study_complete}{budget} complete{outages}"
        )


class Worker:
    """Runs trials of one shared study until its COMPLETE budget is reached.

    Args:
        study_name: the study (created with the objective's directions if missing).
        storage: an Optuna storage shared with the other workers (see
            :func:`ncp_hpo.runtime.storage.open_storage`).
        spec: the objective and the study shape it needs.
        sampler: this worker's sampler.
        budget: total COMPLETE trials of the study (all workers); ``None``: until stopped.
        max_failures: stop after this many failed trials in a row.
        timeout: start no trial after this many seconds.
        poll: seconds between checks while other workers hold the remaining budget.
        log: where per-trial lines go (``None``: nowhere).
    """

    def __init__(
        self,
        study_name: str,
        storage: BaseStorage,
        spec: ObjectiveSpec,
        sampler: BaseSampler,
        *,
        budget: int | None = None,
        max_failures: int = 5,
        timeout: float | None = None,
        poll: float = 2.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.spec = spec
        self.sampler = sampler
        self.budget = budget
        self.max_failures = max_failures
        self.timeout = timeout
        self.poll = poll
        self.log = log
        self.max_storage_errors = 3
        self._current: int | None = None  # trial id of the trial in progress
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        from ncp_hpo.runtime.faults import active_faults

        self._faults = active_faults()

    # -- construction from the command line ------------------------------------------------
    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Worker:
        from ncp_hpo.runtime.storage import open_storage

        remember_url(args.storage)
        if not args.storage:
            raise WorkerError("no storage: pass --storage URL or set NCP_HPO_STORAGE")
        if args.task is None and (args.max_gflops is not None or args.max_params is not None):
            raise WorkerError("--max-gflops/--max-params apply to --task (real training)")
        if args.grace is not None and args.heartbeat == 0:
            raise WorkerError("--grace needs a heartbeat; drop --heartbeat 0")
        if args.grace is not None and args.grace <= args.heartbeat:
            raise WorkerError(
                f"--grace ({args.grace} s) must exceed --heartbeat ({args.heartbeat} s), "
                "or live trials would be failed"
            )
        if args.lam is not None and args.task:
            raise WorkerError("--lam applies to --benchmark only")
        if args.lam is not None and args.objective != "metric+flops":
            raise WorkerError("--lam scalarises metric and FLOPs: add --objective metric+flops")
        if args.task and (args.mode or args.data_dir):
            raise WorkerError("--mode and --data-dir apply to --benchmark only")
        if not args.study.strip():
            raise WorkerError("--study must not be empty")
        storage = open_storage(
            args.storage,
            heartbeat=args.heartbeat,
            grace=args.grace,
            retries=args.retries,
            retry_window=args.storage_retry,
        )
        tracker = _tracker(args) if args.mlflow_uri else None
        if args.benchmark is not None:
            spec = benchmark_objective(
                args.benchmark,
                mode=args.mode,
                objective=args.objective,
                lam=args.lam,
                data_dir=args.data_dir,
                tracker=tracker,
            )
        else:
            spec = task_objective(
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
        if tracker is not None:
            spec.close = tracker.close
        sampler = make_sampler(
            args.sampler,
            space=spec.space,
            seed=args.seed,
            startup_trials=args.startup_trials,
            params=dict(args.sampler_param),
        )
        return cls(
            args.study.strip(),
            storage,
            spec,
            sampler,
            budget=args.trials,
            max_failures=args.max_failures,
            timeout=args.timeout,
            poll=args.poll,
            log=None if args.quiet else (lambda s: print(s, flush=True)),
        )

    # -- the study ---------------------------------------------------------------------------
    def open_study(self) -> optuna.Study:
        """Create the study, or join it after checking it fits this worker's objective."""
        import optuna

        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=self.spec.directions,  # type: ignore[arg-type]
            load_if_exists=True,
        )
        have = [d.name.lower() for d in study.directions]
        if have != self.spec.directions:
            raise WorkerError(
                f"study {self.study_name!r} exists with directions {have}, but this worker's "
                f"objective needs {self.spec.directions}; use another --study or --objective"
            )
        attrs = study.user_attrs
        recorded = attrs.get(OBJECTIVE_ATTR)
        if recorded is None:
            study.set_user_attr(OBJECTIVE_ATTR, self.spec.description)
            if study.metric_names is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(self.spec.metric_names)
        elif _describe_key(recorded) != _describe_key(self.spec.description):
            raise WorkerError(
                f"study {self.study_name!r} was created for {_describe(recorded)}, but this "
                f"worker evaluates {_describe(self.spec.description)}; use another --study"
            )
        return study

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        """Run trials until the budget is met, the timeout passes or failures pile up."""
        from optuna.trial import TrialState

        from ncp_hpo.runtime.trial import run_trial

        start = time.monotonic()
        summary = WorkerSummary(self.worker_id, self.study_name, self.budget)
        health = getattr(self.storage, "health", None)
        if health is not None:
            health.listener = self._on_storage
        stale: Any = getattr(self.storage, "get_heartbeat_stale_trial_callback", lambda: None)()
        if self.spec.tracker is not None and hasattr(stale, "listeners"):
            stale.listeners.append(self._tag_stale)
        study = self._open_study_or_stop()  # WorkerError: one line, no summary
        failures_in_row, errors_in_row = 0, 0
        try:
            while True:
                try:
                    if not self._may_start(study, start):
                        break
                    frozen, elsewhere = run_trial(
                        study, self._objective, storage=self.storage, on_start=self._on_start
                    )
                    errors_in_row = 0
                except Exception as exc:
                    stop = self._stop_reason(exc)
                    errors_in_row += 1
                    if stop is None and errors_in_row <= self.max_storage_errors:
                        self._emit(f"error (retrying): {_short(exc)}")
                        time.sleep(min(30.0, self.poll * 2**errors_in_row))
                        continue
                    summary.stopped_reason = stop or (
                        f"stopped after {errors_in_row} errors in a row; last: {_short(exc)}"
                    )
                    self._leave_nothing_running(summary)
                    break
                self._current = None
                failures_in_row = self._tally(summary, frozen, elsewhere, failures_in_row)
                if failures_in_row >= self.max_failures:
                    summary.stopped_reason = (
                        f"stopped after {failures_in_row} failed trials in a row; last: "
                        f"{frozen.user_attrs.get(FAIL_ATTR, 'unknown error')}"
                    )
                    break
        except KeyboardInterrupt:
            self._current = None  # run_trial told it FAIL ("interrupted")
            raise
        finally:
            summary.wall_time_s = time.monotonic() - start
            summary.storage = _health_line(health)
            try:
                summary.study_complete = self._counts(study)[TrialState.COMPLETE]
            except Exception:  # the storage is gone; the summary says -1
                summary.study_complete = -1
            if self.budget is not None and summary.study_complete >= self.budget:
                self.spec.close()
        return summary

    def _tally(
        self, summary: WorkerSummary, frozen: optuna.trial.FrozenTrial, elsewhere: bool, row: int
    ) -> int:
        """Count a finished trial; the new count of failed trials in a row."""
        from optuna.trial import TrialState

        from ncp_hpo.runtime.trial import tag_failure

        summary.ran += 1
        if frozen.user_attrs.get(OVER_BUDGET_ATTR):
            summary.over_budget += 1
            return row
        if elsewhere:
            # another worker failed our trial as stale (we stalled or were cut off past the
            # grace period); it was queued again if retries are on: carry on
            summary.failed += 1
            self._emit(f"trial {frozen.number} was failed by another worker (missed heartbeats)")
            return row
        if frozen.state == TrialState.COMPLETE:
            summary.complete += 1
            self._emit(f"trial {frozen.number} COMPLETE {_values(frozen.values)}")
            return 0
        reason = str(frozen.user_attrs.get(FAIL_ATTR, "unknown error"))
        tag_failure(self.spec.tracker, self.study_name, frozen, _run_params(self.spec))
        if frozen.state == TrialState.FAIL:
            summary.failed += 1
            self._emit(f"trial {frozen.number} FAIL: {reason}")
            return row + 1
        self._emit(f"trial {frozen.number} {frozen.state.name}")
        return row

    def _open_study_or_stop(self) -> optuna.Study:
        """:meth:`open_study`, with a storage error turned into one :class:`WorkerError`."""
        try:
            return self.open_study()
        except WorkerError:
            raise
        except Exception as exc:
            reason = self._stop_reason(exc)
            if reason is None:
                raise
            raise WorkerError(reason) from None

    def _stop_reason(self, exc: BaseException) -> str | None:
        """The one-line reason to stop for a storage error, ``None`` for other errors."""
        from ncp_hpo.runtime.errors import root_cause
        from ncp_hpo.runtime.heartbeat import StorageUnavailableError
        from ncp_hpo.runtime.trial import is_storage_error

        if isinstance(exc, StorageUnavailableError):
            return f"stopped: {exc}"
        if is_storage_error(exc):
            return f"stopped on a storage error: {root_cause(exc)}"
        return None

    def _leave_nothing_running(self, summary: WorkerSummary) -> None:
        """Best effort when stopping on an error: fail this worker's trial in progress (one
        try; if the storage is gone, any worker fails it as stale once it is back)."""
        from optuna.trial import TrialState

        trial_id, self._current = self._current, None
        if trial_id is None:
            return
        try:
            if not self.storage.get_trial(trial_id).state.is_finished():
                self.storage.set_trial_user_attr(
                    trial_id,
                    FAIL_ATTR,
                    "worker stopped: " + (summary.stopped_reason or "error")[:300],
                )
                self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except Exception:
            summary.stopped_reason = (
                f"{summary.stopped_reason}; its trial in progress stays RUNNING until the "
                "storage is back, then any worker fails it as stale and queues it again"
            )

    def _on_start(self, trial: optuna.trial.Trial) -> None:
        self._current = trial._trial_id
        trial.set_user_attr(WORKER_ATTR, self.worker_id)

    def _on_storage(self, event: str, detail: str) -> None:
        self._emit(f"storage {event}: {detail}")

    def _tag_stale(self, frozen: optuna.trial.FrozenTrial) -> None:
        from ncp_hpo.runtime.trial import tag_failure

        tag_failure(self.spec.tracker, self.study_name, frozen, _run_params(self.spec))

    def _emit(self, text: str) -> None:
        if self.log is not None:
            self.log(redact(f"[{self.worker_id}] {text}"))

    @staticmethod
    def _counts(study: optuna.Study) -> dict[Any, int]:
        from collections import Counter

        from optuna.trial import TrialState

        counts: Counter[Any] = Counter()
        for t in study.get_trials(deepcopy=False):
            if not t.user_attrs.get(OVER_BUDGET_ATTR):
                counts[t.state] += 1
        return {s: counts.get(s, 0) for s in TrialState}

    def _may_start(self, study: optuna.Study, start: float) -> bool:
        """Whether this worker should ask for another trial (waits while others hold it)."""
        import optuna
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        waited = False
        while True:
            if self.timeout is not None and time.monotonic() - start > self.timeout:
                return False
            if self.budget is None:
                return True
            counts = self._counts(study)
            done, running = counts[TrialState.COMPLETE], counts[TrialState.RUNNING]
            if done >= self.budget:
                return False
            if counts[TrialState.WAITING] > 0 or done + running < self.budget:
                return True
            if not waited:
                self._emit(
                    f"budget held: {done} complete + {running} running of {self.budget}; "
                    "waiting in case a running trial fails"
                )
                waited = True
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)  # a dead worker's trial frees its slot (is retried)
            time.sleep(self.poll)

    def _over_budget(self, trial: optuna.trial.Trial) -> bool:
        from optuna.trial import TrialState

        if self.budget is None:
            return False
        ahead = 0
        for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
        ):
            if t.number < trial.number and not t.user_attrs.get(OVER_BUDGET_ATTR):
                ahead += 1
        return ahead >= self.budget

    def _objective(self, trial: optuna.trial.Trial) -> Any:
        """The spec's objective, after the budget check and any injected faults (the
        outcome, and its ``fail_reason``, is classified by :func:`run_trial`)."""
        import optuna

        from ncp_hpo.runtime.faults import inject

        if self._over_budget(trial):
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            raise optuna.TrialPruned("the study's budget is taken by other workers' trials")
        if self._faults:
            self.spec.space.suggest(trial)  # faults fire after the code is chosen
            if inject(self._faults, trial.number):
                return float("nan")
        return self.spec.objective(trial)


def _tracker(args: argparse.Namespace) -> Any:
    """An MLflow tracker for ``--mlflow-uri``, or ``None`` (with one warning) when the
    server does not answer."""
    from ncp_hpo.trainers.tracking import MLflowTracker

    tracker = MLflowTracker(
        args.mlflow_uri,
        experiment=args.mlflow_experiment or args.study,
        log_model=False,
        log_architecture=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = tracker.reachable()
    if not ok:  # like `study`: one warning, and the trials still run (kept in the storage)
        print(
            redact(
                f"warning: MLflow tracking at {args.mlflow_uri} is unreachable "
                f"({tracker.last_error}); trials run and are kept in the Optuna storage only"
            ),
            file=sys.stderr,
        )
        return None
    tracker.warned = False
    return tracker


def _short(exc: BaseException) -> str:
    """``Type: message`` on one line (password masked)."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(line)[:500]


def _health_line(health: Any) -> str:
    if health is None or not health.outages:
        return ""
    longest = max(health.longest_outage_s, health.down_for())  # the last may go on
    return (
        f"storage: {health.outages} outage(s), longest {longest:.1f} s, "
        f"{health.errors} failed call(s)"
    )


def _run_params(spec: ObjectiveSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.description.items() if v is not None}


def _values(values: Sequence[float] | None) -> str:
    if not values:
        return ""
    return " ".join(f"{v:.6g}" for v in values)


def _describe_key(d: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = ("kind", "setting", "task", "mode", "objective", "lam")
    return tuple(d.get(k) for k in keys)


def _describe(d: Mapping[str, Any]) -> str:
    if d.get("kind") == "task":
        return f"task {d.get('task')!r} ({d.get('objective')})"
    lam = f", lam={d['lam']}" if d.get("lam") is not None else ""
    return f"benchmark {d.get('setting')!r} ({d.get('mode')}, {d.get('objective')}{lam})"


if __name__ == "__main__":  # pragma: no cover
    from ncp_hpo.cli import main

    sys.exit(main(["worker", *sys.argv[1:]]))
