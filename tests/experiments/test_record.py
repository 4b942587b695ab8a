"""The recorded NAS-Bench-201 comparison regenerates: 2 seeds x 30 trials of every recorded
sampler give the record's codes and values, trial by trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncp_hpo.exceptions import RecordError
from ncp_hpo.experiments._record import check_record, load_record

RECORD = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "nas-bench-201"


@pytest.mark.slow
def test_nas_bench_201_record_regenerates(tmp_path: Path, shared_data_dir: Path) -> None:
    check = check_record(RECORD, out=tmp_path, seeds=2, trials=30, data_dir=shared_data_dir)
    samplers = {s for s, _ in check.compared}
    assert {"ncp", "netadapt", "neural-predictor", "random", "tpe"} <= samplers
    assert len(check.compared) == 2 * len(samplers)
    assert check.ok, "\n".join(check.mismatches)


def test_default_ncp_record_regenerates(tmp_path: Path, shared_data_dir: Path) -> None:
    """The record of today's default (local mode + the shipped synflow warm start) and of
    TPE given the same warm-start codes."""
    record = RECORD.parent / "nas-bench-201-default"
    assert load_record(record)["config"]["ncp_mode"] == "local"
    _regenerates(record, ("ncp", "tpe+zc"), tmp_path, shared_data_dir)


def test_a_changed_record_is_caught(tmp_path: Path, shared_data_dir: Path) -> None:
    """The check can fail: one recorded value changed is reported with its trial."""
    import json

    data = load_record(RECORD)
    for run in data["runs"]:
        if run["sampler"] == "random" and int(run["seed"]) == 0:
            run["values"][3][0] += 1.0
    fake = tmp_path / "record"
    fake.mkdir()
    (fake / "results.json").write_text(json.dumps(data))
    check = check_record(
        fake,
        out=tmp_path / "out",
        seeds=1,
        trials=5,
        samplers=("random",),
        data_dir=shared_data_dir,
    )
    assert not check.ok
    assert check.mismatches == [m for m in check.mismatches if "random seed 0" in m]
    assert "from trial 3" in check.mismatches[0]


def test_records_written_before_the_rename_read_lam_as_flops_weight(tmp_path: Path) -> None:
    """Records before 0.2.0 store the objective's FLOPs weight as ``lam``; they are read
    (not rewritten) with the new key, and new records write ``flops_weight``."""
    import json

    raw = json.loads((RECORD / "results.json").read_text())
    assert "lam" in raw["config"]  # the committed record keeps its old key
    cfg = load_record(RECORD)["config"]
    assert "lam" not in cfg and cfg["flops_weight"] is None
    raw["config"]["lam"] = 0.5
    (tmp_path / "results.json").write_text(json.dumps(raw))
    assert load_record(tmp_path)["config"]["flops_weight"] == 0.5


def test_bad_records_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="cannot read"):
        load_record(tmp_path / "nothing")
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(RecordError, match="not a comparison record"):
        load_record(tmp_path)
    with pytest.raises(RecordError, match="asked for"):
        check_record(RECORD, out=tmp_path / "o", seeds=1, trials=1000)


def test_two_objective_record_regenerates(tmp_path: Path, shared_data_dir: Path) -> None:
    """The accuracy-vs-FLOPs record (issue 27): NCP's trade-off start-up in a two-objective
    study, the same codes enqueued for TPE (``tpe+zc``), and NSGA-II, trial by trial."""
    record = RECORD.parent / "nas-bench-201-mo"
    assert load_record(record)["config"]["objective"] == "metric+flops"
    _regenerates(record, ("ncp", "tpe+zc", "nsga2"), tmp_path, shared_data_dir)


def _regenerates(record: Path, samplers: tuple[str, ...], out: Path, data_dir: Path) -> None:
    """2 seeds x 30 trials of ``samplers`` give ``record``'s codes and values."""
    check = check_record(record, out=out, seeds=2, trials=30, samplers=samplers, data_dir=data_dir)
    assert len(check.compared) == 2 * len(samplers)
    assert check.ok, "\n".join(check.mismatches)
