"""``benchmarks/paired_table.py``: per-budget medians and paired tests from compare folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _data_helpers import load_script

from ncp_hpo.experiments.compare import CompareConfig, run_comparison
from ncp_hpo.experiments.compare._stats import paired_wilcoxon


def _compare(out: Path, samplers: tuple[str, ...], data: Path) -> None:
    run_comparison(
        CompareConfig(
            "nas-bench-201",
            samplers=samplers,
            trials=10,
            seeds=4,
            budgets=(5,),
            out=out,
            data_dir=data,
            progress=False,
        )
    )


def test_tables_match_the_compare_scores_across_folders(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _compare(tmp_path / "a", ("ncp", "random"), shared_data_dir)
    _compare(tmp_path / "b", ("ncp", "tpe"), shared_data_dir)  # ncp again: the same scores
    script = load_script("paired_table")
    scores = script.read_scores([tmp_path / "a", tmp_path / "b"])
    assert sorted(scores) == ["ncp", "random", "tpe"]
    with (tmp_path / "a" / "runs.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["budget"] == "10"]
    for sampler in ("ncp", "random"):
        finals = [float(r["score"]) for r in rows if r["sampler"] == sampler]
        assert [scores[sampler][(k, 10)] for k in range(4)] == finals
    assert script.main([str(tmp_path / "a"), str(tmp_path / "b"), "--budgets", "5,10"]) == 0
    out = capsys.readouterr().out.splitlines()
    (tpe,) = [line for line in out if line.startswith("| `tpe` (4 seeds)")]
    test = paired_wilcoxon(
        [scores["ncp"][(k, 10)] for k in range(4)], [scores["tpe"][(k, 10)] for k in range(4)]
    )
    median = float(np.median([scores["tpe"][(k, 10)] for k in range(4)]))
    assert f"{median:.2f} [" in tpe and f"({test.wins}/{test.ties}/{test.losses})" in tpe


def test_a_sampler_that_differs_between_folders_is_refused(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    _compare(tmp_path / "a", ("random",), shared_data_dir)
    _compare(tmp_path / "b", ("random",), shared_data_dir)
    path = tmp_path / "b" / "runs.csv"
    text = path.read_text().splitlines()
    head, first = text[0].split(","), text[1].split(",")
    first[head.index("score")] = "0.5"
    path.write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    script = load_script("paired_table")
    with pytest.raises(SystemExit, match="random seed 0 differs between folders"):
        script.read_scores([tmp_path / "a", tmp_path / "b"])
