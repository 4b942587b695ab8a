"""NAS-Bench-201 predictor encodings: op counts or path features beside the one-hot?

Issue 11 lists "an NB201 encoding that the MLP learns from (op counts, path features)
beside the one-hot" as a direction. This script measures it offline, before any sampler
change: per seed, ``n`` random table cells are the training set (what a study knows after
``n`` trials), the guided/local modes' online predictor (``NeuralPredictor(hidden=64,
head_hidden=32, n_members=5, dropout=0.1, epochs=100)``) is fitted on each encoding, and

* ``tau``: Kendall tau between its predictions and the table on all 15,625 cells;
* ``local``: among the 24 one-edge neighbours of the training set's best cell (what
  ``ncp-local``'s walk ranks), the accuracy of the top-ranked neighbour minus the best
  neighbour's (0 = perfect; percentage points); ``local@3``: the same for the best of the
  top three.

Encodings (inputs ``n x f``): ``onehot`` (the 30-dim code), ``counts`` (one-hot plus the 5
operation counts), ``paths`` (``counts`` plus the one-hot of the operation sequence on each
of the 4 input-output paths: 5 + 25 + 25 + 125 features). Means over seeds.

    OMP_NUM_THREADS=1 python benchmarks/nb201_encoding.py --seeds 200-229 [--n 10 25 50]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np

PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))  # edge indices (code order) from input to output


def encode(onehot: np.ndarray, kind: str) -> np.ndarray:
    """``n x 30`` one-hot codes -> ``n x f`` inputs of encoding ``kind``."""
    n = len(onehot)
    cells = onehot.reshape(n, 6, 5)
    parts = [onehot]
    if kind in ("counts", "paths"):
        parts.append(cells.sum(1))
    if kind == "paths":
        for path in PATHS:
            f = cells[:, path[0]]
            for e in path[1:]:
                f = (f[:, :, None] * cells[:, e][:, None, :]).reshape(n, -1)
            parts.append(f)
    return np.concatenate(parts, axis=1)


def run(n: int, seed: int, kinds: list[str]) -> dict[str, list[float]]:
    """``{kind: [tau, local, local@3]}`` for one training set."""
    import torch
    from scipy.stats import kendalltau

    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.predictor import NeuralPredictor

    torch.set_num_threads(1)
    table = load_benchmark("nas-bench-201")
    codes = np.asarray(table.codes, dtype=np.int64)
    x = codes.astype(np.float64)
    y = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    row = {c.tobytes(): i for i, c in enumerate(codes)}
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    best = codes[idx[np.argmax(y[idx])]]
    nbr = np.array([row[c.tobytes()] for c in table.space.neighbors(best)])
    out = {}
    for kind in kinds:
        inputs = encode(x, kind)
        p = NeuralPredictor(
            hidden=64, head_hidden=32, n_members=5, dropout=0.1, epochs=100, seed=seed
        )
        p.fit(inputs[idx], {"acc": y[idx]})
        pred = np.asarray(p.predict(inputs)).ravel()
        order = nbr[np.argsort(-pred[nbr], kind="stable")]
        top = y[nbr].max()
        out[kind] = [
            float(kendalltau(pred, y).statistic),
            float(y[order[0]] - top),
            float(y[order[:3]].max() - top),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="200-229", help="first-last (inclusive)")
    parser.add_argument("--n", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--kinds", nargs="+", default=["onehot", "counts", "paths"])
    args = parser.parse_args()
    lo, hi = (int(v) for v in args.seeds.split("-"))
    import torch

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy "
        f"{np.__version__}, 1 torch thread; seeds {lo}..{hi}; means over seeds"
    )
    print("| trials n | encoding | tau (all cells) | local (pp) | local@3 (pp) |")
    print("|---:|---|---:|---:|---:|")
    for n in args.n:
        rows = [run(n, s, args.kinds) for s in range(lo, hi + 1)]
        for kind in args.kinds:
            m = np.mean([r[kind] for r in rows], axis=0)
            print(f"| {n} | {kind} | {m[0]:.3f} | {m[1]:.2f} | {m[2]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
