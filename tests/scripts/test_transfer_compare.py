"""The cross-task transfer comparison (benchmarks/transfer_compare.py) on 2 seeds x 3 trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _data_helpers import load_script

from ncp_hpo import load_benchmark
from ncp_hpo.predictor import fit_setting_predictor


@pytest.fixture
def script():  # type: ignore[no-untyped-def]
    yield load_script("transfer_compare")
    sys.modules.pop("transfer_compare", None)


def test_table_mode_runs_every_variant_and_reports(script: Any, shared_data_dir: Path) -> None:
    data = str(shared_data_dir)
    # a quickly fitted source prior (the script's default fits 200 epochs)
    prior, _ = fit_setting_predictor(load_benchmark("cls-50-1000", data), seed=0, epochs=20)
    result = script.run_transfer(
        target="seg", mode="table", seeds=[0, 1], trials=3, data_dir=data, prior=prior
    )
    assert list(result.values) == list(script.VARIANTS)
    seg = np.asarray(load_benchmark("seg", data).metrics["mIoU"], dtype=float)
    for v, vals in result.values.items():
        assert vals.shape == (2, 3), v
        # table mode: every value is a measured seg mIoU
        assert np.all(np.isin(np.round(vals, 6), np.round(seg, 6))), v
        best = result.best(v)
        assert np.all(np.diff(best, axis=1) >= 0) and np.allclose(best[:, 0], vals[:, 0])
    # the scratch samplers' start-up trials are the same random codes in both modes
    np.testing.assert_array_equal(result.values["ncp"], result.values["ncp-local"])
    # before any trial the fine-tuned and the frozen prior are the same model
    np.testing.assert_array_equal(
        result.values["ncp+prior"][:, 0], result.values["ncp+frozen-prior"][:, 0]
    )
    rows = {r["variant"]: r for r in script.summary_rows(result, at=(2, 3))}
    assert set(rows) == set(script.VARIANTS)
    assert "p@3" not in rows["ncp"] and 0.0 <= rows["ncp+prior"]["p@3"] <= 1.0
    w, t, lo = map(int, rows["ncp-local+prior"]["wtl@3"].split("/"))
    assert w + t + lo == 2
    table = script.markdown(result, at=(3,))
    assert table.count("\n") == 1 + len(script.VARIANTS) and "`ncp+prior`" in table


def test_source_equal_to_target_is_refused(script: Any) -> None:
    with pytest.raises(ValueError, match="another setting"):
        script.run_transfer(target="seg", source="seg", seeds=[0, 1], trials=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        script.run_transfer(target="seg", mode="exact", seeds=[0, 1], trials=1)


def test_pool_stacks_seed_blocks_and_refuses_mixed_runs(
    script: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for block, mode in ((0, "table"), (1, "table"), (2, "surrogate")):
        values = {v: (70 + rng.random((3, 4))).tolist() for v in ("ncp", "ncp+prior")}
        payload: dict[str, Any] = {"target": "seg", "source": "cls-50-1000", "mode": mode}
        payload["values"] = values
        payload["seeds"] = list(range(3 * block, 3 * block + 3))
        paths.append(tmp_path / f"{block}.json")
        paths[-1].write_text(json.dumps(payload))
    result = script.pooled([str(paths[0]), str(paths[1])])
    assert result.seeds == [0, 1, 2, 3, 4, 5] and result.values["ncp"].shape == (6, 4)
    first = np.asarray(json.loads(paths[0].read_text())["values"]["ncp"])
    np.testing.assert_array_equal(result.values["ncp"][:3], first)
    assert script.main(["--target", "seg", "--pool", str(paths[0]), "--pool", str(paths[1])]) == 0
    out = capsys.readouterr().out
    assert "`ncp+prior`" in out and "best@20" not in out
    assert script.main(["--target", "seg", "--pool", str(paths[0]), "--pool", str(paths[2])]) == 2
    assert "differ in (target, source, mode)" in capsys.readouterr().err


def test_analysis_ranks_scratch_and_both_fine_tunes(shared_data_dir: Path) -> None:
    analysis = load_script("transfer_analysis")
    try:
        data = str(shared_data_dir)
        prior, _ = fit_setting_predictor(load_benchmark("cls-50-1000", data), seed=0, epochs=20)
        rows = analysis.rank_table("seg", prior, data, repeats=2, ks=(5,))
    finally:
        sys.modules.pop("transfer_analysis", None)
        sys.modules.pop("transfer_compare", None)
    names = [r["predictor"] for r in rows]
    assert names == [
        "prior (no fine-tune)",
        "scratch",
        "prior fine-tuned",
        "prior re-scaled + fine-tuned",
    ]
    assert rows[0]["k"] == 0 and all(r["k"] == 5 for r in rows[1:])
    assert all(-1.0 <= r["kendall"] <= 1.0 and -1.0 <= r["spearman"] <= 1.0 for r in rows)
