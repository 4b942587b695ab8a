"""Median attainment surfaces of a two-objective comparison, read off at cost caps.

Reads a comparison's ``results.json`` (``ncp-hpo compare --objective metric+flops`` or
``metric+params``: each run's ``(metric, cost)`` per trial) and prints, per sampler, the
value of its median attainment surface over the seeds after ``--trials`` trials at each
cap: the best metric that at least half of the seeds reached within that cost, in the
record's unit of FLOPs or parameters (the same surfaces
``pareto.png`` draws; :func:`ncp_hpo.experiments.compare._stats.attainment_surface_2d`).

    python benchmarks/attainment_table.py benchmarks/results/nas-bench-201-mo \\
        --caps 10,20,30,50,60,90,100,120 [--trials 100] [--level 0.5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from ncp_hpo.experiments._record import load_record
from ncp_hpo.experiments.compare._stats import attainment_surface_2d


def surface_at(runs: list[np.ndarray], caps: list[float], level: float) -> list[float]:
    """The ``level`` attainment surface of ``runs`` (``n x 2``: metric up, cost down) at
    each cost cap (``nan`` where too few runs attain anything)."""
    x, y = attainment_surface_2d([np.stack([r[:, 1], -r[:, 0]], 1) for r in runs], level)
    out = []
    for cap in caps:
        j = int(np.searchsorted(x, cap, side="right")) - 1
        out.append(float(-y[j]) if j >= 0 and np.isfinite(y[j]) else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="a comparison folder or its results.json")
    parser.add_argument(
        "--caps",
        required=True,
        help="comma-separated caps on the second objective (FLOPs or parameters)",
    )
    parser.add_argument("--trials", type=int, default=None, help="trials (default: all)")
    parser.add_argument("--level", type=float, default=0.5, help="attainment level (0.5)")
    args = parser.parse_args()
    caps = [float(c) for c in args.caps.split(",")]
    data = load_record(args.record)
    runs: dict[str, list[np.ndarray]] = defaultdict(list)
    for run in data["runs"]:
        values = np.asarray(run["values"], dtype=np.float64)[: args.trials]
        if values.ndim == 2 and values.shape[1] >= 2 and len(values):
            runs[run["sampler"]].append(values[:, :2])
    if not runs:
        raise SystemExit(f"{args.record}: no two-objective runs")
    print(f"| sampler | {' | '.join(f'{c:g}' for c in caps)} |")
    print(f"|---|{'---:|' * len(caps)}")
    for sampler, rs in runs.items():
        row = surface_at(rs, caps, args.level)
        print(f"| `{sampler}` | {' | '.join(f'{v:.2f}' for v in row)} |")
    print(f"\n{len(next(iter(runs.values())))} seeds per sampler, level {args.level}")


if __name__ == "__main__":
    main()
