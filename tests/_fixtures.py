"""Fixtures shared across test folders (one definition each).

The root ``conftest.py`` imports the plain ones, so every test can use them; the autouse
ones (``_few_threads``, ``isolated_env``) are imported by the conftest of each folder whose
tests they apply to.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _netcheck import free_port

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkTable


# One tiny network: every b and n = 1, every channel count = 8.
TINY_CODE = "8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8"


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> Iterator[None]:
    """The CI machine has two cores shared with other jobs: train on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_code() -> str:
    return TINY_CODE


@pytest.fixture
def closed_port_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of an ``mlflow server`` started for this session.

    SQLite backend and proxied artifacts in a temporary folder, one worker; stopped (its
    process group, which this fixture created) at the end of the session.
    """
    root: Path = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    exe = shutil.which("mlflow")
    cmd = [exe] if exe else [sys.executable, "-m", "mlflow"]
    cmd += [
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                text = (root / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not start (exit {proc.poll()}):\n{text}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def nb201(shared_data_dir: Path) -> BenchmarkTable:
    from ncp_hpo.benchmarks import load_benchmark

    return load_benchmark("nas-bench-201", data_dir=shared_data_dir)


@pytest.fixture(scope="session")
def seg(shared_data_dir: Path) -> BenchmarkTable:
    from ncp_hpo.benchmarks import load_benchmark

    return load_benchmark("seg", data_dir=shared_data_dir)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the user cache at an empty temp folder and unset ``NCP_HPO_DATA``."""
    from ncp_hpo.benchmarks import clear_cache

    cache = tmp_path / "user-cache"
    monkeypatch.setenv("NCP_HPO_CACHE", str(cache))
    monkeypatch.delenv("NCP_HPO_DATA", raising=False)
    clear_cache()
    yield cache
    clear_cache()


@pytest.fixture(scope="session")
def converted_cache(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding every locally available setting, converted once per session."""
    from ncp_hpo.benchmarks import fetch

    root = tmp_path_factory.mktemp("converted-cache")
    fetch(source=shared_data_dir, cache=root)
    return root
