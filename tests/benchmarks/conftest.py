"""Fixtures of the benchmark-data tests: an isolated environment and a converted cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ncp_hpo.benchmarks import clear_cache, fetch


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the user cache at an empty temp folder and unset ``NCP_HPO_DATA``."""
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("NCP_HPO_CACHE", str(cache))
    monkeypatch.delenv("NCP_HPO_DATA", raising=False)
    clear_cache()
    yield cache
    clear_cache()


@pytest.fixture(scope="session")
def converted_cache(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding every locally available setting, converted once per session."""
    root = tmp_path_factory.mktemp("converted-cache")
    fetch(source=shared_data_dir, cache=root)
    return root
