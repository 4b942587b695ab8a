"""Head-to-head of samplers by actual training: NCP, NCP with a transferred prior, TPE and
random search on the embedded digits classification task, under a compute budget.

Every sampler x seed is one Optuna study (``<out>/studies/<sampler>-seed<k>.db``) of
``--trials`` trained trials of :class:`ncp_hpo.trainers.TrainingObjective` (the
objective of ``ncp-hpo study``: the same data split and recipe; no pruning by default, so
every trained trial is a full measurement; codes over the budget are refused untrained and
not counted). The samplers are built as
``ncp-hpo study`` builds them: NCP and random search draw only codes within the budget,
TPE starts from random codes within it and learns it from refused trials. ``ncp-prior``
is NCP with a predictor fitted on the NAS-Bench-MR ``cls-50-1000`` table (transfer from
ImageNet-50 at 128x128 to digits at 16x16; needs the benchmark data, see
``ncp-hpo data``).

Reported (``<out>/summary.md``, ``results.json``, ``anytime.png``): the best
top-1 after 5/10/20/... trained trials (median and IQR over seeds), the best top-1 reached
within a given total of training CPU-seconds (``time.process_time`` of the trials,
pruned ones included), and the paired Wilcoxon test
(:func:`ncp_hpo.experiments.compare.paired_wilcoxon`) of each sampler's final best against
NCP's on the same seeds.

A rerun with the same ``--out`` continues unfinished studies and rewrites the report.

A sampler name ending in ``+recipe`` (e.g. ``ncp-paper-prior+recipe``) also searches the
recipe's learning rate and weight decay (``TrainingObjective(search_recipe=True)``, as
``ncp-hpo study --search-recipe``).

Usage (the recorded run's command is in its summary)::

    OMP_NUM_THREADS=1 python benchmarks/real_training_compare.py --out rt \\
        --samplers ncp,ncp-prior,tpe,random --seeds 5 --trials 20 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from ncp_hpo._numerics import environment_line, pin_cpu_math

pin_cpu_math()  # before torch loads, as the ncp-hpo command does (workers inherit it)

SAMPLERS = (
    "ncp",
    "ncp-prior",
    "ncp-paper",
    "ncp-paper-prior",
    "ncp-local-prior",
    "tpe",
    "random",
)  # not gp: it cannot search under the compute budget (ncp_hpo.search._registry)
PRIOR_SETTING = "cls-50-1000"
RECIPE = "+recipe"  # a sampler name ending in it also searches lr and weight decay


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "task": "cls",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "max_gflops": args.max_gflops,
        "train_size": args.train_size,
        "pruner": args.pruner,
    }


def _prior(out: Path, data_dir: str | None) -> Any:
    """The cls-50-1000 predictor, fitted once and saved under ``out``."""
    from ncp_hpo.predictor import NeuralPredictor, fit_setting_predictor

    path = out / "prior-cls-50-1000.safetensors"
    if path.is_file():
        return NeuralPredictor.load(path)
    from ncp_hpo.benchmarks import load_benchmark

    predictor, _ = fit_setting_predictor(load_benchmark(PRIOR_SETTING, data_dir), seed=0)
    predictor.save(path)
    return predictor


def run_study(job: dict[str, Any]) -> dict[str, Any]:
    """Run (or continue) one sampler x seed study; returns its per-trial records."""
    import optuna
    import torch

    from ncp_hpo.runtime._pruning import make_pruner
    from ncp_hpo.samplers import make_sampler
    from ncp_hpo.trainers import TrainingObjective, is_over_budget

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    s, seed, name = job["settings"], job["seed"], job["sampler"]
    recipe = name.endswith(RECIPE)  # search lr and weight decay with the code
    base = name.removesuffix(RECIPE)
    opts = {
        k: s[k]
        for k in ("epochs", "batch_size", "image_size", "optimizer", "lr", "train_size")
        if s[k] is not None
    }
    obj = TrainingObjective(
        "cls",
        max_flops=s["max_gflops"] * 1e9,
        seed=seed,
        progress=False,
        device="cpu",
        search_recipe=recipe,
        **opts,
    )
    space = obj.space
    params: dict[str, Any] = {}
    if base.endswith("-prior"):  # ncp-prior, ncp-paper-prior: the sampler with the prior
        from ncp_hpo.predictor import NeuralPredictor

        params["prior"] = NeuralPredictor.load(job["prior"])
    sampler = make_sampler(base.removesuffix("-prior"), space=space, seed=seed, params=params)
    storage = f"sqlite:///{job['path']}"
    study = optuna.create_study(
        study_name=job["study"],
        storage=storage,
        direction="maximize",
        sampler=sampler,
        pruner=make_pruner(s["pruner"], s["epochs"]),
        load_if_exists=True,
    )
    if recipe and not study.trials:  # as ncp-hpo study --search-recipe: the recipe first
        study.enqueue_trial(obj.recipe_defaults)
    if base == "tpe" and not study.trials:  # as ncp-hpo study: start within budget
        for code in space.sample(10, seed=seed):
            study.enqueue_trial(space.to_params(code))

    def objective(trial: optuna.trial.Trial) -> float:
        t0 = time.process_time()
        space.suggest(trial)  # the sampler proposes here; the objective reads the same code
        t1 = time.process_time()
        trial.set_user_attr("sampler_cpu_s", t1 - t0)
        try:
            return float(obj(trial))  # type: ignore[arg-type]
        finally:
            trial.set_user_attr("cpu_s", time.process_time() - t1)

    def counted() -> int:
        return sum(
            t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            and not is_over_budget(t)
            for t in study.get_trials(deepcopy=False)
        )

    failed = 0
    while counted() < job["trials"]:
        study.optimize(objective, n_trials=1, catch=(Exception,))
        last = study.get_trials(deepcopy=False)[-1]
        failed = failed + 1 if last.state == optuna.trial.TrialState.FAIL else 0
        if failed >= 3:
            raise RuntimeError(f"{job['study']}: 3 failed trials in a row (see its storage)")
    return {"sampler": name, "seed": seed, **_trial_rows(study, job["trials"])}


def _trial_rows(study: Any, trials: int) -> dict[str, Any]:
    """The first ``trials`` counted (COMPLETE or PRUNED, within budget) trials of ``study``
    as records, and how many codes were refused for the budget."""
    import optuna

    from ncp_hpo.trainers._budget import is_over_budget

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        if is_over_budget(t):
            continue
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
                "cpu_s": t.user_attrs.get("cpu_s"),
                "sampler_cpu_s": t.user_attrs.get("sampler_cpu_s"),
                "macs": t.user_attrs.get("macs_analytic"),
                "code": t.user_attrs.get("code"),
            }
        )
    refused = sum(is_over_budget(t) for t in study.get_trials(deepcopy=False))
    return {"trials": rows[:trials], "refused": refused}


def _curves(run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Best top-1 so far per trained trial, and the cumulative CPU-seconds."""
    from ncp_hpo.experiments.compare import best_so_far

    vals = [np.nan if r["value"] is None else r["value"] for r in run["trials"]]
    cpu = np.cumsum([r["cpu_s"] or 0.0 for r in run["trials"]])
    return best_so_far(vals), cpu


