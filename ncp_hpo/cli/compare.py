"""``ncp-hpo compare``: samplers head to head on a benchmark (:mod:`ncp_hpo.experiments`).

Heavy imports (Optuna, torch, MLflow, matplotlib) happen inside the handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ncp_hpo.benchmarks import OBJECTIVES
from ncp_hpo.cli._options import add_quiet_option
from ncp_hpo.cli._parser import add_deprecated_alias
from ncp_hpo.search import DEFAULT_SAMPLERS, SAMPLERS

__all__ = ["register_compare_commands"]

_DEFAULT_SAMPLERS = ",".join(DEFAULT_SAMPLERS)
_ALL = ", ".join(SAMPLERS)

_EPILOG = f"""\
samplers: {_ALL}
(default: {_DEFAULT_SAMPLERS}; ncp is NCPSampler's default, its "local" mode;
ncp-paper / ncp-guided / ncp-local are NCPSampler(mode="paper" / "guided" / "local");
gp is slow on NAS-Bench-MR; cmaes needs the 'cmaes' package and samples NAS-Bench-201's
categorical edges at random; ax drives an Ax Client with
ncp_generation_strategy, 10 Sobol trials then the NCP node; ax-default drives an Ax
Client with the strategy Ax picks itself, 5 Sobol trials then BoTorch: slow, its time
per trial grows with the study, seconds per trial by 50 trials).

outputs under --out: summary.md, summary.csv, runs.csv, results.json, anytime.png
(+ pareto.png with two objectives) and studies/<benchmark>-<sampler>-seed<k>.db (one
Optuna SQLite study per sampler x seed). Rerunning with the same --out resumes: finished
studies are skipped, unfinished ones continue to --trials with the trials an uninterrupted
run would have had. Ctrl-C stops cleanly (running trials end, none starts; exit 130).

--protocol paper runs the paper's fixed-budget protocol instead (Table 2: NCP continuous and
winner-takes-all at lambda 0.3/0.5/0.7 from the paper's start code vs random search, neural
predictor and NetAdapt with a predictor fitted on 2,000 table codes; Tables 3-4:
multi-task and transfer rows), writing paper_table2/3/4.md/.csv and paper_protocol.json.
It takes --seeds, --out, --data-dir and the MLflow options; --samplers, --trials,
--budgets, --objective, --flops-weight, --mode and --jobs are refused (it fixes them itself).

examples:
  ncp-hpo compare --benchmark nas-bench-201 --trials 100 --seeds 10
  ncp-hpo compare --benchmark seg --objective metric+flops --flops-weight 0.5 \\
      --samplers ncp,random,tpe
  ncp-hpo compare --benchmark nas-bench-201 --max-flops p25 --samplers ncp,tpe,random
  ncp-hpo compare --benchmark seg --mode table --prior cls-50-1000 \\
      --samplers ncp+prior,ncp,tpe,random
  ncp-hpo compare --benchmark seg --protocol paper --seeds 3
