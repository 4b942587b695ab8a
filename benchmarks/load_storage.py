"""Load figures: N ``ncp-hpo worker`` processes sharing one study of 1,000+ trials.

For each sampler (NCP, TPE, random by default) the script starts ``--workers`` worker
processes on one fresh study with a budget of ``--trials`` COMPLETE trials on the
NAS-Bench-201 table (exact lookups, so the objective costs almost nothing and the figures
are the sampler's and the storage's), waits for them, and reads the study back:

* **throughput**: COMPLETE trials per second between the first trial's start and the last
  trial's end (worker start-up excluded);
* **trial latency**: median and 95th percentile of ``datetime_complete - datetime_start``
  per trial; it holds the sampler's proposal (sampled lazily inside the trial), the
  objective and every storage write of the trial;
* **sampler overhead**: median latency minus the random sampler's in the same run (random
  sampling is free, so its latency is the storage's and the worker's own cost);
* NCP's latency early and late in the study (its online predictor refits on the history);
* budget check (COMPLETE == budget), failed and over-budget trials, duplicate codes.

Samplers run one after the other, each alone on the machine. Storage: ``--storage URL``
(repeatable), else ``NCP_HPO_TEST_POSTGRES``, else a journal file in a temporary folder.

    python benchmarks/load_storage.py --trials 1000 --workers 4 \\
        --out benchmarks/results/load_storage.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _default_data_dir() -> str | None:
    env = os.environ.get("NCP_HPO_TEST_DATA")
    cand = Path(env) if env else REPO.parent / "shared" / "nas-bench-mr"
    return str(cand) if (cand / "nas-bench-201").is_dir() else None


def _run(sampler: str, storage: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from ncp_hpo.runtime import open_storage, redact

    study = f"load-{sampler}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("NCP_HPO_FAULTS", None)
    cmd = [sys.executable, "-m", "ncp_hpo.cli", "worker", "--study-name", study, "--no-mlflow"]
    cmd += ["--storage", storage, "--benchmark", "nas-bench-201", "--sampler", sampler]
    cmd += ["--trials", str(args.trials), "--quiet", "--heartbeat", str(args.heartbeat)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    t0 = time.monotonic()
    procs = []
    for i in range(args.workers):
        with open(log_dir / f"{study}-{i}.log", "wb") as fh:
            procs.append(
                subprocess.Popen(
                    [*cmd, "--seed", str(i)], stdout=fh, stderr=subprocess.STDOUT, env=env
                )
            )
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - t0
    if any(codes):
        tails = [(log_dir / f"{study}-{i}.log").read_text()[-2000:] for i in range(len(procs))]
        raise SystemExit(f"{sampler} workers failed ({codes}):\n" + "\n".join(tails))

    trials = optuna.load_study(
        study_name=study, storage=open_storage(storage, heartbeat=None)
    ).get_trials(deepcopy=False)
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    assert all(t.datetime_start and t.datetime_complete for t in done)
    lat = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]  # type: ignore[operator]
    first = min(t.datetime_start for t in done)  # type: ignore[type-var]
    last = max(t.datetime_complete for t in done)  # type: ignore[type-var]
    span = (last - first).total_seconds()
    keys = Counter(tuple(sorted(t.params.items())) for t in done)
    tenth = max(1, len(lat) // 10)
    if not args.keep and storage.startswith(("postgresql", "mysql")):
        optuna.delete_study(study_name=study, storage=storage)
    return {
        "sampler": sampler,
        "storage": redact(storage).split(":")[0].split("+")[0],
        "complete": len(done),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "over_budget": sum(bool(t.user_attrs.get("over_budget")) for t in trials),
        "duplicates": sum(c - 1 for c in keys.values()),
        "wall_s": wall,
        "span_s": span,
        "throughput": len(done) / span if span > 0 else float("nan"),
        "median_ms": 1000 * statistics.median(lat),
        "p95_ms": 1000 * statistics.quantiles(lat, n=20)[-1],
        "first10_ms": 1000 * statistics.median(lat[:tenth]),
        "last10_ms": 1000 * statistics.median(lat[-tenth:]),
        "workers": len({t.user_attrs.get("worker") for t in done}),
    }


def _table(rows: list[dict[str, Any]]) -> list[str]:
    base = {r["storage"]: r["median_ms"] for r in rows if r["sampler"] == "random"}
    out = [
        "| storage | sampler | workers | COMPLETE / failed / over budget | duplicates | "
        "throughput (trials/s) | trial latency median / p95 (ms) | sampler overhead vs random "
        "(ms/trial) | latency first / last 10% (ms) | wall incl. start-up (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get(r["storage"])
        over = f"{r['median_ms'] - b:.0f}" if b is not None else "n/a"
        out.append(
            f"| {r['storage']} | {r['sampler']} | {r['workers']} | {r['complete']} / "
            f"{r['failed']} / {r['over_budget']} | {r['duplicates']} | {r['throughput']:.2f} | "
            f"{r['median_ms']:.0f} / {r['p95_ms']:.0f} | {over} | {r['first10_ms']:.0f} / "
            f"{r['last10_ms']:.0f} | {r['wall_s']:.0f} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", action="append", help="storage URL (repeatable)")
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--samplers", default="random,tpe,ncp")
    p.add_argument("--heartbeat", type=int, default=10)
    p.add_argument("--data-dir", default=_default_data_dir())
    p.add_argument("--keep", action="store_true", help="keep the studies in an RDB storage")
    p.add_argument("--out", type=Path, help="write the figures as Markdown here")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ncp-load-"))
    storages = args.storage or [
        os.environ.get("NCP_HPO_TEST_POSTGRES") or f"journal:{tmp / 'load.log'}"
    ]
    load0 = os.getloadavg()
    rows = []
    for storage in storages:
        for sampler in args.samplers.split(","):
            t = time.monotonic()
            row = _run(sampler.strip(), storage, args, tmp)
            rows.append(row)
            print(
                f"{row['storage']:>10} {row['sampler']:>7}: {row['complete']} trials, "
                f"{row['throughput']:.2f} trials/s, median {row['median_ms']:.0f} ms/trial "
                f"({time.monotonic() - t:.0f} s)",
                flush=True,
            )
    load1 = os.getloadavg()
    import optuna
    import sqlalchemy

    lines = [
        "# Load figures: workers sharing one study",
        "",
        f"`python benchmarks/load_storage.py --trials {args.trials} --workers {args.workers}` "
        f"on {platform.node()}: {os.cpu_count()} CPU cores (shared; load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end), Python "
        f"{platform.python_version()}, Optuna {optuna.__version__}, SQLAlchemy "
        f"{sqlalchemy.__version__}. NAS-Bench-201 objective (table lookup), heartbeat "
        f"{args.heartbeat} s, default sampler settings (NCP: 10 random start-up trials, "
        "online predictor refitted on every proposal, 70 propagation iterations).",
        "",
        *_table(rows),
        "",
        "Throughput counts COMPLETE trials between the first start and the last end; latency "
        "is per trial (proposal + objective + storage writes); sampler overhead is the median "
        "latency minus the random sampler's on the same storage. Samplers ran one after the "
        "other. The machine was shared with other jobs, so absolute numbers are pessimistic; "
        "compare rows within one table.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
