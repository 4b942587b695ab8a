"""Start-up time of the command line: ``ncp-hpo --help`` and ``--version`` beside ``optuna --help``.

Each command runs ``--repeats`` times as a fresh process; the median wall time is printed.
The target (issue 14) is under 0.5 s for both ncp-hpo commands: the parser imports no torch,
Optuna or MLflow (they load inside the sub-command handlers).

    python benchmarks/cli_startup.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5


def _median_s(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _entry_point(name: str) -> list[str] | None:
    """``name``'s console script beside this interpreter, else on PATH."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    return [found] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="runs per command (default: 9)")
    args = parser.parse_args()

    ncp = _entry_point("ncp-hpo") or [sys.executable, "-m", "ncp_hpo.cli"]
    optuna = _entry_point("optuna")
    rows: list[tuple[str, float | None]] = [
        ("ncp-hpo --help", _median_s([*ncp, "--help"], args.repeats)),
        ("ncp-hpo --version", _median_s([*ncp, "--version"], args.repeats)),
        ("optuna --help", _median_s([*optuna, "--help"], args.repeats) if optuna else None),
    ]
    print(f"median of {args.repeats} runs (target: ncp-hpo under {TARGET_S} s)")
    print(f"{'command':<20} {'median s':>9}")
    for name, t in rows:
        print(f"{name:<20} {'-' if t is None else f'{t:.3f}':>9}")


if __name__ == "__main__":
    main()
