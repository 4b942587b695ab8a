"""Smoke test of the real-training head-to-head (benchmarks/real_training_compare.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from _data_helpers import load_script


@pytest.fixture
def runner():  # type: ignore[no-untyped-def]
    yield load_script("real_training_compare")
    sys.modules.pop("real_training_compare", None)


def test_runs_every_sampler_and_seed_and_reports(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    argv = ["--out", str(tmp_path), "--samplers", "ncp,tpe,random", "--seeds", "2"]
    argv += ["--trials", "3", "--epochs", "1", "--train-size", "32"]
    try:
        assert runner.main(argv) == 0
    finally:
        torch.set_num_threads(before)
    runs = json.loads((tmp_path / "results.json").read_text())
    assert sorted((r["sampler"], r["seed"]) for r in runs) == sorted(
        (s, k) for s in ("ncp", "tpe", "random") for k in (0, 1)
    )
    for r in runs:
        assert len(r["trials"]) == 3 and r["refused"] == 0
        assert all(t["state"] == "COMPLETE" and t["macs"] <= 4e6 for t in r["trials"])
        assert all(t["cpu_s"] > 0 for t in r["trials"])
    by = {(r["sampler"], r["seed"]): [t["code"] for t in r["trials"]] for r in runs}
    # NCP's start-up draws are random search's (common random numbers), per seed
    assert by[("ncp", 0)] == by[("random", 0)] != by[("random", 1)]
    text = (tmp_path / "summary.md").read_text()
    assert "| ncp | " in text and "| tpe | " in text and "Wilcoxon" in text
    assert "training CPU-s per study" in text
    assert (tmp_path / "anytime.png").stat().st_size > 0
    # a rerun continues the stored studies: nothing left to train, same report
    assert runner.main(argv) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert [r["trials"] for r in again] == [r["trials"] for r in runs]
