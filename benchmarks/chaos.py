"""Chaos figures (issue 26): workers SIGKILLed and SIGTERMed at random moments, storage outages.

For each ``--storages`` entry (``postgres``, ``journal``) the script runs a fresh study on the
NAS-Bench-201 table (``--sampler``, NCP by default, with light settings) with a budget of
``--budget`` COMPLETE trials. A supervisor keeps ``--workers`` ``ncp-hpo worker`` processes
running (a dead worker is replaced by a new one, with a new seed) while a seeded schedule
(``--seed``) signals them:

* ``--kills`` SIGKILLs of a random worker at a random moment (it may be starting, asking,
  evaluating, writing, waiting for the budget);
* ``--prebeat`` more SIGKILLs aimed at a trial that exists and has not beaten yet: every
  trial's first heartbeat is held back ``--nobeat`` s (fault ``nobeat``, see
  ``ncp_hpo/runtime/_faults.py``), and the kill goes to a worker whose newest trial is
  younger than that. Whether a kill really landed before the first beat is read from the
  study: the trial ended FAILED with the never-beat reason;
* ``--terms`` SIGTERMs of a random worker (it fails its own trial, ``interrupted``).

Every trial sleeps ``--trial-s`` s after its code is chosen (fault ``sleep``), so that kills
land in trials. The gap between two signals is drawn at random around a pace that spreads
the schedule over the study's expected length. Outages, while no signal is sent and no
worker is started:

* PostgreSQL: the server of ``.ci/postgres.sh`` is stopped (``pg_ctl stop -m fast``) for
  each ``--outages`` duration, and started again; the workers ride it out
  (``--storage-retry`` longer than the longest outage);
* journal: a file outage cannot be made on one machine (the journal is a local file, and
  root writes read-only files), so every worker is instead paused with SIGSTOP for each
  duration and resumed with SIGCONT: a frozen cluster (a suspended VM, a stopped
  container). It tests the staleness logic on resume: beats older than the grace period
  that belong to live workers.

Then the study is read back. Goals (exit 1 if one is missed): COMPLETE == budget, 0 RUNNING
or WAITING left, 0 healthy trials failed (FAILED trials whose worker was never signalled),
0 duplicate codes among the COMPLETE trials, at least ``--min-kills`` SIGKILLs sent.

Needs the benchmark data (``NCP_HPO_TEST_DATA``) and, for postgres, ``NCP_HPO_TEST_POSTGRES``
and ``NCP_HPO_TEST_PG_CTL`` (``source .ci/postgres.sh``)::

    source .ci/postgres.sh
    python benchmarks/chaos.py --storages postgres journal
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _pg_study import pg  # benchmarks/, next to this script

REPO = Path(__file__).resolve().parents[1]
NCP_LIGHT = (
    "--sampler-param",
    "iterations=20",
    "--sampler-param",
    'predictor_params={"epochs": 60}',
)
UNBEATEN = "stale heartbeat: no beat since the trial started"
STARTED_ATTR = "ncp_hpo:started"  # ncp_hpo.runtime._liveness.STARTED_ATTR


@dataclass
class Signal:
    """One signal sent: to which worker process, what, when (s since the start)."""

    pid: int
    kind: str  # "SIGKILL", "SIGKILL pre-beat", "SIGTERM"
    at_s: float


@dataclass
class Supervisor:
    """Keeps ``n`` workers running; a dead one is replaced unless ``hold`` is set."""

    cmd: list[str]
    env: dict[str, str]
    n: int
    log_dir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0
    hold: bool = False
    finished: bool = False  # a worker exited 0: the budget is met, replace no more
    exits: list[tuple[int, int, Path]] = field(default_factory=list)  # pid, code, log

    def spawn(self) -> None:
        log = self.log_dir / f"worker-{self.started:03d}.log"
        cmd = [*self.cmd, "--seed", str(self.started)]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env)
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        self.started += 1

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def tend(self) -> None:
        """Reap dead workers and start replacements."""
        for p in [p for p in self.procs if p.poll() is not None]:
            self.procs.remove(p)
            self.exits.append((p.pid, int(p.returncode), p.log))  # type: ignore[attr-defined]
            self.finished |= p.returncode == 0
        while not (self.hold or self.finished) and len(self.procs) < self.n:
            self.spawn()

    def wait_all(self, timeout: float) -> int:
        """Wait for the live workers to exit by themselves; kill the rest (their count)."""
        deadline = time.monotonic() + timeout
        while self.live() and time.monotonic() < deadline:
            self.tend()
            time.sleep(0.2)
        left = self.live()
        for p in left:
            p.kill()
            p.wait()
        self.tend()
        return len(left)


class Study:
    """The study as the driver sees it: one storage opened once (a journal is read
    incrementally), reads that may fail while the storage is down."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self._storage: Any = None
        self._id: int | None = None

    def trials(self) -> list[Any]:
        from ncp_hpo.runtime import open_storage

        try:
            if self._storage is None:
                self._storage = open_storage(self.url, heartbeat=None, retry_window=5.0)
            if self._id is None:
                self._id = self._storage.get_study_id_from_name(self.name)
            return list(self._storage.get_all_trials(self._id, deepcopy=False))
        except Exception:  # not created yet, or the storage is down
            return []

    def complete(self) -> int:
        return sum(t.state.name == "COMPLETE" for t in self.trials())

    def throughput(self) -> float | None:
        """COMPLETE trials per second between the first and the last completion (workers'
        start-up excluded), or ``None`` before three trials are COMPLETE."""
        ends = sorted(
            t.datetime_complete.timestamp()
            for t in self.trials()
            if t.state.name == "COMPLETE" and t.datetime_complete is not None
        )
        if len(ends) < 3 or ends[-1] <= ends[0]:
            return None
        return (len(ends) - 1) / (ends[-1] - ends[0])


