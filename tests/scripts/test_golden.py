"""Same results, bit for bit: the commands of ``benchmarks/golden.py`` give the recorded numbers.

``compare`` on NAS-Bench-201 is covered trial by trial by ``tests/experiments/test_record.py``; the
other cases (seg comparison, ``search``, the paper protocol, ``train``, ``study``) run here,
each as a user runs it (a subprocess of the ``ncp-hpo`` command line).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden", ROOT / "benchmarks" / "golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("case", ["compare-seg", "search", "paper", "train", "study"])
def test_golden_case_is_identical(case: str, tmp_path: Path, shared_data_dir: Path) -> None:
    golden = _golden()
    record = json.loads(golden.RECORD.read_text())
    got = json.loads(json.dumps(golden.CASES[case](tmp_path, str(shared_data_dir))))
    diffs: list[str] = []
    golden._diff(record[case], got, case, diffs)
    assert not diffs, "\n".join(diffs)


def test_the_check_can_fail() -> None:
    """A changed number is reported with where it is."""
    golden = _golden()
    diffs: list[str] = []
    golden._diff({"a": [1.0, {"b": 2.5}]}, {"a": [1.0, {"b": 2.5000001}]}, "case", diffs)
    assert diffs == ["case/a[1]/b: record 2.5 != this run 2.5000001"]
