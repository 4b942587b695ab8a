"""Opening a shared Optuna storage for many workers: RDB (PostgreSQL, MySQL, SQLite) or journal.

:func:`open_storage` turns a storage URL into an Optuna storage with Optuna's heartbeat
switched on, so that a worker that dies in the middle of a trial (killed, preempted, power
loss) does not leave the trial RUNNING forever: another worker finds the trial's
heartbeat older than the grace period, marks it FAILED and, with ``retries > 0``, queues a
copy of it (same parameters) as a WAITING trial that the next free worker runs
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`).

URLs:

``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB`` (any SQLAlchemy URL: ``mysql+pymysql://``...)
    :class:`optuna.storages.RDBStorage`, the recommended storage for many machines. Naming
    the driver keeps the URL stable: SQLAlchemy 2.1 reads a bare ``postgresql://`` as
    psycopg 3, SQLAlchemy 2.0 as psycopg2.
``sqlite:///PATH``
    :class:`optuna.storages.RDBStorage` on a file; fine for a few processes on one machine.
``journal:PATH``
    :class:`optuna.storages.JournalStorage` on a :class:`JournalFileBackend` log file (one
    machine, or a shared file system with working symlinks). Optuna implements heartbeats
    for RDB storages only; :class:`HeartbeatJournalStorage` adds the same mechanism here
    (each beat is a trial system attribute ``ncp_hpo:heartbeat`` holding the trial id, the
    writer's clock, host and process; machines sharing the file need synchronised clocks,
    and a late beat of a process that is still alive on the checking machine is never
    stale: a saturated journal's file lock can hold a live writer back for many seconds).

RDB storages are :class:`ncp_hpo.runtime._heartbeat.ResilientRDBStorage`: every call rides out a
storage outage of up to ``retry_window`` seconds, and a trial is failed as stale only when
two checks ``stale_confirm`` seconds apart agree (see :mod:`ncp_hpo.runtime._heartbeat`).

:func:`open_sqlite_storage` opens a plain SQLite storage in write-ahead-log mode, without
heartbeats or retries, for the processes of one machine (``ncp-hpo compare``).

Errors a user can fix (a malformed URL, a bad port, a missing database driver, a server
that does not answer, a read-only or full database) raise :class:`StorageError` with one
line naming the URL (password masked by :func:`ncp_hpo._secrets.redact`) and the root
cause (:func:`ncp_hpo.runtime._errors.root_cause`).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import optuna
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from ncp_hpo._secrets import redact, remember_url
from ncp_hpo.exceptions import StorageError
from ncp_hpo.runtime._errors import chain, root_cause
from ncp_hpo.runtime._heartbeat import (
    BaseHeartbeat,
    StaleCheck,
    StorageHealth,
    stale_callback,
    trial_id,
)
from ncp_hpo.runtime._liveness import HEARTBEAT_ATTR, mark_age, notify_running
from ncp_hpo.runtime._liveness import HOST as _HOST
from ncp_hpo.runtime._liveness import alive_here as _alive_here
from ncp_hpo.runtime._liveness import process_start as _process_start

if TYPE_CHECKING:
    from collections.abc import Sequence

    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "HEARTBEAT_ATTR",
    "HeartbeatJournalStorage",
    "StorageError",
    "open_sqlite_storage",
    "open_storage",
]

_DRIVER_HINTS = {
    # SQLAlchemy 2.1 reads postgresql:// as postgresql+psycopg:// (psycopg 3), 2.0 as psycopg2
    "postgresql": "pip install 'ncp-hpo[postgres]' (psycopg 3) and write postgresql+psycopg://",
    "mysql": "pip install pymysql and write mysql+pymysql://",
}


_F = TypeVar("_F", bound=Callable[..., Any])


def _without_context(fn: _F) -> _F:
    """Raise ``fn``'s :class:`StorageError` without the exception it replaced as its
    context: the driver's error may quote the URL as the driver parsed it, password and all."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StorageError as exc:
            error = exc
        error.__context__ = error.__cause__ = None
        raise error

    return wrapper  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    return root_cause(exc)[:300]