"""


def register_compare_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare samplers head to head on a benchmark (tables, plots, tests)",
        description=(
            "Run every sampler through the same loop on the same benchmark objective, for "
            "several seeds, and report best-found at budgets (median, IQR), regret, wall "
            "time per trial and a paired Wilcoxon test against NCP."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--benchmark",
        required=True,
        metavar="SETTING",
        help="setting: nas-bench-201, seg, cls-50-1000, video, ...",
    )
    _add_loop_options(p)
    add_deprecated_alias(p, "--lam", "--flops-weight")  # its name until 0.2.0
    _add_output_options(p)
    p.set_defaults(func=_cmd_compare)


def _add_loop_options(p: argparse.ArgumentParser) -> None:
    """The study loop's options (``--protocol optuna``)."""
    # options --protocol paper does not use default to None, so an explicit one is refused
    p.add_argument(
        "--samplers",
        default=None,
        metavar="NAMES",
        help=f"comma-separated sampler names (default: {_DEFAULT_SAMPLERS})",
    )
    p.add_argument(
        "--trials", type=int, default=None, metavar="N", help="trials per study (default: 100)"
    )
    p.add_argument("--seeds", type=int, default=10, metavar="N", help="seeds 0..N-1")
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help="main metric alone (the default); or two objectives, the metric up and the "
        "table's FLOPs or parameter count down (metric+flops: one objective with "
        "--flops-weight)",
    )
    p.add_argument(
        "--flops-weight",
        type=float,
        default=None,
        metavar="W",
        help="scalarise --objective metric+flops into one objective, metric - W * z(flops), "
        "z(flops) being the FLOPs standardised over the benchmark table; not a sampler's "
        "FLOPs penalty, lam (default: none, two objectives)",
    )
    p.add_argument(
        "--max-flops",
        default=None,
        metavar="B|pNN",
        help="budgeted search: maximise the metric subject to the code's exact FLOPs <= B, "
        "in the table's unit (MFLOPs on nas-bench-201, GFLOPs on NAS-Bench-MR), or pNN, the "
        "NNth percentile of the table's FLOPs (e.g. p25); predictor samplers propose only "
        "within it, a code over it from Optuna's samplers is refused unevaluated and not "
        "counted (default: no budget)",
    )
    p.add_argument(
        "--prior",
        default=None,
        metavar="SETTING",
        help="a NAS-Bench-MR setting (not the benchmark) whose predictor the "
        "<sampler>+prior entries of --samplers start from, e.g. --samplers "
        "ncp+prior,ncp,tpe --prior cls-50-1000: NCPSampler(prior=...) beside the same "
        "sampler from scratch; fitted once, then read from the user cache (default: none)",
    )
    p.add_argument(
        "--mode",
        choices=("surrogate", "table", "exact"),
        default=None,
        help="evaluation: surrogate oracle / snap to unused table codes / exact table "
        "(default: exact for nas-bench-201, surrogate otherwise)",
    )
    p.add_argument(
        "--budgets",
        default=None,
        metavar="N,N,...",
        help="trial counts at which best-found is reported (default: 10,25,50,100)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes running sampler x seed studies in parallel (default: the CPUs "
        "this process may use, at most 4; 1 runs everything in this process)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Where the data and outputs live, MLflow, the protocol and verbosity."""
    p.add_argument(
        "--out", metavar="DIR", help="output folder (default: ./ncp-compare-<benchmark>)"
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="benchmark files folder (default: $NCP_HPO_DATA, then the user cache)",
    )
    p.add_argument(
        "--mlflow-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    p.add_argument(
        "--mlflow-experiment",
        default="ncp-hpo-compare",
        metavar="NAME",
        help="MLflow experiment",
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument(
        "--protocol",
        choices=("optuna", "paper"),
        default="optuna",
        help="optuna: the study loop; paper: the paper's Table 2-4 protocol",
    )
    add_quiet_option(p)


def _default_jobs() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    from ncp_hpo.exceptions import CompareError

    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise CompareError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in vals):
        raise CompareError(f"{flag} values must be >= 1, got {text!r}")
    return vals


def _cmd_compare(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks import get_setting
    from ncp_hpo.exceptions import CompareError
    from ncp_hpo.experiments.compare import CompareConfig

    get_setting(args.benchmark)  # unknown benchmark: one line naming the known ones
    if args.quiet:  # nor MLflow's "View run ... at" line
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if args.protocol == "paper":
        from ncp_hpo._numerics import deterministic_threads
        from ncp_hpo.experiments.paper import (
            PAPER_PROTOCOL_USES,
            run_paper_protocol,
            unused_options,
        )

        # the study loop's options default to None: any other value was given explicitly
        conflict = unused_options(
            [o for o in PAPER_PROTOCOL_USES if getattr(args, o.replace("-", "_")) is not None]
        )
        if conflict:
            raise CompareError(conflict)
        if args.max_flops is not None:
            raise CompareError("--protocol paper takes no --max-flops (its budget is fixed)")
        if args.prior is not None:
            raise CompareError("--protocol paper takes no --prior (Table 4 fixes its transfers)")

        with deterministic_threads():
            res = run_paper_protocol(
                args.benchmark,
                out=args.out or f"ncp-compare-{args.benchmark}",
                seeds=args.seeds,
                data_dir=args.data_dir,
                mlflow=not args.no_mlflow,
                mlflow_uri=args.mlflow_uri,
                mlflow_experiment=args.mlflow_experiment,
                progress=not args.quiet and sys.stderr.isatty(),
            )
        if not args.quiet:
            print(res.files["table2_md"].read_text())
        print(f"written: {', '.join(str(p) for p in res.files.values())}")
        return 0
    samplers = tuple(
        s.strip()
        for s in (_DEFAULT_SAMPLERS if args.samplers is None else args.samplers).split(",")
        if s.strip()
    )
    trials = 100 if args.trials is None else args.trials
    config = CompareConfig(
        benchmark=args.benchmark,
        samplers=samplers,
        trials=trials,
        seeds=args.seeds,
        objective=args.objective or "metric",
        flops_weight=args.flops_weight,
        mode=args.mode,
        jobs=args.jobs if args.jobs is not None else _default_jobs(),
        out=args.out,
        data_dir=args.data_dir,
        budgets=_int_list("10,25,50,100" if args.budgets is None else args.budgets, "--budgets"),
        mlflow=not args.no_mlflow,
        mlflow_uri=args.mlflow_uri,
        mlflow_experiment=args.mlflow_experiment,
        progress=not args.quiet and sys.stderr.isatty(),  # no bars in a log file
        max_flops=args.max_flops,
        prior=args.prior,
    )  # checks every option first: one-line errors
    if config.max_flops is not None:
        print(_budget_text(config))
    from ncp_hpo.experiments.compare import run_comparison, startup_warning

    warning = startup_warning(samplers, trials)
    if warning:
        print(warning, file=sys.stderr)

    result = run_comparison(config)
    if not args.quiet:
        print(result.files["markdown"].read_text())
    names = [p.name for p in result.files.values()] + ["calls.json", "studies/"]
    print(f"written under {config.out_dir}: {', '.join(names)}")
    if result.mlflow_hint and not args.quiet:  # the same hint as `study`'s
        print(
            f"MLflow: comparison run {result.mlflow_run_id} (experiment "
            f"{config.mlflow_experiment!r}); see it with: {result.mlflow_hint}"
        )
        if result.mlflow_view_url and result.mlflow_view_url.startswith("http"):
            print(f"MLflow: best per sampler: {result.mlflow_view_url}")
    if result.errors:
        for name, err in result.errors.items():
            print(f"ncp-hpo: study {name} failed: {err}", file=sys.stderr)
        return 1
    return 0


def _budget_text(config: Any) -> str:
    """The FLOPs budget a comparison runs at, as an absolute value (a percentile resolved)."""
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.benchmarks._budget import flops_unit, resolve_max_flops

    table = load_benchmark(config.benchmark, config.data_dir)
    value = resolve_max_flops(table, config.max_flops, name="--max-flops")
    _, unit = flops_unit(table)
    given = f" (--max-flops {config.max_flops}: that percentile of the table's exact FLOPs)"
    return (
        f"FLOPs budget: <= {value:.6g} {unit} on {config.benchmark}"
        f"{given if isinstance(config.max_flops, str) else ''}"
    )
