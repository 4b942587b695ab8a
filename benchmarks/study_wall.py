"""Wall time of ``ncp-hpo study --task cls --trials 20`` on a shared CPU (issue 23's goal).

Runs the command a user runs (CPU defaults: one torch thread per trial process, the task's
prior, digits) once per seed in a fresh SQLite study, while ``--busy`` other processes
each keep one core busy (a tight Python loop), and prints per seed the wall time, the
trials run and the best top-1, then the medians. The goal: at most 5 minutes and a best
of at least 90 % top-1 on 2 cores with one of them kept busy.

    python benchmarks/study_wall.py [--seeds 0,1,2] [--busy 1] [--trials 20] [--out DIR]

``NCP_HPO_DATA`` must point at the NAS-Bench-MR data (the prior's setting).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 300.0
GOAL_TOP1 = 90.0


def _spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def _run(seed: int, trials: int, out: Path, cold: bool) -> tuple[float, int, float | None]:
    """(wall s, trials run, best top-1 %) of one study (``cold``: with an empty user cache,
    so the prior is fitted first, as on a user's first study)."""
    db = out / f"study-{seed}.db"
    db.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "ncp_hpo.cli", "study", "--task", "cls",
        "--trials", str(trials), "--seed", str(seed), "--storage", f"sqlite:///{db}",
        "--study-name", f"wall-{seed}", "--quiet",
    ]  # fmt: skip
    t0 = time.perf_counter()
    env = dict(os.environ)
    if cold:
        env["NCP_HPO_CACHE"] = tempfile.mkdtemp(prefix="ncp-study-wall-cache-")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"study failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return wall, *_best(f"sqlite:///{db}", f"wall-{seed}")


def _best(url: str, name: str) -> tuple[int, float | None]:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=name, storage=url)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None]
    return len(done), (max(complete) if complete else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside it (1)")
    parser.add_argument("--trials", type=int, default=20, help="trials per study (20)")
    parser.add_argument("--out", type=Path, default=None, help="where the study DBs go")
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="each study with an empty user cache (the prior is fitted first)",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="ncp-study-wall-"))
    out.mkdir(parents=True, exist_ok=True)
    spinners = [mp.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    rows = []
    try:
        for seed in seeds:
            rows.append((seed, *_run(seed, args.trials, out, args.cold_cache)))
            wall, ran, best = rows[-1][1:]
            print(f"seed {seed}: {wall:.0f} s, {ran} trials, best top-1 {best}", flush=True)
    finally:
        for p in spinners:
            p.terminate()
    import optuna
    import torch

    print(
        f"\nncp-hpo study --task cls --trials {args.trials} (defaults), {len(seeds)} seeds, "
        f"{args.busy} busy process(es) on {os.cpu_count()} CPUs, "
        f"{'empty' if args.cold_cache else 'the user'} cache"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"optuna {optuna.__version__}, 1 torch thread per trial process (the default)"
    )
    walls = [r[1] for r in rows]
    bests = [r[3] for r in rows if r[3] is not None]
    print(
        f"median wall {statistics.median(walls):.0f} s (goal <= {GOAL_S:.0f} s); "
        f"max {max(walls):.0f} s"
    )
    if bests:
        print(
            f"median best top-1 {statistics.median(bests):.2f} % (goal >= {GOAL_TOP1:.0f} %); "
            f"min {min(bests):.2f} %"
        )
    print(
        "command: python benchmarks/study_wall.py "
        + " ".join(re.sub(r"\s+", " ", a) for a in sys.argv[1:])
    )


if __name__ == "__main__":
    main()
