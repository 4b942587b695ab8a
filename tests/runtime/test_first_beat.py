"""A trial whose worker is killed or stopped before its first heartbeat (issue 26, item 1).

Optuna's stale check skips a RUNNING trial that never beat, so such a trial used to stay
RUNNING forever and the last workers waited for it until ``--timeout``. Real worker
processes, real signals, real SQLite and journal files (PostgreSQL with
``NCP_HPO_TEST_POSTGRES``):

* a process SIGKILLed right after its storage created its trial (no beat ever written):
  a worker fails the trial (``fail_reason``), re-runs it and finishes the exact budget;
* a worker SIGKILLed, or SIGTERMed, while it holds a trial it has not suggested a
  parameter for yet (fault ``stall``): the trial is failed (by the next worker, or by
  the stopped worker itself: ``interrupted``) and the budget is met;
* a live worker that holds its new trial longer than ``--grace`` plus the 3-second
  second check before suggesting anything is not failed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _distributed import audit, load, start_workers, worker_env
from optuna.trial import FrozenTrial, TrialState

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

BEAT = ("--heartbeat", "1", "--grace", "2", "--poll", "0.5")
UNBEATEN = "stale heartbeat: no beat since the trial started more than 2 s ago"

# Creates the study as a worker does, asks for one trial through the heartbeat storage
# (the trial exists from here on) and then waits to be killed, before any beat.
_CREATE_AND_WAIT = """
import sys, time
from ncp_hpo.runtime import Worker, benchmark_objective, open_storage
from ncp_hpo.samplers import make_sampler

url, name, data = sys.argv[1:4]
storage = open_storage(url, heartbeat=1, grace=2)
spec = benchmark_objective("nas-bench-201", data_dir=data)
sampler = make_sampler("random", space=spec.space, seed=0)
worker = Worker(study_name=name, storage=storage, spec=spec, sampler=sampler, budget=3)
trial = worker.open_study().ask()
print("created", trial.number, flush=True)
time.sleep(600)
"""


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path, study_name: str) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    if request.param == "journal":
        return f"journal:{tmp_path / 's.log'}"
    request.getfixturevalue("drop_studies").append(study_name)
    return str(request.getfixturevalue("postgres_url"))


def _worker(
    url: str, name: str, data: Path, log_dir: Path, *, faults: str = "", seed: int = 0, n: int = 1
):
    return start_workers(
        n,
        study=name,
        storage=url,
        data_dir=data,
        budget=3,
        sampler="random",
        log_dir=log_dir,
        extra=(*BEAT, "--timeout", "60"),
        env=worker_env(NCP_HPO_FAULTS=faults),
        seed0=seed,
    )


def _held(url: str, name: str, number: int, timeout: float = 120) -> FrozenTrial:
    """Trial ``number`` once it is RUNNING with its worker recorded (the stall began)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = load(name, url).get_trials(deepcopy=False)
        except Exception:  # the study does not exist yet
            trials = []
        for t in trials:
            if t.number == number and t.state == TrialState.RUNNING and "worker" in t.user_attrs:
                return t
        time.sleep(0.2)
    raise AssertionError(f"trial {number} was never held")


def _finished_exactly(url: str, name: str, failed: int) -> None:
    """The study holds the budget (3) COMPLETE, and ``failed`` was re-run once."""
    a = audit(load(name, url))
    trials = {t.number: t for t in a.trials}
    assert len(a.complete) == 3, a.line()
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0, a.line()
    reruns = [t for t in a.trials if t.system_attrs.get("failed_trial") == failed]
    assert [t.state for t in reruns] == [TrialState.COMPLETE], a.line()
    assert "fail_reason" not in reruns[0].user_attrs
    assert trials[failed].state == TrialState.FAIL


