"""Chaos: the PostgreSQL server stopped and started under running ``ncp-hpo worker``\\ s.

The server is the one ``.ci/postgres.sh`` starts (``NCP_HPO_TEST_PG_CTL`` is its
``pg_ctl``): ``pg_ctl stop -m fast`` drops every connection and refuses new ones (a real
outage on loopback), ``pg_ctl start`` brings it back on the same data directory and port.

* an outage longer than ``--grace`` in the middle of a multi-worker run, with trials that
  outlast it: no COMPLETE trial lost, no healthy trial failed (so every heartbeat thread
  beat again after the outage: one that died on its first failed write, as Optuna's
  does, leaves its trial stale past the second check), exactly the budget, no code
  evaluated twice;
* an outage longer than ``--storage-retry``: every worker stops with one line (status 2),
  and a worker started after the server is back finishes the study (the trials left
  RUNNING are failed as stale and queued again with the same code).

Each test is bounded (the workers' trials sleep a few seconds so that they span the
outage) and restarts the server whatever happens. Skipped without
``NCP_HPO_TEST_POSTGRES``/``NCP_HPO_TEST_PG_CTL``.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _distributed import NCP_ARGS, Workers, audit, load, start_workers, worker_env
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class PgServer:
    """The test server: its ``pg_ctl`` command and the TCP address clients use."""

    ctl: list[str]
    host: str
    port: int

    def running(self) -> bool:
        return subprocess.run([*self.ctl, "status"], capture_output=True).returncode == 0

    def stop(self) -> None:
        """Stop fast (connections are dropped); nothing when it is not running."""
        if self.running():
            stop = [*self.ctl, "stop", "-m", "fast", "-w"]
            subprocess.run(stop, capture_output=True, check=True, timeout=60)

    def start(self, timeout: float = 60.0) -> None:
        """Start it and return once it accepts TCP connections.

        Once (stop 34's CI) a worker started right after ``pg_ctl start -w`` met
        "connection refused", for a reason not found; so the start is retried until the
        server answers on its address, for up to ``timeout`` seconds.
        """
        deadline, said = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if not self.running():
                done = subprocess.run([*self.ctl, "start", "-w"], capture_output=True, timeout=60)
                said = (done.stdout + done.stderr).decode(errors="replace")
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the server did not come back in {timeout:.0f} s: {said}")

    def report(self, lines: int = 20) -> str:
        """Whether it runs and the tail of its log, for a failing assertion's message."""
        log = Path(self.ctl[self.ctl.index("-l") + 1]) if "-l" in self.ctl else None
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log and log.exists() else []
        return f"--- server running: {self.running()}; its log:\n" + "\n".join(tail)


@pytest.fixture
def pg_ctl(postgres_url: str) -> Iterator[PgServer]:
    """The test server; it is running again after the test."""
    cmd = os.environ.get("NCP_HPO_TEST_PG_CTL")
    if not cmd:
        pytest.skip("NCP_HPO_TEST_PG_CTL is not set (source .ci/postgres.sh to start a server)")
    url = make_url(postgres_url)
    server = PgServer(shlex.split(cmd), url.host or "127.0.0.1", url.port or 5432)
    yield server
    server.start()


def _wait(
    study: str, storage: str, *, complete: int, running: int, timeout: float
) -> tuple[set[int], set[int]]:
    """Wait until the study holds ``complete`` COMPLETE and ``running`` RUNNING trials
    with their code chosen; the numbers of the COMPLETE and of the RUNNING trials."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = load(study, storage).get_trials(deepcopy=False)
        except Exception:  # not created yet
            trials = []
        done = {t.number for t in trials if t.state == TrialState.COMPLETE}
        busy = [t for t in trials if t.state == TrialState.RUNNING and len(t.params) == 6]
        if len(done) >= complete and len(busy) >= running:
            return done, {t.number for t in busy}
        time.sleep(0.2)
    raise AssertionError(f"the study never had {complete} complete + {running} running trials")


def _one_line_stop(log: Path) -> str:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("ncp-hpo: error: stopped"), text
    return last


def _start(
    n: int,
    study: str,
    storage: str,
    data: Path,
    log_dir: Path,
    budget: int,
    *,
    faults: str,
    extra: tuple[str, ...],
    seed0: int = 0,
) -> Workers:
    return start_workers(
        n,
        study=study,
        storage=storage,
        data_dir=data,
        budget=budget,
        sampler="ncp",
        log_dir=log_dir,
        extra=("--startup-trials", "3", *NCP_ARGS, "--heartbeat", "1", "--poll", "0.5", *extra),
        env=worker_env(NCP_HPO_FAULTS=faults),
        seed0=seed0,
    )


def test_outage_longer_than_grace_fails_no_healthy_trial(
    postgres_url: str,
    pg_ctl: PgServer,
    drop_studies: list[str],
    study_name: str,
    shared_data_dir: Path,
    tmp_path: Path,
    record_property,
) -> None:
    # The outage (6 s) is twice the grace period. Trials take 3 s, except trials 3, 4 and
    # 5 (the ones running when the server stops), which take 12, 18 and 24 s: when trial
    # 3 ends after the outage, its worker checks the others, still running, and finds
    # their last beat older than the grace period; only a heartbeat thread that survived
    # the outage has beaten again by the second check, 3 s later.
    budget, n, outage, grace = 9, 3, 6.0, 3
    drop_studies.append(study_name)
    workers = _start(
        n,
        study_name,
        postgres_url,
        shared_data_dir,
        tmp_path,
        budget,
        faults="sleep@*:3,sleep@3:9,sleep@4:15,sleep@5:21",
        extra=("--grace", str(grace), "--storage-retry", "40"),
    )
    try:
        before, live = _wait(study_name, postgres_url, complete=3, running=n, timeout=120)
        t_stop = time.monotonic()
        pg_ctl.stop()
        time.sleep(max(0.0, outage - (time.monotonic() - t_stop)))
        pg_ctl.start()
        down = time.monotonic() - t_stop
        codes = workers.wait(timeout=150)
    finally:
        workers.kill()
        pg_ctl.start()
    assert codes == [0] * n, workers.tail() + pg_ctl.report()
    assert down > grace and live == {3, 4, 5}, (down, live)  # the case described above
    a = audit(load(study_name, postgres_url))
    complete = {t.number for t in a.complete}
    assert before <= complete, "a COMPLETE trial was lost"
    assert len(complete) == budget, a.line()
    assert a.states.get("FAIL", 0) == 0, (a.line(), workers.tail())
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0
    assert a.duplicates == 0, a.line()
    logs = "".join(log.read_text() for log in workers.logs)
    assert "storage unreachable" in logs and "storage back" in logs, (
        workers.tail() + pg_ctl.report()
    )
    assert "Traceback" not in logs, logs
    assert live <= complete, "a trial running through the outage was not completed"
    record_property(
        "ncp_summary",
        f"postgres stopped for {down:.1f} s (grace {grace} s) under {n} workers x {budget} "
        f"trials: {a.line()}; {len(before)} COMPLETE before the outage kept, {len(live)} "
        "running through it completed",
    )


def test_outage_past_the_retry_window_stops_in_one_line_and_a_new_worker_recovers(
    postgres_url: str,
    pg_ctl: PgServer,
    drop_studies: list[str],
    study_name: str,
    shared_data_dir: Path,
    tmp_path: Path,
    record_property,
) -> None:
    budget, n, window = 6, 2, 4
    drop_studies.append(study_name)
    args = ("--grace", "3", "--storage-retry", str(window), "--retries", "2")
    workers = _start(
        n,
        study_name,
        postgres_url,
        shared_data_dir,
        tmp_path,
        budget,
        faults="sleep@*:2",
        extra=args,
    )
    try:
        before, _ = _wait(study_name, postgres_url, complete=2, running=1, timeout=120)
        pg_ctl.stop()
        t_stop = time.monotonic()
        codes = workers.wait(timeout=60)
        stopped_after = time.monotonic() - t_stop
    finally:
        workers.kill()
        pg_ctl.start()
    assert codes == [2] * n, workers.tail() + pg_ctl.report()
    lines = [_one_line_stop(log) for log in workers.logs]
    for line in lines:
        assert "unreachable" in line and ("connection refused" in line or "restarting" in line)
    left = [t for t in load(study_name, postgres_url).trials if t.state == TrialState.RUNNING]

    # The new worker is not under test for outages: a longer retry window lets it ride out
    # a server that stalls after its restart (its log then says so) instead of failing.
    again = _start(
        1,
        study_name,
        postgres_url,
        shared_data_dir,
        tmp_path,
        budget,
        faults="",
        extra=("--grace", "3", "--storage-retry", "60", "--retries", "2"),
        seed0=10,
    )
    try:
        assert again.wait(timeout=150) == [0], again.tail() + pg_ctl.report()
    finally:
        again.kill()
    a = audit(load(study_name, postgres_url))
    assert before <= {t.number for t in a.complete}
    assert len(a.complete) == budget, a.line()
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0
    trials = {t.number: t for t in a.trials}
    for t in left:  # failed as stale by the new worker, re-run with the same code
        assert trials[t.number].state == TrialState.FAIL
        assert trials[t.number].user_attrs["fail_reason"].startswith("stale heartbeat")
        rerun = [r for r in a.complete if r.system_attrs.get("failed_trial") == t.number]
        # The outage may cut a trial between two suggestions: it then holds only the
        # parameters written before the cut, and the re-run draws the rest.
        assert len(rerun) == 1 and t.params.items() <= rerun[0].params.items()
    record_property(
        "ncp_summary",
        f"postgres stopped for good (retry window {window} s): {n} workers stopped with one "
        f"line after {stopped_after:.1f} s ({lines[0][:90]}...); {len(left)} trials left "
        f"RUNNING, recovered by a new worker: {a.line()}",
    )