def worker_pid(t: Any) -> int | None:
    """The process that started trial ``t``: its start mark, else its ``worker`` attribute."""
    mark = t.system_attrs.get(STARTED_ATTR)
    if isinstance(mark, list) and len(mark) == 4 and isinstance(mark[2], int):
        return mark[2]
    worker = str(t.user_attrs.get("worker", ""))
    tail = worker.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def victim(study: Study, sup: Supervisor, young_s: float | None, rng: random.Random) -> int | None:
    """A live worker that has started a trial (past its start-up), or, with ``young_s``,
    one whose newest RUNNING trial started less than ``young_s`` s ago."""
    live = {p.pid for p in sup.live()}
    now, found = time.time(), []
    for t in study.trials():
        mark = t.system_attrs.get(STARTED_ATTR)
        if not (isinstance(mark, list) and len(mark) == 4 and mark[2] in live):
            continue
        if young_s is None or (t.state.name == "RUNNING" and now - float(mark[0]) < young_s):
            found.append(int(mark[2]))
    return rng.choice(sorted(set(found))) if found else None


def schedule(a: argparse.Namespace) -> list[str]:
    """The seeded order of the signals to send."""
    kinds = ["SIGKILL"] * a.kills + ["SIGKILL pre-beat"] * a.prebeat + ["SIGTERM"] * a.terms
    random.Random(a.seed).shuffle(kinds)
    return kinds


def send(
    kind: str, study: Study, sup: Supervisor, rng: random.Random, a: argparse.Namespace
) -> int | None:
    """Send one signal of ``kind``; the pid signalled, or ``None`` (no fitting worker yet)."""
    young = a.nobeat - 0.5 if kind == "SIGKILL pre-beat" else None
    deadline = time.monotonic() + 30.0
    pid = None
    while pid is None and time.monotonic() < deadline and not sup.finished:
        pid = victim(study, sup, young, rng)
        if pid is None:
            sup.tend()
            time.sleep(0.05)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM if kind == "SIGTERM" else signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


def outage(kind: str, seconds: float, sup: Supervisor, ctl: list[str] | None) -> float:
    """A server outage (``ctl``: PostgreSQL) or a pause of every worker (SIGSTOP/SIGCONT);
    its real length in seconds."""
    sup.hold = True
    t0 = time.monotonic()
    paused = sup.live() if ctl is None else []
    try:
        if ctl is not None:
            pg(ctl, "stop")
        for p in paused:
            p.send_signal(signal.SIGSTOP)
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    finally:
        for p in paused:
            p.send_signal(signal.SIGCONT)
        if ctl is not None:
            pg(ctl, "start")
        sup.hold = False
    return time.monotonic() - t0


def pace(study: Study, left: int, a: argparse.Namespace) -> float:
    """Mean seconds between signals so that the ``left`` signals fit in the time the study
    is expected to need (its COMPLETE rate so far), within [0.5, 6] s."""
    done = study.complete()
    rate = study.throughput() or a.workers / (3 * a.trial_s)
    remaining = max(1.0, 0.85 * a.budget - done) / max(rate, 1e-3)
    return min(6.0, max(0.5, remaining / max(1, left)))


