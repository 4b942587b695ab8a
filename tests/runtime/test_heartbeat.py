"""Heartbeats and storage calls through real storage errors (in-process), root causes,
fail reasons, and the Optuna internals :mod:`ncp_hpo.runtime._heartbeat` relies on.

The transient error here is a real one: another SQLite connection holds an exclusive lock,
so every access fails with ``database is locked`` until it lets go. The PostgreSQL server
restarts are in ``test_chaos.py``.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import BaseStorage, RDBStorage, fail_stale_trials
from optuna.trial import TrialState

from ncp_hpo.exceptions import StorageError, StorageUnavailableError
from ncp_hpo.runtime._errors import is_transient, root_cause
from ncp_hpo.runtime._heartbeat import (
    _RETRIED,
    NOT_RETRIED,
    ResilientRDBStorage,
    TrialHeartbeat,
    trial_id,
)
from ncp_hpo.runtime._storage import open_storage

pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning",
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize",
)


class Lock:
    """An exclusive SQLite lock on ``path`` held by another connection for ``seconds``."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN EXCLUSIVE")
        self.released_at: float | None = None
        self.timer = threading.Timer(seconds, self.release)
        self.timer.start()

    def release(self) -> None:
        self.timer.cancel()
        if self.released_at is None:
            self.conn.execute("COMMIT")
            self.conn.close()
            self.released_at = time.monotonic()


def _storage(path: Path, **kw: Any) -> ResilientRDBStorage:
    storage = open_storage(f"sqlite:///{path}", connect_timeout=0, **kw)
    assert isinstance(storage, ResilientRDBStorage)
    return storage


# -- the Optuna internals (fails when the Optuna in use changes them) ----------------------
def test_optuna_internals_this_package_relies_on_are_still_there(tmp_path: Path) -> None:
    from optuna.storages import _cached_storage

    # every storage method is retried, or deliberately not (no database access, own retry)
    abstract = set(BaseStorage.__abstractmethods__)
    assert abstract <= set(_RETRIED) | set(NOT_RETRIED), abstract - set(_RETRIED) - set(NOT_RETRIED)
    # the private RDBStorage methods Optuna's _CachedStorage calls are retried too
    called = set(re.findall(r"self\._backend\.(\w+)", inspect.getsource(_cached_storage)))
    own = {"_get_stale_trial_ids", "_create_new_trial"}  # ResilientRDBStorage retries them
    assert called <= set(_RETRIED) | set(NOT_RETRIED) | own, called - set(_RETRIED) - own
    for name in (*_RETRIED, *own, "record_heartbeat"):
        assert callable(getattr(RDBStorage, name)), name
    params = list(inspect.signature(RDBStorage._get_stale_trial_ids).parameters)
    assert params == ["self", "study_id"]
    params = list(inspect.signature(RDBStorage._create_new_trial).parameters)
    assert params == ["self", "study_id", "template_trial"]
    # the heartbeat table a trial that never beat has no row in (ResilientRDBStorage._unbeaten)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    assert callable(_create_scoped_session) and models.TrialHeartbeatModel.trial_id is not None
    # Optuna wraps an RDBStorage subclass in _CachedStorage, which calls those methods
    storage = _storage(tmp_path / "s.db", heartbeat=1, grace=1, stale_confirm=0)
    wrapped = optuna.storages.get_storage(storage)
    assert isinstance(wrapped, _cached_storage._CachedStorage) and wrapped._backend is storage
    # fail_stale_trials goes through _get_stale_trial_ids: ours records the reason
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.2)
    fail_stale_trials(study)
    failed = storage.get_trial(trial._trial_id)
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"].startswith("stale heartbeat: no beat for more than 1 s")
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and "fail_reason" not in waiting[0].user_attrs
    # a trial's storage id (private in Optuna) is the id the storage addresses it by
    running = study.ask()
    assert storage.get_trial_number_from_id(trial_id(running)) == running.number
    frozen = study.get_trials(states=(TrialState.RUNNING,))[0]
    assert trial_id(frozen) == trial_id(running)


def test_fail_attr_is_one_name() -> None:
    from ncp_hpo.runtime import _heartbeat, _trial, _worker
    from ncp_hpo.runtime._attrs import FAIL_ATTR

    assert FAIL_ATTR == "fail_reason"
    assert _heartbeat.FAIL_ATTR is _trial.FAIL_ATTR is _worker.FAIL_ATTR is FAIL_ATTR


