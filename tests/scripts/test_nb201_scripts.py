"""The NAS-Bench-201 benchmark scripts of issue 11: the paper protocol and Ax's default strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _data_helpers import load_script

from ncp_hpo import load_benchmark


@pytest.fixture
def nb201(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """Point the scripts at the shared data; the table's accuracies and MFLOPs."""
    monkeypatch.setenv("NCP_HPO_DATA", str(shared_data_dir))
    table = load_benchmark("nas-bench-201")
    acc = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    mflops = np.asarray(table.space.flops(np.asarray(table.codes)), dtype=np.float64) / 1e6
    return acc, mflops


def test_paper_protocol_returns_table_cells_within_the_budget(
    nb201: tuple[np.ndarray, np.ndarray],
) -> None:
    acc, mflops = nb201
    script = load_script("nb201_paper_protocol")
    row = script.run_seed((0, 200, script.BUDGET))
    assert (row["seed"], row["labelled"]) == (0, 200)
    methods = [k for k in row if k not in ("seed", "labelled")]
    assert {"NCP λ=0.5 (paper, 1 eval)", "NCP multi-start + refine @1"} <= set(methods)
    for m in methods:
        a, f = row[m]
        # every reported cell is a real table cell: its accuracy and MFLOPs pair exists
        assert np.any(np.isclose(acc, a) & np.isclose(mflops, f)), m
        if "budget" in m or "refine" in m or "predictor" in m:
            assert f <= script.BUDGET / 1e6 + 1e-9, m
    # ten evaluations never do worse than the first of them
    assert row["NCP multi-start + refine @10"][0] >= row["NCP multi-start + refine @1"][0]
    assert row["labelled best overall"][0] >= row["labelled best within budget"][0]
    lines = script._summary([row], 200, script.BUDGET)
    assert len(lines) == len(methods) and all(line.startswith("| 200 |") for line in lines)


def test_ax_default_strategy_runs_on_the_table(nb201: tuple[np.ndarray, np.ndarray]) -> None:
    pytest.importorskip("ax")
    acc, _ = nb201
    script = load_script("ax_default_nb201")
    row = script.run_seed(3, 10)
    assert row["seed"] == 3 and row["cpu_s_per_trial"] > 0
    assert np.any(np.isclose(acc, row["best@10"]))  # a measured accuracy
    assert "best@25" not in row  # budgets beyond the trials are not reported


def test_encodings_count_operations_and_follow_the_paths() -> None:
    from ncp_hpo.spaces import NB201Space

    script = load_script("nb201_encoding")
    space = NB201Space()
    code = space.decode(
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )[None].astype(float)
    assert script.encode(code, "onehot").shape == (1, 30)
    counts = script.encode(code, "counts")
    assert counts.shape == (1, 35)
    # none, skip, conv1x1, conv3x3, avg_pool: 1, 1, 1, 3, 0
    np.testing.assert_array_equal(counts[0, 30:], [1, 1, 1, 3, 0])
    paths = script.encode(code, "paths")
    assert paths.shape == (1, 35 + 5 + 25 + 25 + 125)
    # exactly one active operation sequence per path
    assert paths[0, 35:].sum() == 4
    # path 3->0 is the single edge e3_0 = skip_connect (op 1)
    assert paths[0, 35 + 1] == 1
    # path 0 -> 1 -> 3 is conv3x3 then conv3x3: index 3 * 5 + 3 of its 25 slots
    assert paths[0, 40 + 3 * 5 + 3] == 1
