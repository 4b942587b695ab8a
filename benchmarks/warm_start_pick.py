"""Which zero-cost signal picks better start-up codes than random ones, per benchmark table.

For each setting and signal: over ``--pools`` seeded pools of ``--pool`` table codes, the
best table value among the pool's top 10 by the signal, against the best of 10 random table
codes (medians over pools), and the signal's Spearman with the table's main metric. Signals:
the exact FLOPs and parameters of every code (``space.flops`` / ``space.params``), and
synflow where a score table is shipped or cached (``ncp_hpo.zerocost``).

    python benchmarks/warm_start_pick.py --data-dir ../shared/nas-bench-mr
"""

from __future__ import annotations

import argparse
import sys

from ncp_hpo._numerics import environment_line, pin_cpu_math

pin_cpu_math()  # before torch loads, as the ncp-hpo command does

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from ncp_hpo.benchmarks import load_benchmark  # noqa: E402
from ncp_hpo.exceptions import NCPError  # noqa: E402

SETTINGS = ("nas-bench-201", "seg", "video", "cls-50-1000", "cls-10-1000", "cls-50-100", "seg-4x")


def _signals(name: str, table: object) -> dict[str, np.ndarray]:
    codes = table.codes  # type: ignore[attr-defined]
    space = table.space  # type: ignore[attr-defined]
    out = {
        "flops": np.asarray(space.flops(codes), dtype=np.float64),
        "params": np.asarray(space.params(codes), dtype=np.float64),
    }
    try:
        from ncp_hpo.search._warm_start import _table_lookup

        out["synflow"] = np.asarray(_table_lookup(name, "synflow")(codes), dtype=np.float64)
    except NCPError:
        pass  # no synflow table for this setting (ncp-hpo data proxies builds one)
    return out


def _picks(values: np.ndarray, signal: np.ndarray, pool: int, pools: int) -> tuple[float, float]:
    """Medians over pools of (best of 10 random codes, best of the pool's top 10)."""
    n = len(values)
    rand, top = [], []
    score = np.where(np.isfinite(signal), signal, -np.inf)
    for seed in range(pools):
        rng = np.random.default_rng(seed)
        rand.append(values[rng.choice(n, 10, replace=False)].max())
        idx = rng.choice(n, min(pool, n), replace=False)
        top.append(values[idx[np.argsort(-score[idx], kind="stable")[:10]]].max())
    return float(np.median(rand)), float(np.median(top))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="benchmark data folder")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--pool", type=int, default=1000, help="codes per pool")
    ap.add_argument("--pools", type=int, default=100, help="pools (seeds 0..N-1)")
    args = ap.parse_args()
    print(f"$ python benchmarks/warm_start_pick.py --pool {args.pool} --pools {args.pools}")
    print(f"environment: {environment_line()}")
    head = "| setting | signal | Spearman | best of 10 random | best of pool top 10 | table max |"
    print(f"\n{head}\n|---|---|---:|---:|---:|---:|")
    for name in args.settings.split(","):
        try:
            table = load_benchmark(name, args.data_dir)
        except NCPError as exc:
            print(f"| {name} | (skipped: {exc}) | | | | |")
            continue
        values = np.asarray(table.main, dtype=np.float64)
        for signal, s in _signals(name, table).items():
            rho = float(spearmanr(s, values)[0])
            rand, top = _picks(values, s, args.pool, args.pools)
            cells = f"{rho:.3f} | {rand:.2f} | {top:.2f} | {values.max():.2f}"
            print(f"| {name} | {signal} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