class HeartbeatJournalStorage(StaleCheck, JournalStorage, BaseHeartbeat):
    """:class:`~optuna.storages.JournalStorage` with Optuna's heartbeat protocol.

    Optuna's optimisation loop starts a heartbeat thread for every trial on a storage that
    implements :class:`optuna.storages._heartbeat.BaseHeartbeat`, and calls
    :func:`optuna.storages.fail_stale_trials` before each trial; this class makes a journal
    storage such a storage. As with :class:`~optuna.storages.RDBStorage`, trials that never
    recorded a heartbeat (run by a plain ``study.optimize`` elsewhere) are never failed.

    Args:
        backend: the journal backend (e.g. ``JournalFileBackend(path)``).
        heartbeat_interval: seconds between beats (> 0).
        grace_period: seconds without a beat after which a RUNNING trial is stale
            (default ``2 * heartbeat_interval``).
        heartbeat_stale_trial_callback: called with each trial failed as stale (e.g.
            :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`).
        stale_confirm: seconds between the two staleness checks (see
            :class:`ncp_hpo.runtime._heartbeat.StaleCheck`; 0: one check).
    """

    def __init__(
        self,
        backend: Any,
        *,
        heartbeat_interval: int,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
        stale_confirm: float = 3.0,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        if grace_period is not None and grace_period <= 0:
            raise ValueError(f"grace_period must be > 0, got {grace_period}")
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        self.stale_confirm_s = stale_confirm
        self.health = StorageHealth(retry_window=0.0)

    def _grace_s(self) -> float:
        return float(self.grace_period or 2 * self.heartbeat_interval)

    def record_heartbeat(self, trial_id: int) -> None:
        beat: list[int | float | str | None] = [
            trial_id,
            time.time(),
            _HOST,
            os.getpid(),
            _process_start(os.getpid()),
        ]
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, beat)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # the trial finished between two beats

    def _stale_candidates(self, study_id: int) -> dict[int, str]:
        grace = self._grace_s()
        now = time.time()
        stale = {}
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(HEARTBEAT_ATTR)
            # [trial_id, time, host, pid, start]: a beat recorded for another trial id (a
            # retried trial's predecessor) is not this trial's
            if not (isinstance(beat, list) and len(beat) == 5 and beat[0] == trial_id(t)):
                started = mark_age(t.system_attrs, now)  # never beat: its age, if marked
                if started is not None and started[0] > grace and not started[1]:
                    stale[trial_id(t)] = self._unbeaten_reason()
                continue
            if not isinstance(beat[1], int | float) or now - float(beat[1]) <= grace:
                continue
            if _alive_here(beat[2], beat[3], beat[4]):
                # a live worker on this machine whose beats are late: the journal's file
                # lock can starve a writer for many seconds when the log is saturated
                continue
            stale[trial_id(t)] = self._stale_reason()
        return stale

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """A new RUNNING trial is created with the start mark (one journal record) and its
        id told to this thread's ``on_running`` listener."""
        created = super().create_new_trial(study_id, self._template(template_trial))
        self._started(template_trial, created)
        return created

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state == TrialState.RUNNING:
            self._before_running(trial_id)
        done = super().set_trial_state_values(trial_id, state, values)
        if done and state == TrialState.RUNNING:
            notify_running(trial_id)
        return done

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.heartbeat_stale_trial_callback


def open_storage(
    url: str,
    *,
    heartbeat: int | None = 10,
    grace: int | None = None,
    retries: int = 2,
    connect_timeout: int = 10,
    retry_window: float = 60.0,
    stale_confirm: float = 3.0,
) -> BaseStorage:
    """Open the storage at ``url`` for a worker (see the module docstring for URLs).

    Args:
        url: an RDB URL (``postgresql://...``, ``sqlite:///file.db``) or ``journal:PATH``.
        heartbeat: seconds between heartbeats of a running trial; ``None`` or 0 disables
            heartbeats (a killed worker's trial then stays RUNNING).
        grace: seconds without a heartbeat before a trial counts as dead (default
            ``2 * heartbeat``).
        retries: how many times a dead worker's trial is queued again (0: never).
        connect_timeout: seconds to wait for a database server (PostgreSQL, MySQL) or for
            a SQLite lock.
        retry_window: RDB storages: seconds a call keeps retrying while the storage is
            unreachable before it raises :class:`ncp_hpo.exceptions.StorageUnavailableError`.
        stale_confirm: seconds between the two checks that must both find a trial stale.

    Raises:
        StorageError: malformed URL, bad port, in-memory storage, missing driver,
            unreachable or unusable database (root cause named), unwritable journal file.
        ValueError: a negative ``heartbeat``, ``grace``, ``retries``, ``retry_window`` or
            ``stale_confirm``.
    """
    remember_url(url)
    if not isinstance(url, str) or not url.strip():
        raise StorageError("the storage URL is empty; e.g. postgresql://user:pw@host/db")
    for name, v in (
        ("heartbeat", heartbeat),
        ("grace", grace),
        ("retries", retries),
        ("retry_window", retry_window),
        ("stale_confirm", stale_confirm),
    ):
        if v is not None and v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    beat = heartbeat or None
    if beat is None and grace:
        raise ValueError("grace needs a heartbeat (grace is the time without one)")
    url = url.strip()
    callback = stale_callback(retries) if beat else None
    if url.startswith("journal:"):
        return _open_journal(url, beat, grace or None, callback, stale_confirm)
    return _open_rdb(
        url,
        _RDBOptions(beat, grace or None, callback, connect_timeout, retry_window, stale_confirm),
    )


