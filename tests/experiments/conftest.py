"""Fixtures of tests/experiments: those of tests/benchmarks (each test in its own empty data
and cache folders), re-used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_ncp_benchmarks_conftest", Path(__file__).resolve().parents[1] / "benchmarks" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_benchmarks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_benchmarks)

isolated_env = _benchmarks.isolated_env
converted_cache = _benchmarks.converted_cache
