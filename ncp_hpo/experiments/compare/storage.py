"""The SQLite opener of the comparison's studies: one file per sampler x seed study, so
parallel workers never contend for one database lock.

This is the comparison's only storage opener (kept apart so it can be folded into the
package's storage module later); it does what it did in ``compare`` before the move."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


__all__ = ["open_storage", "study_path"]


def open_storage(path: str | Path) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage on the SQLite file ``path`` (WAL, synchronous=NORMAL, 60 s
    busy timeout): with the write-ahead log a killed process loses at most the trial it was
    running, and trials write far faster than with SQLite's default rollback journal."""
    import optuna
    from sqlalchemy import event

    url = f"sqlite:///{Path(path).resolve()}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(storage.engine, "connect", _pragmas)
    storage.engine.dispose()  # connections opened during set-up lack the pragmas
    return storage


def study_path(out: Path, name: str) -> Path:
    """``<out>/studies/<name>.db``: the SQLite file of study ``name``."""
    return out / "studies" / f"{name}.db"