@pytest.mark.parametrize("url", ["sqlite", "journal", "postgres"], indirect=True)
def test_trial_of_a_process_killed_before_its_first_beat_is_failed_and_rerun(
    url: str, study_name: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    creator = subprocess.Popen(
        [sys.executable, "-c", _CREATE_AND_WAIT, url, study_name, str(shared_data_dir)],
        stdout=subprocess.PIPE,
        env=worker_env(),
    )
    try:
        assert creator.stdout is not None
        line = creator.stdout.readline().decode()
        assert line.startswith("created 0"), line
        creator.send_signal(signal.SIGKILL)
        assert creator.wait(timeout=30) == -signal.SIGKILL
    finally:
        creator.kill()
        creator.wait()
    orphan = load(study_name, url).trials[0]
    assert orphan.state == TrialState.RUNNING and orphan.params == {}

    workers = _worker(url, study_name, shared_data_dir, tmp_path)
    try:
        assert workers.wait(timeout=150) == [0], workers.tail()
    finally:
        workers.kill()
    _finished_exactly(url, study_name, failed=0)
    reason = load(study_name, url).trials[0].user_attrs.get("fail_reason", "")
    assert reason.startswith(UNBEATEN), reason


def test_worker_killed_before_suggesting_leaves_no_running_trial(
    study_name: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = _worker(url, study_name, shared_data_dir, tmp_path, faults="stall@1:600")
    try:
        held = _held(url, study_name, 1)
        assert held.params == {}  # created, nothing suggested yet
        first.procs[0].send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == [-signal.SIGKILL]
    finally:
        first.kill()
    second = _worker(url, study_name, shared_data_dir, tmp_path, seed=1)
    try:
        assert second.wait(timeout=150) == [0], second.tail()
    finally:
        second.kill()
    _finished_exactly(url, study_name, failed=1)
    reason = load(study_name, url).trials[1].user_attrs["fail_reason"]
    assert reason.startswith("stale heartbeat: no beat for more than 2 s"), reason


def test_worker_stopped_before_suggesting_fails_its_own_trial(
    study_name: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = _worker(url, study_name, shared_data_dir, tmp_path, faults="stall@1:600")
    try:
        _held(url, study_name, 1)
        first.procs[0].send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == [130], first.tail()
    finally:
        first.kill()
    stopped = load(study_name, url).trials[1]
    # failed by the stopped worker itself, at once (no other worker has run)
    assert stopped.state == TrialState.FAIL, first.tail()
    assert stopped.user_attrs["fail_reason"] == "interrupted (SIGTERM or Ctrl-C)"
    assert stopped.params == {}
    second = _worker(url, study_name, shared_data_dir, tmp_path, seed=1)
    try:
        assert second.wait(timeout=150) == [0], second.tail()
    finally:
        second.kill()
    a = audit(load(study_name, url))
    assert len(a.complete) == 3 and a.states["FAIL"] == 1, a.line()
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0


def test_live_worker_slow_to_suggest_is_not_failed(
    study_name: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    """Trial 1's worker holds it 9 s (grace 2 s + the 3 s second check, with room) before
    suggesting anything, while the other worker, its own trials done, checks for stale
    trials every 0.5 s waiting for the budget."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    workers = _worker(url, study_name, shared_data_dir, tmp_path, faults="stall@1:9", n=2)
    try:
        held = _held(url, study_name, 1)
        assert workers.wait(timeout=150) == [0, 0], workers.tail()
    finally:
        workers.kill()
    a = audit(load(study_name, url))
    trials = {t.number: t for t in a.trials}
    assert a.states.get("FAIL", 0) == 0, (a.line(), [t.user_attrs for t in a.trials])
    assert trials[1].state == TrialState.COMPLETE, a.line()
    assert trials[1].user_attrs["worker"] == held.user_attrs["worker"]
    assert trials[1].datetime_complete and trials[1].datetime_start
    assert (trials[1].datetime_complete - trials[1].datetime_start).total_seconds() >= 9
    others = {t.user_attrs["worker"] for t in a.complete} - {held.user_attrs["worker"]}
    assert others, "the other worker ran no trial: nobody checked for stale trials"
    logs = "".join(log.read_text() for log in workers.logs)
    assert "budget held" in logs, workers.tail()  # it waited (checking) while trial 1 was held