def drive(
    study: Study, sup: Supervisor, a: argparse.Namespace, ctl: list[str] | None
) -> dict[str, Any]:
    """Run the schedule and the outages until the workers are done; the driver's log."""
    rng = random.Random(a.seed + 1)
    kinds, sent = schedule(a), []
    outages = sorted(a.outages)
    marks = [a.budget * (i + 1) // (len(outages) + 2) for i in range(len(outages))]
    done_outages: list[float] = []
    t0 = time.monotonic()
    sup.tend()
    next_at = t0 + a.warmup
    while not sup.finished:
        sup.tend()
        if outages and study.complete() >= marks[len(done_outages)]:
            done_outages.append(
                outage("pause" if ctl is None else "server", outages.pop(0), sup, ctl)
            )
            next_at = time.monotonic() + 2.0
        elif kinds and time.monotonic() >= next_at:
            pid = send(kinds[0], study, sup, rng, a)
            if pid is not None:
                sent.append(Signal(pid, kinds.pop(0), time.monotonic() - t0))
            next_at = time.monotonic() + pace(study, len(kinds), a) * rng.uniform(0.2, 1.8)
        time.sleep(0.1)
    left_alive = sup.wait_all(timeout=180.0)
    return {
        "signals": sent,
        "unsent": len(kinds),
        "outages": done_outages,
        "outages_unmade": len(outages),
        "killed_at_end": left_alive,
        "wall_s": time.monotonic() - t0,
    }


def worker_command(url: str, study: str, a: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "ncp_hpo.cli", "worker", "--study-name", study, "--storage", url]
    cmd += ["--no-mlflow"]
    cmd += ["--benchmark", "nas-bench-201", "--sampler", a.sampler, "--trials", str(a.budget)]
    cmd += ["--heartbeat", "1", "--grace", str(a.grace), "--poll", "0.5"]
    cmd += ["--retries", str(a.retries), "--storage-retry", str(a.window), "--max-failures", "50"]
    if a.data_dir:
        cmd += ["--data-dir", a.data_dir]
    if a.sampler == "ncp":
        cmd += ["--startup-trials", "5", *NCP_LIGHT]
    return cmd


def audit(trials: list[Any], log: dict[str, Any], budget: int) -> dict[str, Any]:
    """The figures of one run, from the study read back and the driver's log."""
    states = Counter(t.state.name for t in trials)
    signalled = {s.pid: s.kind for s in log["signals"]}
    failed = [t for t in trials if t.state.name == "FAIL"]
    reasons = Counter(str(t.user_attrs.get("fail_reason", "(none)")) for t in failed)
    healthy = [t.number for t in failed if worker_pid(t) not in signalled]
    codes = Counter(tuple(sorted(t.params.items())) for t in trials if t.state.name == "COMPLETE")
    killed_in_trial = {worker_pid(t) for t in failed} & set(signalled)
    return {
        "complete": states.get("COMPLETE", 0),
        "running": states.get("RUNNING", 0),
        "waiting": states.get("WAITING", 0),
        "failed": len(failed),
        "pruned": states.get("PRUNED", 0),
        "reasons": reasons,
        "healthy_failed": healthy,
        "duplicates": sum(n - 1 for n in codes.values()),
        "kinds": Counter(s.kind for s in log["signals"]),
        "prebeat_landed": sum(
            r.startswith(UNBEATEN) for r in (str(t.user_attrs.get("fail_reason")) for t in failed)
        ),
        "in_trial": len(killed_in_trial),
        "budget": budget,
    }


def goals(r: dict[str, Any], log: dict[str, Any], a: argparse.Namespace) -> list[str]:
    """The goals missed (empty: all met)."""
    kills = r["kinds"]["SIGKILL"] + r["kinds"]["SIGKILL pre-beat"]
    missed = []
    if r["complete"] != r["budget"]:
        missed.append(f"COMPLETE {r['complete']} != budget {r['budget']}")
    if r["running"] or r["waiting"]:
        missed.append(f"{r['running']} RUNNING + {r['waiting']} WAITING left")
    if r["healthy_failed"]:
        missed.append(f"healthy trials failed: {r['healthy_failed']}")
    if r["duplicates"]:
        missed.append(f"{r['duplicates']} duplicate codes")
    if kills < a.min_kills:
        missed.append(f"{kills} SIGKILLs sent < {a.min_kills}")
    if log["outages_unmade"]:
        missed.append(f"{log['outages_unmade']} outage(s) not made (study ended first)")
    if log["killed_at_end"]:
        missed.append(f"{log['killed_at_end']} worker(s) still alive 180 s after the budget")
    return missed


def report(name: str, r: dict[str, Any], log: dict[str, Any], sup: Supervisor) -> None:
    print(f"\n## {name}\n")
    print(
        f"- COMPLETE {r['complete']}/{r['budget']}, RUNNING left {r['running']}, WAITING left "
        f"{r['waiting']}, FAILED {r['failed']}, PRUNED (over budget) {r['pruned']}"
    )
    print(f"- healthy trials failed: {len(r['healthy_failed'])} {r['healthy_failed'] or ''}")
    print(f"- duplicate codes among COMPLETE: {r['duplicates']}")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(r["kinds"].items()))
    print(
        f"- signals sent: {kinds} ({log['unsent']} of the schedule unsent); signalled workers "
        f"that left a FAILED trial: {r['in_trial']}"
    )
    print(
        "- kills that landed before the trial's first beat (never-beat reason): "
        f"{r['prebeat_landed']}"
    )
    shown = ", ".join(f"{s:.1f}" for s in log["outages"]) or "none"
    print(f"- outages made (s): {shown}")
    own = [
        (pid, code, lg)
        for pid, code, lg in sup.exits
        if code != 0 and pid not in {s.pid for s in log["signals"]}
    ]
    print(f"- workers started {sup.started}; exited with an error unsignalled: {len(own)}")
    for pid, code, lg in own[:5]:
        tail = lg.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"    pid {pid} exit {code}: {tail[0][:200]}")
    print(f"- wall time {log['wall_s']:.0f} s")
    print("- FAILED trials by fail_reason:")
    for reason, n in r["reasons"].most_common():
        print(f"    {n:3d}  {reason}")