@_without_context
def _open_journal(
    url: str,
    heartbeat: int | None,
    grace: int | None,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    stale_confirm: float,
) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    from ncp_hpo.runtime._journal import repair_torn_tail

    shown = redact(url)
    raw = url[len("journal:") :]
    if raw.startswith("//"):
        raw = raw[2:]
    if not raw:
        raise StorageError(
            f"journal storage URL {shown!r} has no file path; e.g. journal:study.log"
        )
    path = _local_path(raw, shown)
    try:
        if path.is_dir():
            raise StorageError(f"journal storage {shown!r}: {path} is a directory, not a log file")
        if not path.parent.is_dir():
            raise StorageError(f"journal storage {shown!r}: folder {path.parent} does not exist")
        lock = JournalFileSymlinkLock(str(path))  # the backend's default lock
        repair_torn_tail(path, lock)  # before anyone appends onto a cut-off record
        backend = JournalFileBackend(str(path), lock_obj=lock)
        if heartbeat is None:
            return JournalStorage(backend)
        return HeartbeatJournalStorage(
            backend,
            heartbeat_interval=heartbeat,
            grace_period=grace,
            heartbeat_stale_trial_callback=callback,
            stale_confirm=stale_confirm,
        )
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot open journal storage {shown!r}: {_first_line(exc)}") from None
    except Exception as exc:  # a log that is not Optuna's journal
        raise StorageError(
            f"journal storage {shown!r} is not a readable Optuna journal: {_first_line(exc)}"
        ) from None


class _RDBOptions(NamedTuple):
    heartbeat: int | None
    grace: int | None
    callback: Callable[[optuna.Study, FrozenTrial], None] | None
    connect_timeout: int
    retry_window: float
    stale_confirm: float


_SCHEMA_RACE_TRIES = 3
# PostgreSQL: unique_violation, duplicate_object, duplicate_table
_DUPLICATE_SQLSTATES = frozenset({"23505", "42710", "42P07"})
# any database's words for the same (SQLite: the second writer of alembic_version's one row,
# or of a table; and its lock while another process creates the schema)
_DUPLICATE_MESSAGES = ("already exists", "UNIQUE constraint failed", "database is locked")