def _best_within(best: np.ndarray, cpu: np.ndarray, seconds: float) -> float:
    ok = np.flatnonzero(cpu <= seconds)
    return float(best[ok[-1]]) if len(ok) else float("nan")


def report(runs: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> str:
    from ncp_hpo.experiments._markdown import markdown_table
    from ncp_hpo.experiments.compare import paired_wilcoxon, summary_stat

    samplers = [s for s in args.samplers if any(r["sampler"] == s for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    by = {(r["sampler"], r["seed"]): _curves(r) for r in runs}
    budgets = sorted({b for b in (5, 10, 20, 50) if b <= args.trials} | {args.trials})
    total_cpu = [by[k][1][-1] for k in by if len(by[k][1])]
    cpu_marks = [round(q) for q in np.percentile(total_cpu, [25, 50, 100])] if total_cpu else []
    lines = [
        "# Real-training head-to-head on digits (cls)",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/real_training_compare.py "
        f"{' '.join(sys.argv[1:])}`",
        "",
        f"Settings: {json.dumps(_settings(args))}; seeds {seeds}; "
        f"{args.trials} trained trials per study (codes refused for the budget are not "
        f"counted); wall time of this call {wall / 60:.1f} min.",
        "",
        f"Environment: {environment_line()}.",
        "",
        "## Best top-1 (%) after N trained trials: median [IQR] over seeds",
        "",
    ]
    rows: list[list[Any]] = []
    final = {s: [by[(s, k)][0][-1] if (s, k) in by else np.nan for k in seeds] for s in samplers}
    ref = samplers[0]  # the paired tests are against the first sampler of --samplers
    for s in samplers:
        cells = [
            summary_stat(
                [by[(s, k)][0][b - 1] for k in seeds if (s, k) in by and len(by[(s, k)][0]) >= b]
            ).format(1)
            for b in budgets
        ]
        if s == ref:
            test, wtl = "—", "—"
        else:
            t = paired_wilcoxon(final[ref], final[s])
            test, wtl = t.format(), f"{t.wins}/{t.ties}/{t.losses}"
        refused = sum(r["refused"] for r in runs if r["sampler"] == s)
        rows.append([s, *cells, test, wtl, refused])
    head = ["sampler", *[f"N={b}" for b in budgets], f"Wilcoxon p vs {ref}"]
    lines += markdown_table([*head, f"wins/ties/losses vs {ref}", "refused"], rows)
    lines += [
        "",
        "## Best top-1 (%) within a total of training CPU-seconds: median [IQR] over seeds",
        "",
    ]
    rows = []
    for s in samplers:
        cells = [
            summary_stat([_best_within(*by[(s, k)], c) for k in seeds if (s, k) in by]).format(1)
            for c in cpu_marks
        ]
        tot = summary_stat([by[(s, k)][1][-1] for k in seeds if (s, k) in by]).format(0)
        own = summary_stat(
            [sum(t["sampler_cpu_s"] or 0.0 for t in r["trials"]) for r in runs if r["sampler"] == s]
        ).format(1)
        rows.append([s, *cells, tot, own])
    head = ["sampler", *[f"<= {c} s" for c in cpu_marks], "training CPU-s per study"]
    lines += markdown_table([*head, "sampler CPU-s per study"], rows)
    lines += [
        "",
        "Wins/ties/losses: seeds where the sampler's final best is above/equal to/below "
        "NCP's. p-values are two-sided, paired, uncorrected for multiple comparisons.",
    ]
    return "\n".join(lines) + "\n"


def _plot(runs: list[dict[str, Any]], samplers: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s in samplers:
        curves = [_curves(r) for r in runs if r["sampler"] == s]
        if not curves:
            continue
        n = min(len(c[0]) for c in curves)
        med = np.nanmedian(np.stack([c[0][:n] for c in curves]), axis=0)
        axes[0].plot(np.arange(1, n + 1), med, label=s)
        cpu = np.nanmedian(np.stack([c[1][:n] for c in curves]), axis=0)
        axes[1].plot(cpu, med, label=s)
    axes[0].set(xlabel="trained trials", ylabel="best top-1 (%), median over seeds")
    axes[1].set(xlabel="training CPU-seconds (median)", ylabel="best top-1 (%)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-gflops", type=float, default=0.004)
    p.add_argument(
        "--pruner",
        choices=("none", "median"),
        default="none",
        help="none (default): every trial trains fully, so best-vs-trials compares the "
        "searches alone; median: as ncp-hpo study prunes (NCP learns nothing from a pruned "
        "trial)",
    )
    p.add_argument("--train-size", type=int, help="training samples (default: all 1,437)")
    p.add_argument("--data-dir", help="NAS-Bench-MR data for the ncp-prior sampler")
    args = p.parse_args(argv)
    args.samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    bad = sorted({s.removesuffix(RECIPE) for s in args.samplers} - set(SAMPLERS))
    if bad:
        p.error(f"unknown sampler(s) {', '.join(bad)}; choose from {', '.join(SAMPLERS)}")
    out: Path = args.out
    (out / "studies").mkdir(parents=True, exist_ok=True)
    prior = None
    if any(s.removesuffix(RECIPE).endswith("-prior") for s in args.samplers):
        _prior(out, args.data_dir or os.environ.get("NCP_HPO_DATA"))
        prior = str(out / "prior-cls-50-1000.safetensors")
    jobs = [
        {
            "sampler": s,
            "seed": k,
            "trials": args.trials,
            "settings": _settings(args),
            "prior": prior,
            "study": f"{s}-seed{k}",
            "path": str(out / "studies" / f"{s}-seed{k}.db"),
        }
        for k in range(args.seeds)
        for s in args.samplers
    ]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []

    def done(run: dict[str, Any]) -> None:  # the report so far, after every study
        runs.append(run)
        runs.sort(key=lambda r: (r["seed"], args.samplers.index(r["sampler"])))
        _write(runs, args, out, time.perf_counter() - t0)
        print(f"{run['sampler']} seed {run['seed']}: done ({len(runs)}/{len(jobs)})", flush=True)

    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(run_study, j) for j in jobs]):
                done(fut.result())
    else:
        for j in jobs:
            done(run_study(j))
    print((out / "summary.md").read_text())
    return 0 if all(not math.isnan(_curves(r)[0][-1]) for r in runs) else 1


def _write(runs: list[dict[str, Any]], args: argparse.Namespace, out: Path, wall: float) -> None:
    (out / "summary.md").write_text(report(runs, args, wall))
    (out / "results.json").write_text(json.dumps(runs, indent=1, default=float))
    _plot(runs, args.samplers, out / "anytime.png")


if __name__ == "__main__":
    sys.exit(main())
