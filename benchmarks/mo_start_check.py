"""NCP's start-up in a two-objective study: its default against a random start, on dev seeds.

Issue 27. In a study of the main metric against FLOPs, ``NCPSampler``'s default start-up
takes the zero-cost warm start's pool in trade-off order on NAS-Bench-201 (the proxy's
estimated Pareto front against the exact FLOPs) and, on NAS-Bench-MR with no proxy, codes
spread along the exact FLOPs. This script measures that against the same sampler with a
random start-up (``warm_start=None``), and optionally against Optuna's TPE and GP, on
seeds the records do not use (100..100+N-1 by default): how the start was chosen before the
records (seeds 0..19) were run.

Each study: ``BenchmarkObjective(SETTING, objective="metric+flops")`` (exact mode on
NAS-Bench-201, table mode on NAS-Bench-MR), one process per study, one torch thread.
Prints the median normalised hypervolume (as ``compare`` scores it) at 10, 25, 50 and
``--trials`` trials and a paired two-sided Wilcoxon test of each sampler against the first.

    OMP_NUM_THREADS=1 python benchmarks/mo_start_check.py --setting seg \\
        --samplers ncp,ncp-random-start [--trials 100] [--seeds 20] [--first-seed 100] \\
        [--jobs 2] [--data-dir DIR]

Samplers: ``ncp`` (the default), ``ncp-random-start`` (``warm_start=None``), ``tpe``, ``gp``.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SAMPLERS = ("ncp", "ncp-random-start", "tpe", "gp")


def run_study(sampler: str, setting: str, seed: int, trials: int) -> list[float]:
    """Hypervolume after 10, 25, 50 and ``trials`` trials of one study (those <= trials)."""
    import optuna

    from ncp_hpo import NCPSampler
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.experiments.compare._records import tradeoff_hypervolume

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    mode = "exact" if setting == "nas-bench-201" else "table"
    obj = BenchmarkObjective(setting, objective="metric+flops", mode=mode)
    chosen: optuna.samplers.BaseSampler
    if sampler == "ncp":
        chosen = NCPSampler(space=obj.space, seed=seed)
    elif sampler == "ncp-random-start":
        chosen = NCPSampler(space=obj.space, seed=seed, warm_start=None)
    elif sampler == "tpe":
        chosen = optuna.samplers.TPESampler(seed=seed)
    else:
        chosen = optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(directions=obj.directions, sampler=chosen)
    study.optimize(obj, n_trials=trials)
    values = np.array([t.values for t in study.trials])
    budgets = sorted({b for b in (10, 25, 50, trials) if b <= trials})
    return [tradeoff_hypervolume(values[:b], obj.table) for b in budgets]


def _run(args: tuple[str, str, int, int]) -> tuple[str, int, list[float]]:
    sampler, setting, seed, trials = args
    return sampler, seed, run_study(sampler, setting, seed, trials)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="nas-bench-201", help="nas-bench-201 or a MR setting")
    ap.add_argument("--samplers", default="ncp,ncp-random-start", help=", ".join(SAMPLERS))
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data-dir", default=None, help="where the benchmark tables are")
    args = ap.parse_args(argv)
    names = [s for s in args.samplers.split(",") if s]
    bad = [s for s in names if s not in SAMPLERS]
    if bad or not names:
        ap.error(f"unknown sampler(s) {bad}; choose from {', '.join(SAMPLERS)}")
    if args.data_dir:
        os.environ["NCP_HPO_DATA"] = args.data_dir
    from scipy.stats import wilcoxon

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(n, args.setting, s, args.trials) for n in names for s in seeds]
    got: dict[str, dict[int, list[float]]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, seed, hv in pool.map(_run, jobs):
            got.setdefault(name, {})[seed] = hv
    budgets = sorted({b for b in (10, 25, 50, args.trials) if b <= args.trials})
    print(
        f"{args.setting}, seeds {seeds.start}..{seeds.stop - 1}: median hypervolume at "
        f"{', '.join(map(str, budgets))} trials; p against {names[0]}"
    )
    ref = np.array([got[names[0]][s] for s in seeds])
    for name in names:
        hv = np.array([got[name][s] for s in seeds])
        line = f"{name:18s} " + " ".join(f"{np.median(hv[:, j]):.4f}" for j in range(len(budgets)))
        if name != names[0]:
            ps = [
                f"{wilcoxon(ref[:, j], hv[:, j]).pvalue:.2g}"
                if np.any(ref[:, j] != hv[:, j])
                else "1"
                for j in range(len(budgets))
            ]
            line += "  p " + " ".join(ps)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
