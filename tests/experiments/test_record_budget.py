"""The budgeted NAS-Bench-201 record (``compare --max-flops p25``) regenerates: 2 seeds x 20
trials of NCP, TPE (which has codes refused) and CMA-ES give the record's codes and values,
trial by trial, the refused codes never among them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ncp_hpo.experiments._record import check_record, load_record

RECORD = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "nas-bench-201-budget"


@pytest.mark.skipif(
    importlib.util.find_spec("cmaes") is None,
    reason="needs the 'cmaes' extra (pip install -e '.[cmaes]')",
)
def test_budget_record_regenerates(tmp_path: Path, shared_data_dir: Path) -> None:
    record = RECORD / "p25"
    cfg = load_record(record)["config"]
    assert cfg["max_flops"] == "p25" and cfg["trials"] == 50 and cfg["seeds"] == 20
    check = check_record(
        record,
        out=tmp_path,
        seeds=2,
        trials=20,
        samplers=("ncp", "tpe", "cmaes"),
        data_dir=shared_data_dir,
    )
    assert len(check.compared) == 6
    assert check.ok, "\n".join(check.mismatches)
