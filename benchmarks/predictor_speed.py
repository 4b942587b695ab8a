"""Training speed of the NCP predictor (ncp_hpo.predictor.NeuralPredictor).

The paper's recipe: 200 epochs, batch 128, one-cycle Adam, on 2,000 codes (plus 500
validation codes for checkpoint selection, evaluated every epoch). The upstream research
code needs ~21 s for this on the 2-core CPU (../shared/REFERENCE-FIGURES.md); the target
here is <= 5 s. Prints the median and min wall time and the median process CPU time of
``--runs`` fits (after one warm-up fit) for each thread count (with one thread the CPU
time is what a fit costs an idle core, the steadier figure on a busy shared machine),
the validation MAE of the main metric (to show the speed is not bought with quality),
and the load average (the machine is shared: rerun when it is quiet).

Data: the ``seg`` table when found (``--data-dir``, ``NCP_HPO_DATA`` or the cache), else
2,500 random multi-resolution codes with a synthetic metric.

Usage::

    python benchmarks/predictor_speed.py [--runs 5] [--threads 1 2] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

# measure the checkout this script belongs to, not whatever copy is installed
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import ncp_hpo  # noqa: E402
from ncp_hpo.predictor import NeuralPredictor  # noqa: E402
from ncp_hpo.spaces import MultiResolutionSpace  # noqa: E402


def load_data(data_dir: str | None) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """``(source, codes N x 27, {"mIoU"|"acc": N, "flops": N})`` with N >= 2,500."""
    try:
        from ncp_hpo.benchmarks import load_benchmark

        default = _REPO.parent / "shared" / "nas-bench-mr"
        table = load_benchmark("seg", data_dir=data_dir or (default if default.is_dir() else None))
        metrics = {k: np.asarray(table.metrics[k]) for k in (table.main_metric, "flops")}
        return "NAS-Bench-MR seg", np.asarray(table.codes), metrics
    except Exception as exc:  # no data here: a synthetic stand-in of the same shape
        print(f"(seg table unavailable: {type(exc).__name__}; using synthetic codes)")
        space = MultiResolutionSpace()
        codes = space.sample(2500, seed=0)
        flops = space.flops(codes) / 1e9
        acc = 70 + 2 * np.tanh(np.log(flops)) - 0.2 * codes[:, 2] + 0.01 * codes[:, 26]
        return "synthetic", codes, {"acc": acc, "flops": flops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    source, codes, metrics = load_data(args.data_dir)
    perm = np.random.default_rng(0).permutation(len(codes))
    tr, va = perm[:2000], perm[2000:2500]
    y_tr = {k: v[tr] for k, v in metrics.items()}
    y_va = {k: v[va] for k, v in metrics.items()}
    main_metric = next(iter(metrics))
    print(f"data: {source}; train {len(tr)} codes, validation {len(va)}, epochs {args.epochs}")
    print(f"ncp_hpo from {Path(ncp_hpo.__file__).parent}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")

    for n_threads in args.threads:
        times, cpus, mae = [], [], float("nan")
        for r in range(args.runs + 1):
            p = NeuralPredictor(seed=r, epochs=args.epochs, n_threads=n_threads)
            c0, t0 = time.process_time(), time.perf_counter()
            p.fit(codes[tr], y_tr, val_codes=codes[va], val_targets=y_va)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if r > 0:  # the first fit warms up imports and allocator
                times.append(dt)
                cpus.append(dc)
                mae = p.score(codes[va], y_va).mae[main_metric]
        print(
            f"fit, {n_threads} thread(s): median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s, CPU time {statistics.median(cpus):.2f} s over "
            f"{len(times)} runs (validation MAE {main_metric} {mae:.3f})"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
