"""Does a recorded comparison regenerate here? Re-run a slice and compare trial by trial.

    python benchmarks/check_record.py                                  # NAS-Bench-201 record
    python benchmarks/check_record.py benchmarks/results/seg --seeds 2 --trials 30

Prints the record's environment beside this one and one line per study that differs; exits 1
when any differs. Outputs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from ncp_hpo._numerics import pin_cpu_math

pin_cpu_math()  # before torch loads, as the ncp-hpo command does

from ncp_hpo._numerics import environment  # noqa: E402
from ncp_hpo.experiments import check_record  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("record", nargs="?", default=str(HERE / "results" / "nas-bench-201"))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--samplers", default=None, help="comma-separated (default: the record's)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    samplers = tuple(args.samplers.split(",")) if args.samplers else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ncp-record-") as tmp:
        check = check_record(
            args.record,
            out=tmp,
            seeds=args.seeds,
            trials=args.trials,
            samplers=samplers,
            data_dir=args.data_dir,
        )
    print(f"record:    {', '.join(f'{k} {v}' for k, v in check.record_environment.items())}")
    print(f"this run:  {', '.join(f'{k} {v}' for k, v in environment().items())}")
    print(
        f"compared {len(check.compared)} studies x {check.trials} trials "
        f"in {time.perf_counter() - t0:.0f} s: "
        + ("identical" if check.ok else f"{len(check.mismatches)} differ")
    )
    for line in check.mismatches:
        print("  " + line)
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