def _schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` (raised while opening a database) is a duplicate made by another
    process creating Optuna's schema at the same moment."""
    for e in chain(exc):
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if code in _DUPLICATE_SQLSTATES or any(m in str(e) for m in _DUPLICATE_MESSAGES):
            return True
    return False


_MALFORMED = "expected postgresql+psycopg://USER:PW@HOST:PORT/DB, sqlite:///FILE or journal:FILE"


def _parse_rdb_url(url: str, shown: str) -> Any:
    """The SQLAlchemy URL of ``url``, or :class:`StorageError` naming what is wrong."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        raise StorageError(f"malformed storage URL {shown!r} (no '://'); {_MALFORMED}")
    try:
        parsed = make_url(url)
        port = parsed.port
    except Exception:
        port_text = re.search(r"@[^/?#]*?:([^/?#@]*)(?:[/?#]|$)", url)
        if port_text and not port_text.group(1).isdigit():
            raise StorageError(
                f"storage {shown!r}: bad port {redact(port_text.group(1))!r}, expected a "
                "number from 1 to 65535"
            ) from None
        raise StorageError(f"malformed storage URL {shown!r}; {_MALFORMED}") from None
    if port is not None and not 1 <= port <= 65535:
        raise StorageError(f"storage {shown!r}: bad port {port}, expected 1 to 65535")
    if (parsed.host or "").lower() != _authority_host(url):
        # e.g. SQLAlchemy ends a password at its first "@": the rest would be the host
        raise StorageError(
            f"storage {shown!r}: ambiguous host; percent-encode '@', '/', ':', '?' and '#' "
            "in the user name and password (e.g. '@' as %40)"
        )
    return parsed


def _authority_host(url: str) -> str:
    """The host of ``url`` as the URL standard reads it (after the authority's last "@"),
    lower case; SQLAlchemy's reading must agree, so that no piece of a password or a
    query string is handed to a name lookup."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return "\0"  # malformed (an unclosed "["): agrees with nothing


def _local_path(raw: str, shown: str) -> Path:
    """``raw`` as a path, ``~`` expanded; :class:`StorageError` for an unknown ``~user`` or
    a NUL byte."""
    try:
        return Path(raw).expanduser()
    except (RuntimeError, ValueError) as exc:
        raise StorageError(f"storage {shown!r}: bad file path: {_first_line(exc)}") from None


def _check_sqlite_file(parsed: Any, shown: str) -> None:
    if parsed.database in (None, "", ":memory:"):
        raise StorageError(
            f"storage {shown!r} is in memory; workers share a study only through a file or "
            "a server (sqlite:///FILE, postgresql://..., journal:FILE)"
        )
    path = _local_path(parsed.database, shown)
    folder = path.parent
    if not folder.is_dir():
        raise StorageError(f"storage {shown!r}: folder {folder} does not exist")
    if path.is_dir():
        raise StorageError(f"storage {shown!r}: {path} is a directory, not a database file")
    if path.exists() and not os.access(path, os.W_OK):
        raise StorageError(f"storage {shown!r}: read-only database: {path} is not writable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(
            f"storage {shown!r}: read-only database: folder {folder} is not writable "
            "(SQLite writes its journal next to the file)"
        )


@_without_context
def _open_rdb(url: str, opts: _RDBOptions) -> BaseStorage:
    import sqlalchemy.exc

    from ncp_hpo.runtime._heartbeat import ResilientRDBStorage

    shown = redact(url)
    parsed = _parse_rdb_url(url, shown)
    try:
        backend = parsed.get_backend_name()
    except Exception:
        raise StorageError(f"storage {shown!r}: SQLAlchemy has no dialect for it") from None
    if backend == "sqlite":
        _check_sqlite_file(parsed, shown)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": opts.connect_timeout}
    elif backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": opts.connect_timeout}
    import warnings

    from optuna.exceptions import ExperimentalWarning

    def build() -> ResilientRDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return ResilientRDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=opts.heartbeat,
                grace_period=opts.grace,
                heartbeat_stale_trial_callback=opts.callback,
                retry_window=opts.retry_window,
                stale_confirm=opts.stale_confirm,
            )

    try:
        for attempt in range(_SCHEMA_RACE_TRIES):
            try:
                return build()
            except sqlalchemy.exc.DBAPIError as exc:
                # workers started together on an empty database all create Optuna's tables
                # and types; the losers of that race hit a duplicate: they exist now
                if attempt == _SCHEMA_RACE_TRIES - 1 or not _schema_race(exc):
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except sqlalchemy.exc.NoSuchModuleError:
        raise StorageError(
            f"storage {shown!r}: SQLAlchemy has no dialect {redact(parsed.drivername)!r}"
        ) from None
    except ImportError as exc:
        hint = _DRIVER_HINTS.get(backend, "install the database driver")
        cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        missing = getattr(cause, "name", None)
        what = f"module {missing!r}" if missing else _first_line(cause)
        raise StorageError(
            f"storage {shown!r} needs a database driver that is not installed ({what}): {hint}"
        ) from None
    except Exception as exc:
        raise StorageError(f"cannot use storage {shown!r}: {_first_line(exc)}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_sqlite_storage(path: str | Path, *, timeout: float = 60.0) -> optuna.storages.RDBStorage:
    """A plain :class:`optuna.storages.RDBStorage` on the SQLite file ``path`` for the
    processes of one machine (``ncp-hpo compare``'s per-study files): write-ahead log
    (``journal_mode=WAL``, ``synchronous=NORMAL``: readers never block the writer) and a
    busy timeout of ``timeout`` seconds. No heartbeat and no retries: for workers that may
    die or lose their storage use :func:`open_storage`.
    """
    from sqlalchemy import event

    url = f"sqlite:///{Path(path).resolve()}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": timeout}})
    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # connections opened during set-up lack the pragmas
    return storage
