"""The SQLite opener of the comparison's studies (one file per study)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


__all__ = ["open_storage", "study_path"]


def open_storage(path: str | Path) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage on the SQLite file ``path`` (WAL, synchronous=NORMAL, 60 s
    busy timeout; see the module docstring)."""
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
    return out / "studies" / f"{name}.db"
