"""Shared fixtures.

The benchmark files are never committed: tests read them from ``../shared/nas-bench-mr``
beside the checkout (as CI lays it out), or from ``NCP_HPO_TEST_DATA`` or the library's
own ``NCP_HPO_DATA`` when set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from _fixtures import (  # noqa: F401  (shared fixtures: one definition each)
    closed_port_url,
    converted_cache,
    isolated_env,
    mlflow_server,
    nb201,
    seg,
    tiny_code,
)

from ncp_hpo._numerics import pin_cpu_math

# the same CPU math paths as the ``ncp-hpo`` command (set before any test imports torch)
pin_cpu_math()

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    envs = (os.environ.get(k) for k in ("NCP_HPO_TEST_DATA", "NCP_HPO_DATA"))
    candidates = [Path(e) for e in envs if e]
    candidates.append(REPO_ROOT.parent / "shared" / "nas-bench-mr")
    for c in candidates:
        if (c / "seg" / "trainval.pkl").is_file():
            return c
    return None


_SHARED = _shared_data_dir()
# the library's own lookup must not find the data unasked (``study --prior auto`` would fit a
# prior): every test behaves as on CI, where NCP_HPO_DATA is unset; tests pass the folder
os.environ.pop("NCP_HPO_DATA", None)
# nor the user's cache: a cached zero-cost score table turns on NCP's warm start, so every
# test starts from an empty cache of its own (tests that need one set NCP_HPO_CACHE)
os.environ["NCP_HPO_CACHE"] = tempfile.mkdtemp(prefix="ncp-hpo-test-cache-")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The directory holding the upstream NAS-Bench-MR files (``<setting>/trainval.pkl``)."""
    path = _SHARED
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("benchmark data not found beside the checkout (../shared/nas-bench-mr)")
        pytest.skip(
            "benchmark data not found (../shared/nas-bench-mr, NCP_HPO_TEST_DATA or NCP_HPO_DATA)"
        )
    return path


def uses_postgres(item: pytest.Item) -> bool:
    """Whether ``item`` uses the test server: it asks for ``postgres_url``, or it is the
    ``"postgres"`` case of a parametrized backend (whose fixture asks for ``postgres_url``
    only when it runs, so the name is not among the item's fixtures)."""
    if "postgres_url" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(
        isinstance(v, str) and v == "postgres" for v in callspec.params.values()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep every PostgreSQL test on one pytest-xdist worker (``--dist loadgroup``).

    The chaos tests stop and restart the one test server; a PostgreSQL test running on
    another worker at that moment would fail for a reason that is not its own.
    """
    for item in items:
        if uses_postgres(item):
            item.add_marker(pytest.mark.xdist_group("postgres"))
