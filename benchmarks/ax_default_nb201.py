"""Ax's default generation strategy on NAS-Bench-201 (exact table), beside ``compare``'s runs.

Issue 11, goal 1 names "Ax's default BoTorch strategy" among the baselines. ``compare
--samplers ax`` drives Ax with the NCP node, so this script runs the strategy an Ax user gets
without choosing one: ``ax.api.client.Client(random_seed=s)``, the 6 edges as unordered
string ``ChoiceParameterConfig`` (``NB201Space.ax_parameters``), ``configure_optimization
("acc")`` and no ``set_generation_strategy`` (Ax picks its default: Sobol, then BoTorch).
One trial at a time; each trial's accuracy is the table's (the same look-up as ``compare
--mode exact``). A duplicate proposal is evaluated again like any other trial.

Per seed it prints best@25/50/100 and writes JSON lines (``--out``; seeds already there are
skipped, so a run can be split or resumed). ``--compare RUNS_CSV`` (a ``compare`` folder's
``runs.csv``) adds paired Wilcoxon tests of the other samplers against ``ax-default``.

    OMP_NUM_THREADS=1 python benchmarks/ax_default_nb201.py --seeds 0-19 --out ax.jsonl \\
        [--compare OUT/runs.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np

BUDGETS = (10, 25, 50, 100)


def run_seed(seed: int, trials: int) -> dict[str, object]:
    """One Ax study on the table; best-so-far at ``BUDGETS`` and seconds per trial."""
    import torch

    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.samplers import quiet_ax_logging

    quiet_ax_logging()  # before Ax's first import: Ax logs every trial at INFO
    from ax.api.client import Client

    # BoTorch's GP fits add jitter to near-singular kernels on this categorical space and say
    # so on every trial; the strategy's own fallbacks (duplicate arms -> Sobol) still warn
    warnings.filterwarnings("ignore", message="A not p.d., added jitter")

    torch.set_num_threads(1)
    table = load_benchmark("nas-bench-201")
    space = table.space
    acc = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    lookup = {
        np.asarray(c, np.int64).tobytes(): float(a) for c, a in zip(table.codes, acc, strict=True)
    }
    client = Client(random_seed=seed)
    client.configure_experiment(name=f"nb201-{seed}", parameters=space.ax_parameters())
    client.configure_optimization(objective="acc")
    values: list[float] = []
    t0 = time.process_time()
    while len(values) < trials:
        for idx, params in client.get_next_trials(max_trials=1).items():
            code = np.asarray(space.from_params(params), np.int64)
            value = lookup[code.tobytes()]
            client.complete_trial(trial_index=idx, raw_data={"acc": value})
            values.append(value)
    best = np.maximum.accumulate(values)
    out: dict[str, object] = {"seed": seed, "cpu_s_per_trial": (time.process_time() - t0) / trials}
    out |= {f"best@{b}": float(best[b - 1]) for b in BUDGETS if b <= trials}
    return out


def _wilcoxon(rows: list[dict[str, object]], runs_csv: str) -> None:
    """Paired tests against ``ax-default`` at each budget, from a compare ``runs.csv`` (long
    format: one row per sampler, seed and budget, the best score so far in ``score``)."""
    from scipy.stats import wilcoxon

    ax = {int(r["seed"]): r for r in rows}  # type: ignore[call-overload]
    scores: dict[str, dict[tuple[int, int], float]] = {}
    with open(runs_csv) as fh:
        for r in csv.DictReader(fh):
            scores.setdefault(r["sampler"], {})[(int(r["seed"]), int(r["budget"]))] = float(
                r["score"]
            )
    print("| sampler | budget | median | ax-default median | W/T/L vs ax-default | p |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, by in scores.items():
        for b in BUDGETS[1:]:
            common = sorted(s for s in ax if (s, b) in by and f"best@{b}" in ax[s])
            if not common:
                continue
            a = np.array([by[(s, b)] for s in common])
            x = np.array([float(ax[s][f"best@{b}"]) for s in common])  # type: ignore[arg-type]
            d = a - x
            w, t, lo = int((d > 1e-9).sum()), int((abs(d) <= 1e-9).sum()), int((d < -1e-9).sum())
            p = wilcoxon(a, x).pvalue if w + lo else 1.0
            cells = [name, b, f"{np.median(a):.2f}", f"{np.median(x):.2f}", f"{w}/{t}/{lo}"]
            print("| " + " | ".join(map(str, cells)) + f" | {p:.3g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-19", help="first-last (inclusive)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", required=True, help="JSON lines, one per seed (resumable)")
    parser.add_argument("--compare", help="a compare folder's runs.csv for paired tests")
    args = parser.parse_args()
    lo, hi = (int(x) for x in args.seeds.split("-"))
    path = Path(args.out)
    done = (
        {json.loads(x)["seed"] for x in path.read_text().splitlines()} if path.exists() else set()
    )
    for seed in range(lo, hi + 1):
        if seed in done:
            continue
        row = run_seed(seed, args.trials)
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows = [r for r in rows if lo <= r["seed"] <= hi]
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "seed"}
    print(f"ax-default, seeds {lo}..{hi} ({len(rows)} runs), medians: {json.dumps(med)}")
    if args.compare:
        _wilcoxon(rows, args.compare)


if __name__ == "__main__":
    main()
