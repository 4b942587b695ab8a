"""Fixtures of tests/search: the benchmark tables of tests/samplers, re-used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_ncp_samplers_conftest", Path(__file__).resolve().parents[1] / "samplers" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_samplers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_samplers)

nb201 = _samplers.nb201
seg = _samplers.seg