def run(name: str, a: argparse.Namespace, work: Path) -> list[str]:
    """One storage: the study, the chaos, the figures; the goals missed."""
    study_name = f"chaos-{name}-{uuid.uuid4().hex[:8]}"
    ctl = None
    if name == "postgres":
        url = a.storage or ""
        ctl = shlex.split(a.pg_ctl)
    else:
        url = f"journal:{work / (study_name + '.log')}"
    log_dir = work / study_name
    log_dir.mkdir(parents=True)
    faults = f"sleep@*:{a.trial_s},nobeat@*:{a.nobeat}"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": "ignore",
        "NCP_HPO_FAULTS": faults,
    }
    sup = Supervisor(worker_command(url, study_name, a), env, a.workers, log_dir)
    study = Study(url, study_name)
    try:
        log = drive(study, sup, a, ctl)
    finally:
        for p in sup.live():
            p.send_signal(signal.SIGCONT)
            p.kill()
        if ctl is not None:
            pg(ctl, "start")
    r = audit(Study(url, study_name).trials(), log, a.budget)
    report(name, r, log, sup)
    missed = goals(r, log, a)
    print("- goals: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    print(f"- study {study_name!r}, worker logs in {log_dir}")
    return missed


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--storages", nargs="+", choices=("postgres", "journal"), default=["postgres", "journal"]
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--budget", type=int, default=60)
    p.add_argument("--sampler", default="ncp")
    p.add_argument("--kills", type=int, default=42, help="SIGKILLs at random moments")
    p.add_argument("--prebeat", type=int, default=12, help="SIGKILLs aimed before a first beat")
    p.add_argument("--terms", type=int, default=6, help="SIGTERMs")
    p.add_argument("--min-kills", type=int, default=50, help="goal: SIGKILLs sent")
    p.add_argument("--outages", type=float, nargs="*", default=[10.0, 60.0])
    p.add_argument("--trial-s", type=float, default=2.0, help="sleep of every trial")
    p.add_argument("--nobeat", type=float, default=2.0, help="first beat held back (s)")
    p.add_argument("--grace", type=int, default=5)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--window", type=float, default=120.0, help="workers' --storage-retry")
    p.add_argument("--warmup", type=float, default=8.0, help="s before the first signal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", help="journals and worker logs (default: a temporary folder)")
    p.add_argument("--storage", default=os.environ.get("NCP_HPO_TEST_POSTGRES"))
    p.add_argument("--pg-ctl", default=os.environ.get("NCP_HPO_TEST_PG_CTL"))
    p.add_argument("--data-dir", default=os.environ.get("NCP_HPO_TEST_DATA"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if "postgres" in a.storages and not (a.storage and a.pg_ctl):
        raise SystemExit(
            "postgres: source .ci/postgres.sh first (NCP_HPO_TEST_POSTGRES, NCP_HPO_TEST_PG_CTL)"
        )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from ncp_hpo._numerics import environment_line

    work = Path(a.work_dir or tempfile.mkdtemp(prefix="ncp-chaos-"))
    print(f"# chaos: {a.workers} workers x {a.budget} trials, sampler {a.sampler}, seed {a.seed}")
    print(
        f"trials sleep {a.trial_s:g} s, first beat held back {a.nobeat:g} s, heartbeat 1 s, "
        f"grace {a.grace} s, --retries {a.retries}, --storage-retry {a.window:g} s; "
        f"schedule: {a.kills} SIGKILL + {a.prebeat} SIGKILL pre-beat + {a.terms} SIGTERM, "
        f"outages {a.outages} s"
    )
    print(environment_line())
    missed = {name: run(name, a, work) for name in a.storages}
    bad = {k: v for k, v in missed.items() if v}
    print("\nall goals met" if not bad else f"\ngoals missed: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
