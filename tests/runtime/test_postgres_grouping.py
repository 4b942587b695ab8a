"""Every test that uses the PostgreSQL test server runs on one pytest-xdist worker.

The chaos tests stop and restart that server; a PostgreSQL test on another worker at that
moment fails for a reason that is not its own. In a clean-clone CI run of stop 35 the
``[postgres]`` case of ``test_first_beat``, whose backend fixture asks for the server only
when it runs, was not grouped and met "connection refused" during a chaos test's outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_REPORT = """
def pytest_collection_finish(session):
    for item in session.items:
        groups = [m.args for m in item.iter_markers("xdist_group")]
        print("ITEM", item.nodeid, "postgres_url" in item.fixturenames, groups, sep="\\t")
"""


def test_every_postgres_test_is_in_the_postgres_group(tmp_path: Path) -> None:
    (tmp_path / "report_groups.py").write_text(_REPORT)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--collect-only", "-q", "-s"),
            *("-p", "report_groups", "-p", "no:xdist", "-p", "no:cacheprovider"),
            "tests",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [line.split("\t")[1:] for line in out.stdout.splitlines() if line.startswith("ITEM\t")]
    assert rows, out.stdout[-2000:] + out.stderr[-2000:]
    # by their ids: a parametrized case named postgres, or a test that asks for the server
    pg = [r for r in rows if "postgres" in _case(r[0]) or r[1] == "True"]
    assert len(pg) >= 7, pg  # the storage, worker, first-beat and chaos tests at least
    ungrouped = [r[0] for r in pg if "('postgres',)" not in r[2]]
    assert not ungrouped, ungrouped


def _case(nodeid: str) -> list[str]:
    """The parametrized ids of a test, ``t[a-b]`` -> ``["a", "b"]``."""
    return nodeid.partition("[")[2].removesuffix("]").split("-")
