"""``open_storage`` and heartbeats, in-process: a stale trial is failed and queued again.

A "dead worker" here is a trial that recorded a heartbeat and then stopped beating; the
multi-process SIGKILL version is in ``test_worker.py``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from ncp_hpo._secrets import redact
from ncp_hpo.exceptions import StorageError, TrainingError, WorkerError
from ncp_hpo.runtime._storage import (
    HEARTBEAT_ATTR,
    HeartbeatJournalStorage,
    open_sqlite_storage,
    open_storage,
)

BACKENDS = ["sqlite", "journal", "postgres"]
pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning",
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize",
)


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    if kind == "journal":
        return f"journal:{tmp_path / 's.log'}"
    return str(request.getfixturevalue("postgres_url"))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_zombie_worker_counts_as_dead() -> None:
    from ncp_hpo.runtime._storage import _alive_here, _process_start

    host = socket.gethostname()
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = _process_start(p.pid)
        assert _alive_here(host, p.pid, start)
        assert not _alive_here(host, p.pid, (start or 0) + 1)  # pid reused by another process
        assert not _alive_here("another-host", p.pid, start)
        p.kill()
        time.sleep(0.5)  # killed, not reaped yet: a zombie
        assert not _alive_here(host, p.pid, start)
    finally:
        p.kill()
        p.wait()
    assert not _alive_here(host, p.pid, start)


def _beat(study: optuna.Study, trial_id: int, *, alive: bool = False) -> None:
    """Record a heartbeat for ``trial_id`` as a worker that is dead now (or alive: this one)."""
    storage = study._storage
    if isinstance(storage, HeartbeatJournalStorage) and not alive:
        # journal beats name their process; a late beat of a live local process is not stale
        beat = [trial_id, time.time(), socket.gethostname(), _dead_pid(), None]
        storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, beat)
    else:
        storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]


def _stale_trial(study: optuna.Study) -> optuna.trial.Trial:
    trial = study.ask()
    trial.suggest_int("x", 0, 100)
    _beat(study, trial._trial_id)
    return trial


@pytest.mark.parametrize("url", BACKENDS, indirect=True)
def test_stale_trial_is_failed_and_retried_up_to_the_limit(url: str, study_name: str) -> None:
    storage = open_storage(url, heartbeat=1, grace=1, retries=1, stale_confirm=0.5)
    study = optuna.create_study(study_name=study_name, storage=storage)
    try:
        dead = _stale_trial(study)
        # a trial of a process without heartbeats (a plain study.optimize): never failed
        plain = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat=0))
        alive = plain.ask()
        time.sleep(2.2)
        fail_stale_trials(study)
        fail_stale_trials(study)  # idempotent: one failure, one retry
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        assert trials[dead.number].state == TrialState.FAIL
        assert trials[alive.number].state == TrialState.RUNNING
        waiting = [t for t in trials.values() if t.state == TrialState.WAITING]
        assert len(waiting) == 1
        assert waiting[0].params == trials[dead.number].params
        assert waiting[0].system_attrs["failed_trial"] == dead.number

        retry = study.ask()  # the queued copy is popped first, with the same code
        assert retry.number == waiting[0].number
        assert retry.suggest_int("x", 0, 100) == trials[dead.number].params["x"]
        # it inherited the dead trial's attributes but must not count as stale before it beats
        fail_stale_trials(study)
        assert study._storage.get_trial(retry._trial_id).state == TrialState.RUNNING
        _beat(study, retry._trial_id)
        time.sleep(2.2)
        fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        assert states.count(TrialState.WAITING) == 0  # max_retry=1: not queued a second time
        plain.tell(alive, 1.0)
    finally:
        if url.startswith("postgresql"):
            optuna.delete_study(study_name=study_name, storage=url)


def test_late_beat_of_a_live_local_journal_worker_is_not_stale(tmp_path: Path) -> None:
    """A saturated journal lock can delay a live worker's beats past the grace period."""
    study = optuna.create_study(
        storage=open_storage(
            f"journal:{tmp_path / 's.log'}", heartbeat=1, grace=1, stale_confirm=0.5
        )
    )
    alive, dead = study.ask(), study.ask()
    _beat(study, alive._trial_id, alive=True)
    _beat(study, dead._trial_id)
    time.sleep(1.6)
    fail_stale_trials(study)
    assert study._storage.get_trial(alive._trial_id).state == TrialState.RUNNING
    assert study._storage.get_trial(dead._trial_id).state == TrialState.FAIL


@pytest.mark.parametrize("url", ["sqlite", "journal"], indirect=True)
def test_heartbeat_disabled_means_no_failing(url: str) -> None:
    storage = open_storage(url, heartbeat=0)
    assert not isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(storage=storage)
    t = study.ask()
    fail_stale_trials(study)
    assert study._storage.get_trial(t._trial_id).state == TrialState.RUNNING


