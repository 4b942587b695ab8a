"""Outage figures: the PostgreSQL server stopped and started under running workers.

For each ``--outages`` duration the script starts ``--workers`` ``ncp-hpo worker``
processes on a fresh study (NAS-Bench-201 table, random sampler: the storage is what is
measured; every trial sleeps ``--trial-s`` seconds after its code is chosen, through
``NCP_HPO_FAULTS``, so trials span the outage), waits until trials are running, stops the
server (``pg_ctl stop -m fast``: connections dropped, new ones refused), starts it again
after the outage, and reads the study back:

* COMPLETE trials (must equal the budget), COMPLETE trials lost, FAILED trials;
* what became of the trials running when the server stopped (their value was computed
  during or after the outage; COMPLETE means it was written once the server was back);
* the seconds from the server's return to the next COMPLETE trial;
* the workers' exit status and the longest outage they report.

Then one outage longer than ``--window`` (the workers' ``--storage-retry``): seconds from
the stop to the workers' exit, their one-line message, and the time a new worker started
after the server is back takes to finish the study.

Baseline (issue 15, before this change, Optuna's own heartbeat, grace 15 s): a 5 s restart
killed Optuna's heartbeat thread, and a live 40 s trial was failed as stale and ran twice;
a 40 s outage stopped the workers after 3 retries (4 + 8 + 16 s) with the trials in flight
left RUNNING.

Needs the test server of ``.ci/postgres.sh`` (``NCP_HPO_TEST_POSTGRES`` and
``NCP_HPO_TEST_PG_CTL``) and the benchmark data (``NCP_HPO_TEST_DATA``)::

    source .ci/postgres.sh
    python benchmarks/storage_outage.py --outages 3 8 20 --grace 5 --window 30
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _pg_study import pg as _pg  # benchmarks/, next to this script
from _pg_study import read_trials as _trials

REPO = Path(__file__).resolve().parents[1]


def _workers(n: int, study: str, a: argparse.Namespace, faults: str, seed0: int) -> list[Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NCP_HPO_FAULTS": faults}
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-m", "ncp_hpo.cli", "worker", "--study-name", study, "--no-mlflow"]
        cmd += ["--storage", a.storage, "--benchmark", "nas-bench-201", "--sampler", "random"]
        cmd += ["--trials", str(a.budget), "--seed", str(seed0 + i), "--heartbeat", "1"]
        cmd += ["--grace", str(a.grace), "--storage-retry", str(a.window), "--poll", "0.5"]
        if a.data_dir:
            cmd += ["--data-dir", a.data_dir]
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
            )
        )
    return procs


def _wait_running(
    study: str, storage: str, n: int, timeout: float = 300
) -> tuple[set[int], set[int]]:
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = _trials(study, storage)
        done = {t.number for t in trials if t.state == TrialState.COMPLETE}
        busy = {t.number for t in trials if t.state == TrialState.RUNNING and len(t.params) == 6}
        if done and len(busy) >= n:
            return done, busy
        time.sleep(0.2)
    raise SystemExit("the workers never ran trials (is the data there? NCP_HPO_TEST_DATA)")


def _outage(seconds: float, a: argparse.Namespace, ctl: list[str]) -> dict[str, Any]:
    import re

    from optuna.trial import TrialState

    study = f"outage-{uuid.uuid4().hex[:8]}"
    procs = _workers(a.workers, study, a, f"sleep@*:{a.trial_s}", 0)
    try:
        before, live = _wait_running(study, a.storage, a.workers)
        _pg(ctl, "stop")
        time.sleep(seconds)
        _pg(ctl, "start")
        back = time.time()
        outs = [p.communicate(timeout=600)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
        _pg(ctl, "start")
    trials = _trials(study, a.storage)
    by = {t.number: t for t in trials}
    after = [
        t.datetime_complete.timestamp()
        for t in trials
        if t.state == TrialState.COMPLETE and t.datetime_complete.timestamp() > back
    ]
    seen = [float(x) for o in outs for x in re.findall(r"longest ([0-9.]+) s", o)]
    return {
        "outage_s": seconds,
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "lost": len([n for n in before if by[n].state != TrialState.COMPLETE]),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "live": f"{sum(by[n].state == TrialState.COMPLETE for n in live)}/{len(live)}",
        "to_next_s": min(after) - back if after else float("nan"),
        "codes": sorted({p.returncode for p in procs}),
        "seen_s": max(seen) if seen else 0.0,
    }


def _past_window(a: argparse.Namespace, ctl: list[str]) -> dict[str, Any]:
    from optuna.trial import TrialState

    study = f"outage-{uuid.uuid4().hex[:8]}"
    procs = _workers(a.workers, study, a, f"sleep@*:{a.trial_s}", 0)
    try:
        _wait_running(study, a.storage, a.workers)
        _pg(ctl, "stop")
        t0 = time.monotonic()
        outs = [p.communicate(timeout=600)[0] for p in procs]
        stopped = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
        _pg(ctl, "start")
    left = sum(t.state == TrialState.RUNNING for t in _trials(study, a.storage))
    t0 = time.monotonic()
    new = _workers(1, study, a, "", 100)
    new[0].communicate(timeout=900)
    recovered = time.monotonic() - t0
    trials = _trials(study, a.storage)
    return {
        "stopped_s": stopped,
        "codes": sorted({p.returncode for p in procs}),
        "line": outs[0].strip().splitlines()[-1] if outs[0].strip() else "",
        "left_running": left,
        "recovered_s": recovered,
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "stale": sum(
            str(t.user_attrs.get("fail_reason", "")).startswith("stale heartbeat") for t in trials
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--outages", type=float, nargs="+", default=[3.0, 8.0, 20.0])
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--budget", type=int, default=12)
    p.add_argument("--trial-s", type=float, default=4.0)
    p.add_argument("--grace", type=int, default=5)
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--storage", default=os.environ.get("NCP_HPO_TEST_POSTGRES"))
    p.add_argument("--pg-ctl", default=os.environ.get("NCP_HPO_TEST_PG_CTL"))
    p.add_argument("--data-dir", default=os.environ.get("NCP_HPO_TEST_DATA"))
    a = p.parse_args()
    if not a.storage or not a.pg_ctl:
        raise SystemExit(
            "source .ci/postgres.sh first (NCP_HPO_TEST_POSTGRES, NCP_HPO_TEST_PG_CTL)"
        )
    sys.path.insert(0, str(REPO))
    ctl = shlex.split(a.pg_ctl)
    print(
        f"{a.workers} workers, budget {a.budget}, trials of {a.trial_s:g} s, heartbeat 1 s, "
        f"grace {a.grace} s, --storage-retry {a.window:g} s"
    )
    print(
        "| outage s | COMPLETE | lost | FAILED | running at stop -> COMPLETE | "
        "back -> next COMPLETE s | longest outage seen by a worker s | exit |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seconds in a.outages:
        r = _outage(seconds, a, ctl)
        print(
            f"| {r['outage_s']:g} | {r['complete']}/{a.budget} | {r['lost']} | {r['failed']} | "
            f"{r['live']} | {r['to_next_s']:.1f} | {r['seen_s']:.1f} | {r['codes']} |",
            flush=True,
        )
    r = _past_window(a, ctl)
    print(
        f"\nserver stopped for good: workers exited {r['codes']} {r['stopped_s']:.1f} s after "
        f"the stop (window {a.window:g} s), {r['left_running']} trial(s) left RUNNING;\n"
        f"  last line: {r['line']}\n  server back, a new worker finished the study in "
        f"{r['recovered_s']:.1f} s: {r['complete']}/{a.budget} COMPLETE, {r['stale']} failed "
        "as stale and re-run"
    )


if __name__ == "__main__":
    main()
