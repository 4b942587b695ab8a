"""Fixtures of tests/benchmarks: each test in its own empty data and cache folders."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _each_test_isolated(isolated_env: Path) -> Path:
    return isolated_env