def test_journal_storage_shares_trials_between_instances(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 's.log'}"
    a = optuna.create_study(study_name="s", storage=open_storage(url))
    a.add_trial(
        optuna.create_trial(params={"x": 3}, distributions={"x": IntDistribution(0, 9)}, value=1.0)
    )
    b = optuna.load_study(study_name="s", storage=open_storage(url, heartbeat=0))
    assert [t.params for t in b.trials] == [{"x": 3}]


def test_redact_masks_storage_passwords() -> None:
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("postgresql+psycopg://u:p@ss@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    assert redact("journal:x.log") == "journal:x.log"


def test_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        open_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat=-1)
    with pytest.raises(ValueError, match="grace needs a heartbeat"):
        open_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat=0, grace=5)
    with pytest.raises(StorageError, match="empty"):
        open_storage("  ")


def test_open_sqlite_storage_is_in_wal_mode(tmp_path: Path) -> None:
    """The plain one-machine SQLite storage: write-ahead log, and a study round-trips."""
    storage = open_sqlite_storage(tmp_path / "c.db", timeout=5)
    study = optuna.create_study(study_name="c", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with storage.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (mode, sync) == ("wal", 1)  # 1: NORMAL
    again = optuna.load_study(study_name="c", storage=open_sqlite_storage(tmp_path / "c.db"))
    assert [t.value for t in again.trials] == [t.value for t in study.trials]


def test_one_objective_record_for_workers_and_studies(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """A study keeps the objective it was created for; joining it with another one fails
    with the caller's error type, naming both objectives and the option to change."""
    from ncp_hpo.runtime import benchmark_objective
    from ncp_hpo.runtime._specs import ensure_study_objective

    spec = benchmark_objective("nas-bench-201", data_dir=str(shared_data_dir))
    study = optuna.create_study(study_name="o", directions=spec.directions)
    ensure_study_objective(study, spec, hint="--study")
    assert study.user_attrs["ncp_hpo.objective"]["setting"] == "nas-bench-201"
    assert study.metric_names == spec.metric_names
    ensure_study_objective(study, spec, hint="--study")  # the same objective joins
    other = benchmark_objective(
        "nas-bench-201", data_dir=str(shared_data_dir), objective="metric+flops", flops_weight=0.5
    )
    with pytest.raises(WorkerError, match=r"created for benchmark 'nas-bench-201'.*weight=0.5"):
        ensure_study_objective(study, other, hint="--study")
    two = benchmark_objective(
        "nas-bench-201", data_dir=str(shared_data_dir), objective="metric+flops"
    )
    with pytest.raises(TrainingError, match=r"directions \['maximize'\].*use another --study-name"):
        ensure_study_objective(study, two, hint="--study-name", error=TrainingError)
    params = benchmark_objective(
        "nas-bench-201", data_dir=str(shared_data_dir), objective="metric+params"
    )
    assert params.directions == ["maximize", "minimize"]
    assert params.metric_names == ["Acc", "params"]
    flops = optuna.create_study(study_name="f", directions=two.directions)
    ensure_study_objective(flops, two, hint="--study-name")
    # the same directions, another second objective: never mixed into one study
    mixed = r"\(exact, metric\+flops\), not .*\(exact, metric\+params\)"
    with pytest.raises(WorkerError, match=mixed):
        ensure_study_objective(flops, params, hint="--study-name")


def test_a_study_recorded_with_lam_is_joined_with_flops_weight(
    shared_data_dir: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """Studies created before 0.2.0 record the objective's FLOPs weight as ``lam``: a
    worker passing the same ``flops_weight`` joins them (no warning), another one is refused."""
    from ncp_hpo.runtime import benchmark_objective
    from ncp_hpo.runtime._specs import ensure_study_objective

    spec = benchmark_objective(
        "nas-bench-201", data_dir=str(shared_data_dir), objective="metric+flops", flops_weight=0.5
    )
    old = {k: v for k, v in spec.description.items() if k != "flops_weight"} | {"lam": 0.5}
    study = optuna.create_study(study_name="o", directions=spec.directions)
    study.set_user_attr("ncp_hpo.objective", old)
    ensure_study_objective(study, spec, hint="--study-name")
    assert not [w for w in recwarn if "training settings" in str(w.message)]
    other = benchmark_objective(
        "nas-bench-201", data_dir=str(shared_data_dir), objective="metric+flops", flops_weight=1
    )
    with pytest.raises(WorkerError, match=r"flops_weight=0.5\), not .*flops_weight=1.0\)"):
        ensure_study_objective(study, other, hint="--study-name")


# -- the worker loop against storage trouble (in-process) ----------------------------------
def _nb201_worker(tmp_path: Path, data_dir: Path, budget: int, objective: Any = None) -> Any:
    from ncp_hpo.runtime import Worker, benchmark_objective
    from ncp_hpo.samplers import make_sampler

    spec = benchmark_objective("nas-bench-201", data_dir=str(data_dir))
    if objective is not None:
        inner = spec.objective
        spec.objective = lambda trial: objective(trial, inner)
    return Worker(
        study_name="s",
        storage=open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1),
        spec=spec,
        sampler=make_sampler("random", space=spec.space, seed=0),
        budget=budget,
        poll=0.05,
    )


def test_worker_goes_on_when_another_worker_failed_its_trial(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """A stalled worker whose trial was failed as stale carries on with its next trial."""

    def objective(trial: Any, inner: Any) -> Any:
        value = inner(trial)
        if trial.number == 1:  # as another worker's fail_stale_trials would
            trial.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return value

    worker = _nb201_worker(tmp_path, shared_data_dir, 4, objective)
    summary = worker.run()
    assert summary.study_complete == 4 and summary.stopped_reason is None
    assert summary.failed == 1


class _Lock:
    """An exclusive SQLite lock held by another connection for ``seconds``: every access of
    the storage fails with ``database is locked`` meanwhile (a real transient error)."""

    def __init__(self, path: Path, seconds: float) -> None:
        import sqlite3
        import threading

        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")
        self.timer = threading.Timer(seconds, self.release)
        self.timer.start()

    def release(self) -> None:
        self.timer.cancel()
        try:
            self.conn.execute("COMMIT")
            self.conn.close()
        except Exception:  # released already
            pass


def test_worker_rides_out_an_outage_then_stops_with_one_line_past_the_window(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """The storage locked mid-trial (heartbeats and the tell fail): shorter than the retry
    window, the trial's value is written when it is back; longer, one line and a stop."""
    from ncp_hpo.runtime import Worker, benchmark_objective
    from ncp_hpo.samplers import make_sampler

    db = tmp_path / "s.db"
    locks: list[_Lock] = []

    def worker(budget: int, window: float, hold: float, at: int) -> Worker:
        spec = benchmark_objective("nas-bench-201", data_dir=str(shared_data_dir))
        inner = spec.objective

        def objective(trial: Any) -> Any:
            value = inner(trial)
            if trial.number == at:
                locks.append(_Lock(db, hold))
            return value

        spec.objective = objective
        url = f"sqlite:///{db}"
        storage = open_storage(url, heartbeat=1, connect_timeout=1, retry_window=window)
        sampler = make_sampler("random", space=spec.space, seed=at + 1)
        return Worker(study_name="s", storage=storage, spec=spec, sampler=sampler, budget=budget)

    t0 = time.monotonic()
    summary = worker(3, window=20, hold=2.5, at=1).run()
    assert time.monotonic() - t0 >= 2.5, (summary, locks)
    assert summary.stopped_reason is None and summary.study_complete == 3
    assert summary.complete == 3 and summary.failed == 0
    assert "outage(s)" in summary.storage, summary
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert study.trials[1].value is not None  # computed during the outage, written after

    summary = worker(6, window=1, hold=30, at=4).run()
    locks[-1].release()
    reason = summary.stopped_reason
    assert reason is not None and "\n" not in reason
    assert "unreachable for" in reason and "database locked" in reason, reason
    assert "stays RUNNING" in reason  # the one try to fail it met the lock too
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials
    assert trials[4].state == TrialState.RUNNING  # failed as stale by the next worker
    again = worker(6, window=20, hold=0, at=-1)
    again.storage = open_storage(f"sqlite:///{db}", heartbeat=1, grace=2, stale_confirm=0.5)
    time.sleep(2.5)
    summary = again.run()
    assert summary.study_complete == 6 and summary.stopped_reason is None
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials
    assert trials[4].state == TrialState.FAIL
    assert trials[4].user_attrs["fail_reason"].startswith("stale heartbeat")


def test_a_worker_names_the_values_of_each_completed_trial() -> None:
    from ncp_hpo.runtime._worker import _values

    assert _values([42.4, 0.593], ["Acc", "params"]) == "Acc 42.4  params 0.593"
    assert _values([42.4], ["Acc"]) == "Acc 42.4"
    assert _values([42.4, 0.593]) == "42.4 0.593"  # no names: the values alone
    assert _values(None, ["Acc"]) == ""


def test_a_task_objective_of_an_unknown_kind_is_refused_by_name() -> None:
    from ncp_hpo.runtime._specs import task_objective

    with pytest.raises(WorkerError, match=r"one of metric, metric\+flops, metric\+params, got 'x'"):
        task_objective("cls", objective="x")
