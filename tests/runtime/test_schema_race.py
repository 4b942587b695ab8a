"""Workers started together on an empty database (found by ``benchmarks/chaos.py``).

Every ``ncp-hpo worker`` creates Optuna's tables and types when it opens a database that has
none; on PostgreSQL the processes that lose that race got ``UniqueViolation`` or
``DuplicateObject`` and stopped (``cannot use storage``). :func:`open_storage` now opens the
storage again when the error is such a duplicate (the schema exists by then), and still
fails at once for any other database error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy.exc

from ncp_hpo.exceptions import StorageError
from ncp_hpo.runtime import _heartbeat, open_storage


class _PgError(Exception):
    def __init__(self, text: str, sqlstate: str) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


def _failing(monkeypatch: pytest.MonkeyPatch, errors: Sequence[BaseException]) -> list[int]:
    """Make the first ``len(errors)`` storage constructions raise them; the call count."""
    calls: list[int] = []
    real = _heartbeat.ResilientRDBStorage.__init__

    def init(self: object, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_heartbeat.ResilientRDBStorage, "__init__", init)
    return calls


def _dbapi(text: str, sqlstate: str, cls: type = sqlalchemy.exc.ProgrammingError) -> Exception:
    return cls("CREATE TYPE studydirection", {}, _PgError(text, sqlstate))


@pytest.mark.parametrize(
    ("text", "sqlstate", "cls"),
    [
        ('type "studydirection" already exists', "42710", sqlalchemy.exc.ProgrammingError),
        ("duplicate key value violates unique constraint", "23505", sqlalchemy.exc.IntegrityError),
    ],
)
def test_a_schema_created_meanwhile_by_another_worker_is_opened(
    text: str, sqlstate: str, cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing(monkeypatch, [_dbapi(text, sqlstate, cls)])
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1)
    assert len(calls) == 2 and isinstance(storage, _heartbeat.ResilientRDBStorage)


def test_other_database_errors_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing(monkeypatch, [_dbapi("permission denied for schema public", "42501")])
    with pytest.raises(StorageError, match="permission denied"):
        open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1)
    assert len(calls) == 1


def test_a_race_that_goes_on_fails_after_three_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    race = [_dbapi("already exists", "42P07") for _ in range(3)]
    calls = _failing(monkeypatch, race)
    with pytest.raises(StorageError, match="already exists"):
        open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1)
    assert len(calls) == 3


_OPEN_AT = """
import sys, time
from ncp_hpo.runtime import open_storage
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process opens at once
open_storage(sys.argv[1], heartbeat=10)
"""


@pytest.mark.parametrize("rep", range(2))
def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path: Path, rep: int) -> None:
    """Found by a fresh-clone check: two ``ncp-hpo worker`` started together on a new SQLite
    file failed 3 times in 4 (``UNIQUE constraint failed: alembic_version.version_num``)."""
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / f'new-{rep}.db'}"
    start = str(time.time() + 4.0)  # after every process has imported Optuna
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT, url, start], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
