"""What the oneDNN pin costs: wall time of one ``ncp-hpo train`` with oneDNN limited to AVX2
(the pinned default, ``ONEDNN_MAX_CPU_ISA=AVX2``) against the best kernels of this CPU.

Each repeat runs the same command once per setting, alternating, so drift in the machine's
load hits both; prints each time, the medians and their ratio, and whether the runs ended at
the same top-1 (they do only where the CPU's best kernels are the AVX2 ones). On a CPU
without AVX-512 both settings run the same kernels and the ratio is noise.

Usage::

    python benchmarks/pin_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"
SETTINGS = {"pinned (AVX2)": "AVX2", "this CPU's best": "ALL"}


def _train(isa: str, epochs: int, folder: Path) -> tuple[float, float]:
    """Seconds of one ``ncp-hpo train`` run and its top-1 (%)."""
    cmd = [
        sys.executable, "-m", "ncp_hpo.cli", "train", "--task", "cls", "--code", CODE,
        "--epochs", str(epochs), "--threads", "1", "--device", "cpu", "--seed", "3",
        "--quiet", "--no-mlflow",
    ]  # fmt: skip
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=folder)
    seconds = time.perf_counter() - start
    # the metrics table: "  top1  16.4345" (see ncp_hpo/cli/train.py)
    line = next(ln for ln in done.stdout.splitlines() if ln.split()[:1] == ["top1"])
    return seconds, float(line.split()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    top1: dict[str, set[float]] = {name: set() for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name, isa in SETTINGS.items():
                seconds, acc = _train(isa, args.epochs, Path(tmp))
                times[name].append(seconds)
                top1[name].add(round(acc, 6))
                print(f"repeat {rep + 1}: {name:16s} {seconds:6.1f} s  top-1 {acc:.2f} %")
    med = {name: statistics.median(v) for name, v in times.items()}
    pinned, best = med["pinned (AVX2)"], med["this CPU's best"]
    print(f"median: pinned {pinned:.1f} s, this CPU's best {best:.1f} s, ratio {pinned / best:.2f}")
    a, b = sorted(top1["pinned (AVX2)"]), sorted(top1["this CPU's best"])
    print(f"same top-1 under both: {a == b} (pinned {a}, this CPU's best {b})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
