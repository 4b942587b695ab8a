"""Speed of NCP propagation (ncp_hpo.propagation.propagate).

Times 70 iterations of the paper's continuous propagation (lr 3, lambda 0.5, exact FLOPs
term) from one start (the paper's ``{b, n = 2; c, i, o = 64}``) and from 1,024 random
starts at once, plus the same with the learned FLOPs head and with winner-takes-all.
Targets: <= 20 ms for one start, <= 1 s for 1,024 starts, on the 2-core CPU; the upstream
research code takes ~19 s for 70 iterations (../shared/REFERENCE-FIGURES.md). Each figure
is the median (and min) wall time and the median process CPU time over ``--runs`` calls
after a warm-up call (which also compiles
and caches the exact-FLOPs polynomial; its one-time cost is printed separately). The
whole call is timed: trajectory recording, rounding, predictions and exact FLOPs of every
visited code included. The machine is shared: rerun when the load average is low.

The predictor's weights do not change the timing; it is fitted briefly (5 epochs) on
random codes with two outputs (metric, FLOPs), the paper's setting.

Usage::

    python benchmarks/propagation_speed.py [--runs 7] [--threads 1 2]
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
from ncp_hpo.propagation import propagate  # noqa: E402
from ncp_hpo.propagation._flops import _compiled_flops, _reference_stats  # noqa: E402
from ncp_hpo.spaces import MultiResolutionSpace  # noqa: E402


def timed(fn, runs: int) -> tuple[float, float, float]:
    """Median wall, min wall and median process CPU time (s) of ``runs`` calls.

    With one torch thread the CPU time is what the call costs an idle core: on a busy
    shared machine it is the steadier figure (the wall time includes waiting for a core).
    """
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iterations", type=int, default=70)
    args = ap.parse_args()

    space = MultiResolutionSpace()
    codes = space.sample(1000, seed=0)
    flops = space.flops(codes) / 1e9
    acc = 70 + 2 * np.tanh(np.log(flops)) - 0.2 * codes[:, 2] + 0.01 * codes[:, 26]
    predictor = NeuralPredictor(seed=0, epochs=5).fit(codes, {"acc": acc, "flops": flops})
    starts = space.sample(1024, seed=1)
    print(f"ncp_hpo from {Path(ncp_hpo.__file__).parent}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")

    _compiled_flops.cache_clear()
    _reference_stats.cache_clear()
    t0 = time.perf_counter()
    propagate(predictor, space, iterations=1)
    print(
        f"one-time exact-FLOPs compilation + reference statistics: {time.perf_counter() - t0:.3f} s"
    )

    cases = [
        ("continuous, exact FLOPs", {}),
        ("continuous, learned FLOPs head", {"flops_source": "predictor"}),
        ("winner-takes-all, exact FLOPs", {"strategy": "winner_takes_all"}),
    ]
    for n_threads in args.threads:
        for label, kw in cases:
            for n, init in ((1, None), (1024, starts)):
                med, best, cpu = timed(
                    lambda init=init, kw=kw, nt=n_threads: propagate(
                        predictor,
                        space,
                        init,
                        iterations=args.iterations,
                        n_threads=nt,
                        **kw,
                    ),
                    args.runs,
                )
                print(
                    f"{label:32s} {n:5d} start(s) x {args.iterations} it, {n_threads} thread(s): "
                    f"median {med * 1e3:7.1f} ms (min {best * 1e3:7.1f}), "
                    f"CPU time {cpu * 1e3:7.1f} ms"
                )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
