"""Fixtures of the multi-process tests: a PostgreSQL URL, journal files, worker launching.

PostgreSQL comes from ``NCP_HPO_TEST_POSTGRES`` (``source .ci/postgres.sh`` starts a local
one). Without it the PostgreSQL tests skip, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SUMMARY_KEY = "ncp_summary"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL SQLAlchemy URL (``NCP_HPO_TEST_POSTGRES``)."""
    url = os.environ.get("NCP_HPO_TEST_POSTGRES")
    if not url:
        msg = "NCP_HPO_TEST_POSTGRES is not set (source .ci/postgres.sh to start a server)"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 10})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        msg = f"PostgreSQL at NCP_HPO_TEST_POSTGRES is unusable: {exc!r}"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return url


@pytest.fixture
def study_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"journal:{tmp_path / 'study.log'}"


@pytest.fixture
def drop_studies(postgres_url: str) -> Iterator[list[str]]:
    """Names appended here are deleted from PostgreSQL after the test."""
    names: list[str] = []
    yield names
    import optuna

    for name in names:
        try:
            optuna.delete_study(study_name=name, storage=postgres_url)
        except Exception:  # pragma: no cover - best effort
            pass


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the distributed and fuzz tests record (``record_property``)."""
    lines = []
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            for name, value in getattr(rep, "user_properties", ()):
                if name == _SUMMARY_KEY:
                    lines.append(f"{rep.nodeid.split('::')[-1]}: {value}")
    if lines:
        terminalreporter.write_sep("-", "ncp-hpo distributed / fuzz figures")
        for line in lines:
            terminalreporter.write_line(line)
