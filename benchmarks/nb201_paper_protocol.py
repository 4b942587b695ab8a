"""The paper protocol on NAS-Bench-201 (Appendix C): one search from a fitted predictor.

Issue 11, goal 3. Per seed ``s`` and labelled-set size ``L`` (2,000 and 200 by default):

* ``L`` cells are drawn with ``table.split(0.8 L, 0.2 L, s)`` and measured (their table
  accuracy is known); the paper's predictor (``fit_setting_predictor``: the main metric and
  FLOPs, the package defaults) is trained on ``0.8 L`` and selects its checkpoint on the
  other ``0.2 L``. Every method below uses that predictor and nothing else of the table.
* The FLOPs budget is the paper's pick, 90.36 MFLOPs (``--budget``). Each method returns
  cells; every returned cell is looked up in the table (ground truth, exact FLOPs).

Methods (evaluations: table look-ups beyond the ``L`` labelled cells):

* ``NCP λ`` (paper; λ = 0, 0.1, 0.3, 0.5, 0.7): one continuous propagation of the
  default start (a low-accuracy, high-FLOPs cell, ``DEFAULT_START``) for 70 iterations
  with FLOPs weight ``λ``, the package defaults; 1 evaluation. Not budget-aware: the
  FLOPs term is a trade-off.
* ``NCP multi-start + refine``: propagations (``λ`` = 0.5) from the 8 best labelled cells
  within the budget and from the default start; every final code is then refined by a
  greedy one-edge walk (``space.neighbors``, 24 per cell) on the predicted accuracy among
  cells within the budget, up to 6 steps; the walks' cells form the pool. ``@1``: the
  pool's cell of highest predicted accuracy that is not labelled (1 evaluation); ``@10``:
  the 10 best, the best measured reported (10 evaluations).
* ``Neural predictor @10`` (Wen et al.): 10,000 random cells, those within the budget and
  not labelled ranked by the predictor, the 10 best evaluated (10 evaluations).
* ``Random search``: 200 random cells, the best within the budget (200 evaluations;
  ``unconstrained``: the best of all 200).
* ``labelled best``: the best of the ``L`` labelled cells within the budget (and overall).

Printed per method and ``L``: the median and [min, max] over seeds of the found cell's
accuracy and MFLOPs, how many seeds found a cell that Pareto-dominates the paper's pick
(>= 47.03 % at <= 90.36 MFLOPs) and how many beat the best labelled cell (its accuracy,
within the budget, strictly exceeded). Seeds ``0..N-1`` (``--seeds N``).

    OMP_NUM_THREADS=1 python benchmarks/nb201_paper_protocol.py --seeds 10 [--labelled 2000 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BUDGET = 90.36e6  # MACs: the paper's NCP pick on NAS-Bench-201 (46.8 %, 90.36 MFLOPs)
PAPER_ACC = 46.8
LAMBDAS = (0.0, 0.1, 0.3, 0.5, 0.7)


def _greedy(
    space: Any, start: np.ndarray, score: Callable[[np.ndarray], np.ndarray], feasible: Any
) -> list[np.ndarray]:
    """Cells of a greedy one-edge walk from ``start`` on ``score`` among ``feasible`` cells."""
    path, cur = [start], start
    cur_s = float(score(start[None])[0]) if feasible(start[None])[0] else -np.inf
    for _ in range(6):
        nbrs = space.neighbors(cur)
        nbrs = nbrs[feasible(nbrs)]
        if len(nbrs) == 0:
            break
        s = score(nbrs)
        j = int(np.argmax(s))
        if s[j] <= cur_s:
            break
        cur, cur_s = nbrs[j], float(s[j])
        path.append(cur)
    return path


def run_seed(task: tuple[int, int, float]) -> dict[str, Any]:
    """Every method's cells for one seed and labelled-set size; ``{method: [acc, MFLOPs]}``."""
    seed, labelled, budget = task
    import torch

    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.experiments.paper._methods import neural_predictor_top
    from ncp_hpo.predictor import fit_setting_predictor
    from ncp_hpo.propagation import propagate
    from ncp_hpo.spaces.nb201 import DEFAULT_START, NB201Space

    torch.set_num_threads(1)
    table = load_benchmark("nas-bench-201")
    space = table.space
    codes = np.asarray(table.codes, dtype=np.int64)
    acc = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    row = {c.tobytes(): i for i, c in enumerate(codes)}
    n_val = labelled // 5
    pred, info = fit_setting_predictor(table, n_train=labelled - n_val, n_val=n_val, seed=seed)
    lab = np.concatenate([info["train"], info["val"]])
    lab_keys = {codes[i].tobytes() for i in lab}
    main = pred.metric_names_.index(pred.main_metric_)

    def score(c: np.ndarray) -> np.ndarray:
        return np.atleast_2d(pred.predict(c))[:, main]

    def feasible(c: np.ndarray) -> np.ndarray:
        return np.asarray(space.flops(c), dtype=np.float64) <= budget

    def found(c: np.ndarray) -> list[float]:
        i = row[np.asarray(c, np.int64).tobytes()]
        return [float(acc[i]), float(space.flops(codes[i][None])[0]) / 1e6]

    def best_of(cells: np.ndarray) -> list[float]:
        vals = [found(c) for c in cells]
        return max(vals, key=lambda v: v[0]) if vals else [float("nan"), float("nan")]

    start = NB201Space().decode(DEFAULT_START)
    out: dict[str, Any] = {"seed": seed, "labelled": labelled}
    for lam in LAMBDAS:
        res = propagate(pred, space, start, lam=lam, record_trajectory=False)
        out[f"NCP λ={lam:g} (paper, 1 eval)"] = found(res.codes[0])
    ok_lab = lab[feasible(codes[lab])]
    out["labelled best within budget"] = found(codes[ok_lab[np.argmax(acc[ok_lab])]])
    out["labelled best overall"] = found(codes[lab[np.argmax(acc[lab])]])
    starts = np.vstack([codes[ok_lab[np.argsort(-acc[ok_lab])[:8]]], start[None]])
    res = propagate(pred, space, starts, lam=0.5, record_trajectory=False)
    pool = {c.tobytes(): c for s in res.codes for c in _greedy(space, s, score, feasible)}
    cand = np.array([c for k, c in pool.items() if k not in lab_keys and feasible(c[None])[0]])
    if len(cand):
        ranked = cand[np.argsort(-score(cand), kind="stable")]
        out["NCP multi-start + refine @1"] = found(ranked[0])
        out["NCP multi-start + refine @10"] = best_of(ranked[:10])
    rng = np.random.default_rng(seed)
    pool_np = neural_predictor_top(pred, space, rng, pool_size=10_000, top_k=10_000)
    fresh = np.array([c.tobytes() not in lab_keys for c in pool_np], dtype=bool)
    pool_np = pool_np[feasible(pool_np) & fresh]
    out["Neural predictor @10 (10 evals)"] = best_of(pool_np[:10])
    rs = space.sample(200, seed=rng)
    out["Random search 200 within budget"] = best_of(rs[feasible(rs)])
    out["Random search 200 unconstrained"] = best_of(rs)
    return out


