"""Fixtures of tests/tracking: the ``mlflow_server`` fixture of tests/trainers, re-used."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_ncp_trainers_conftest", Path(__file__).resolve().parents[1] / "trainers" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_trainers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_trainers)

mlflow_server = _trainers.mlflow_server
