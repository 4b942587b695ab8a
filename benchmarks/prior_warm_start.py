"""A prior as a warm start: another setting's predictor ranks the start-up codes, then local mode.

Issue 22, goal 2 (NAS-Bench-MR table mode). With a prior, ``NCPSampler``'s default is paper
mode: propagation through the prior from the first trial. On 100-trial table-mode studies
that path can stop improving after its first trials (``benchmarks/results/table-mode-prior``).
This script measures an alternative that keeps the default mode's search and gives it the
prior's knowledge only where the baselines have none, at the start:

* ``local``: ``NCPSampler(space=MultiResolutionSpace(), seed=k)``, from scratch (the default
  without a prior);
* ``local+prior-ws``: the same, its 10 start-up trials the best of a seeded pool of 1,000
  random codes by the prior's predicted main metric
  (``warm_start=ZeroCostWarmStart(scorer=...)``), then local mode on the study's own trials;
* ``paper+prior``: ``NCPSampler(space=..., prior=P, seed=k)`` (paper mode, the default
  with a prior): propagation through the prior for every trial.

The variants ``lead+prior`` and ``lead+prior-keep`` (paper mode through the prior for the
first 10 trials, then local mode) ran at commit 22b553c, where the library had that lead;
``benchmarks/results/prior-lead.md`` has the figures and why it was not kept.

Priors are ``setting_predictor(load_benchmark(SOURCE), seed=0)`` (fitted once, then read
from the user cache). Each study runs 100 trials in table mode (snapped to the nearest unused
table code, its measured value returned), seeds 0..N-1, one thread; best-so-far at 10, 25,
50 and 100 trials. Prints, per (source, target) pair, medians and a paired two-sided
Wilcoxon test of each variant against ``--reference`` (W/T/L from the variant's side).

    OMP_NUM_THREADS=1 python benchmarks/prior_warm_start.py --out pws.jsonl \\
        [--pairs cls-50-100:seg-4x,video:cls-50-1000,...] [--variants local,local+prior-ws] \\
        [--seeds 20] [--jobs 1] [--data-dir DIR]

The default pairs are the transfer record's four development pairs (``transfer.md``), none
of them a goal setting. ``--out`` is JSON lines, resumable (done studies are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

BUDGETS = (10, 25, 50, 100)
DEV_PAIRS = "cls-50-100:seg-4x,video:cls-50-1000,cls-10-1000:cls-50-100,seg-4x:cls-10-1000"
VARIANTS = ("local", "local+prior-ws", "paper+prior")
_PRIORS: dict[str, Any] = {}
_OBJECTIVES: dict[str, Any] = {}


def _prior(source: str, data_dir: str | None) -> Any:
    if source not in _PRIORS:
        from ncp_hpo.benchmarks import load_benchmark
        from ncp_hpo.benchmarks.predictors import setting_predictor

        _PRIORS[source], _ = setting_predictor(load_benchmark(source, data_dir), seed=0)
    return _PRIORS[source]


def _sampler(variant: str, prior: Any, seed: int) -> Any:
    from ncp_hpo import NCPSampler
    from ncp_hpo.search import ZeroCostWarmStart
    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    if variant == "local":
        return NCPSampler(space=space, seed=seed)
    if variant == "paper+prior":
        return NCPSampler(space=space, prior=prior, mode="paper", seed=seed)
    if variant == "local+prior-ws":
        main = list(prior.metric_names_).index(prior.main_metric)

        def predicted(codes: np.ndarray) -> np.ndarray:
            return np.asarray(prior.predict(codes))[:, main]

        return NCPSampler(space=space, seed=seed, warm_start=ZeroCostWarmStart(scorer=predicted))
    raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")


def run_study(source: str, target: str, variant: str, seed: int, data_dir: str | None) -> dict:
    """One 100-trial table-mode study; its best-so-far at :data:`BUDGETS`."""
    import optuna

    from ncp_hpo._numerics import deterministic_threads
    from ncp_hpo.benchmarks import BenchmarkObjective

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if target not in _OBJECTIVES:
        _OBJECTIVES[target] = BenchmarkObjective(target, mode="table", data_dir=data_dir)
    with deterministic_threads(1):
        study = optuna.create_study(
            direction="maximize", sampler=_sampler(variant, _prior(source, data_dir), seed)
        )
        study.optimize(_OBJECTIVES[target], n_trials=max(BUDGETS))
    best = np.maximum.accumulate([float(t.value) for t in study.trials])  # type: ignore[arg-type]
    return {
        "source": source,
        "target": target,
        "variant": variant,
        "seed": seed,
        "best": [float(best[b - 1]) for b in BUDGETS],
    }


def report(rows: list[dict], reference: str) -> list[str]:
    """Markdown: per pair and variant, medians at :data:`BUDGETS` and p (W/T/L) against
    ``reference`` on the seeds both have."""
    from ncp_hpo.experiments.compare._stats import paired_wilcoxon

    by: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for r in rows:
        by.setdefault((r["source"], r["target"], r["variant"]), {})[r["seed"]] = r["best"]
    out = [
        "| source -> target | variant | "
        + " | ".join(f"@{b}" for b in BUDGETS)
        + " | "
        + " | ".join(f"p @{b} (W/T/L)" for b in BUDGETS)
        + " |",
        "|---" * (2 * len(BUDGETS) + 2) + "|",
    ]
    for source, target, variant in sorted(by):
        mine, ref = by[(source, target, variant)], by.get((source, target, reference), {})
        seeds = sorted(mine)
        meds = [f"{np.median([mine[s][i] for s in seeds]):.2f}" for i in range(len(BUDGETS))]
        common = sorted(set(mine) & set(ref))
        tests = []
        for i in range(len(BUDGETS)):
            if variant == reference or not common:
                tests.append("")
                continue
            t = paired_wilcoxon([ref[s][i] for s in common], [mine[s][i] for s in common])
            p = "n/a" if t.p_value is None else f"{t.p_value:.2g}"
            tests.append(f"{p} ({t.wins}/{t.ties}/{t.losses})")
        out.append(
            f"| {source} -> {target} | `{variant}` ({len(seeds)}) | "
            + " | ".join(meds + tests)
            + " |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON lines (resumable)")
    ap.add_argument("--pairs", default=DEV_PAIRS, help="SOURCE:TARGET,... (default: dev pairs)")
    ap.add_argument("--variants", default="local,local+prior-ws", help=f"from {VARIANTS}")
    ap.add_argument("--reference", default="local", help="the variant the others are tested on")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",") if p]
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS] + [p for p in pairs if len(p) != 2]
    if bad:
        print(f"prior_warm_start: bad --variants or --pairs entry {bad[0]!r}", file=sys.stderr)
        return 2
    done = set()
    if args.out.exists():
        rows = [json.loads(x) for x in args.out.read_text().splitlines() if x]
        done = {(r["source"], r["target"], r["variant"], r["seed"]) for r in rows}
    jobs = [
        (s, t, v, k)
        for s, t in pairs
        for v in variants
        for k in range(args.seeds)
        if (s, t, v, k) not in done
    ]
    with args.out.open("a") as fh, ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_study, *job, args.data_dir) for job in jobs]
        for f in futures:
            fh.write(json.dumps(f.result()) + "\n")
            fh.flush()
    rows = [json.loads(x) for x in args.out.read_text().splitlines() if x]
    keep = {(s, t) for s, t in pairs}
    rows = [r for r in rows if (r["source"], r["target"]) in keep and r["seed"] < args.seeds]
    print("\n".join(report(rows, args.reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