def _summary(rows: list[dict[str, Any]], labelled: int, budget: float) -> list[str]:
    """Markdown rows of one labelled-set size."""
    mine = [r for r in rows if r["labelled"] == labelled]
    methods = [k for k in mine[0] if k not in ("seed", "labelled")]
    lines = []
    for m in methods:
        vals = np.array([r[m] for r in mine if m in r], dtype=np.float64)
        a, f = vals[:, 0], vals[:, 1]
        dom = int(np.sum((a >= 47.03 - 1e-6) & (f <= budget / 1e6 + 1e-9)))
        beat = int(
            sum(
                r[m][0] > r["labelled best within budget"][0] + 1e-9 and r[m][1] <= budget / 1e6
                for r in mine
                if m in r
            )
        )
        lines.append(
            f"| {labelled} | {m} | {np.median(a):.2f} [{a.min():.2f}, {a.max():.2f}] | "
            f"{np.median(f):.1f} | {dom}/{len(a)} | {beat}/{len(a)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--labelled", type=int, nargs="+", default=[2000, 200])
    parser.add_argument("--budget", type=float, default=BUDGET / 1e6, help="MFLOPs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", help="also write the per-seed rows here")
    args = parser.parse_args()
    from concurrent.futures import ProcessPoolExecutor

    import numpy
    import torch

    budget = args.budget * 1e6
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(s, n, budget) for n in args.labelled for s in seeds]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_seed, tasks))
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy "
        f"{numpy.__version__}, 1 torch thread per process, {args.jobs} processes, "
        f"{time.perf_counter() - t0:.0f} s; seeds {seeds.start}..{seeds.stop - 1}; budget "
        f"{args.budget:g} MFLOPs"
    )
    print(
        "| labelled | method | accuracy, median [min, max] | MFLOPs, median "
        "| >= 47.03 % at <= budget | beats the best labelled cell within budget |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for n in args.labelled:
        print("\n".join(_summary(rows, n, budget)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