# -- retries through a real transient error ------------------------------------------------
def test_calls_ride_out_a_locked_database_and_give_up_after_the_window(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    storage = _storage(db, heartbeat=1, retry_window=20)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.suggest_int("x", 0, 9)
    lock = Lock(db, 1.5)
    t0 = time.monotonic()
    study.tell(trial, 1.0)  # retried until the lock is gone
    assert lock.released_at is not None and time.monotonic() - t0 >= 1.4
    assert storage.get_trial(trial._trial_id).value == 1.0
    assert storage.health.outages == 1 and storage.health.longest_outage_s >= 1.0

    storage.health.retry_window = 1.0
    lock = Lock(db, 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(StorageUnavailableError) as info:
            study.ask()
        assert time.monotonic() - t0 < 10
    finally:
        lock.release()
    text = str(info.value)
    assert "\n" not in text and "database locked: database is locked" in text, text
    assert "retry window 1 s" in text


def test_heartbeat_thread_survives_storage_errors(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    storage = _storage(db, heartbeat=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with TrialHeartbeat(storage, trial._trial_id, interval=1, health=storage.health) as beat:
        time.sleep(0.3)
        lock = Lock(db, 2.5)
        time.sleep(2.0)
        failures, beats = beat.failures, beat.beats
        assert failures >= 1 and beat._thread.is_alive()  # failing, not dead
        time.sleep(2.0)  # the lock is gone at 2.5 s
        assert lock.released_at is not None
        assert beat.beats > beats  # beating again
    assert not beat._thread.is_alive()


def test_a_live_trial_is_not_failed_after_an_outage_longer_than_grace(tmp_path: Path) -> None:
    """Both workers were cut off for 3 s, three times the grace period: right after, the
    trial's beat is stale, but the second check finds the live worker's new beat."""
    db = tmp_path / "s.db"
    live = _storage(db, heartbeat=1, grace=1)
    other = _storage(db, heartbeat=1, grace=1, stale_confirm=2.5)
    study = optuna.create_study(study_name="s", storage=live)
    trial = study.ask()
    dead = study.ask()
    live.record_heartbeat(dead._trial_id)  # a worker that died before the outage
    with TrialHeartbeat(live, trial._trial_id, interval=1, health=live.health):
        time.sleep(0.5)
        lock = Lock(db, 3.0)
        time.sleep(3.2)
        assert lock.released_at is not None
        fail_stale_trials(optuna.load_study(study_name="s", storage=other))
        assert live.get_trial(trial._trial_id).state == TrialState.RUNNING
    assert live.get_trial(dead._trial_id).state == TrialState.FAIL


# -- root causes, in one line ----------------------------------------------------------------
def test_root_cause_of_a_full_database(tmp_path: Path) -> None:
    """A real SQLITE_FULL (the file may not grow): named, not "exceeding max length"."""
    from sqlalchemy import event

    storage = _storage(tmp_path / "s.db", heartbeat=None)
    study = optuna.create_study(storage=storage)
    trial = study.ask()

    def cap(conn: Any, _: Any) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(storage.engine, "connect", cap)
    storage.engine.dispose()
    with pytest.raises(Exception) as info:
        trial.set_user_attr("big", "x" * 200_000)
    assert "max length" in str(info.value)  # what Optuna says
    assert root_cause(info.value) == "disk full: database or disk is full"
    assert not is_transient(info.value)


def test_worker_on_a_full_database_stops_with_the_cause_in_one_line(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    from sqlalchemy import event

    from ncp_hpo.runtime import Worker, benchmark_objective
    from ncp_hpo.samplers import make_sampler

    storage = _storage(tmp_path / "s.db", heartbeat=1)
    spec = benchmark_objective("nas-bench-201", data_dir=str(shared_data_dir))
    inner = spec.objective

    def objective(trial: Any) -> Any:  # an objective that stores a large result
        trial.set_user_attr("curve", "x" * 200_000)
        return inner(trial)

    spec.objective = objective
    sampler = make_sampler("random", space=spec.space, seed=0)
    worker = Worker(study_name="s", storage=storage, spec=spec, sampler=sampler, budget=3)
    worker.open_study()

    def cap(conn: Any, _: Any) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(storage.engine, "connect", cap)
    storage.engine.dispose()
    summary = worker.run()
    assert summary.stopped_reason is not None, summary
    assert summary.stopped_reason.startswith("stopped on a storage error: disk full: database")
    assert "\n" not in summary.stopped_reason


def test_root_cause_of_a_read_only_database(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    storage = ResilientRDBStorage(f"sqlite:///file:{db}?mode=ro&uri=true")  # opened read-only
    study = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(Exception) as info:
        study.ask()
    assert root_cause(info.value).startswith("read-only database: attempt to write a readonly")


@pytest.mark.skipif(
    __import__("os").geteuid() == 0, reason="root may write any file: nothing is read-only"
)
def test_read_only_sqlite_file_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    db.chmod(0o444)
    with pytest.raises(StorageError, match="read-only database"):
        open_storage(f"sqlite:///{db}")


def test_root_causes_of_server_errors(postgres_url: str) -> None:
    pytest.importorskip("psycopg")
    wrong = re.sub(r":[^:@/]+@", ":not-the-password@", postgres_url, count=1)
    with pytest.raises(StorageError) as info:
        open_storage(wrong)
    assert "authentication failed" in str(info.value)
    assert "not-the-password" not in str(info.value)
    refused = re.sub(r"@([^:/]+):\d+/", r"@\1:9/", postgres_url)
    with pytest.raises(StorageError, match="connection refused"):
        open_storage(refused)
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StorageError, match="no such database"):
        open_storage(missing)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql+psycopg://u:pw@127.0.0.1:abc/db", "bad port 'abc'"),
        ("postgresql+psycopg://u:pw@127.0.0.1:70000/db", "bad port 70000"),
        ("postgres//u:pw@host/db", "no '://'"),
        ("sqlite:///no/such/folder/s.db", "does not exist"),
        ("sqlite:///{tmp}", "is a directory"),
        ("journal:{tmp}/no/such/s.log", "does not exist"),
        ("postgresql+psycopg://u:pw@127.0.0.1:9/db", "connection refused"),
    ],
)
def test_bad_urls_and_file_states_are_one_line(url: str, needle: str, tmp_path: Path) -> None:
    if url.startswith("postgresql"):
        pytest.importorskip("psycopg")
    with pytest.raises(StorageError) as info:
        open_storage(url.format(tmp=tmp_path))
    text = str(info.value)
    assert needle in text and "\n" not in text, text
