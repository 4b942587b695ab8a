"""``ncp-hpo search``: single-task, cached predictor, joint, transfer, NAS-Bench-201, errors.

Predictors are trained with few epochs and propagation runs few iterations. Runs that use
the surrogate oracle call the library (``run_setting_search``) with a one-member, 20-tree
``OracleConfig``; command-line runs use ``--no-oracle`` or NAS-Bench-201 (complete table).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ncp_hpo.benchmarks import OracleConfig, clear_cache, load_benchmark
from ncp_hpo.benchmarks.setting_search import SearchRequest, parse_code, run_setting_search
from ncp_hpo.cli import main
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space
from ncp_hpo.spaces.nb201 import DEFAULT_START as NB201_DEFAULT_START

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_ORACLE = OracleConfig(members=1, max_iter=20, cv_folds=2, metrics=())


@pytest.fixture(scope="module")
def search_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One user cache (predictors, oracle) shared by the tests of this file."""
    return tmp_path_factory.mktemp("search-cache")


@pytest.fixture(autouse=True)
def search_env(
    search_cache: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("NCP_HPO_CACHE", str(search_cache))
    monkeypatch.setenv("NCP_HPO_DATA", str(shared_data_dir))
    yield
    clear_cache()


def _search(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    rc = main(["search", "--no-progress", *argv])
    wall = time.perf_counter() - t0
    out, err = capsys.readouterr()
    return rc, out, err, wall


def _found(out: str) -> str:
    (line,) = [ln for ln in out.splitlines() if ln.startswith("found code: ")]
    return line.removeprefix("found code: ")


def test_seg_search_reports_code_writes_outputs_and_the_cli_reuses_the_cache(
    tmp_path: Path, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # seed 7 is used by no other test, so the first run trains
    request = SearchRequest(
        setting="seg", iters=10, epochs=30, seed=7, data_dir=str(shared_data_dir)
    )
    log: list[str] = []
    outcome = run_setting_search(request, oracle_config=TINY_ORACLE, log=log.append)
    out1 = "\n".join(log) + outcome.report()
    assert "trained in" in out1 and "reused from cache" not in out1
    code = MultiResolutionSpace().decode(_found(out1))  # a valid 27-integer code
    assert code.shape == (27,) and np.array_equal(code, outcome.found)
    # named table: every dimension with its meaning
    assert "stage1.channels[0]" in out1 and "head.channels" in out1
    assert "predicted mIoU" in out1 and "GFLOPs" in out1 and "M params" in out1
    table = load_benchmark("seg")
    if code.tolist() in table.codes.tolist():
        assert "measured: table row" in out1
    else:
        assert "SURROGATE mIoU" in out1 and "Spearman" in out1 and "2-fold CV" in out1
        assert outcome.truth["seg"]["fidelity"]["folds"] == 2  # the config passed in
    outcome.write(tmp_path / "a")
    doc = json.loads((tmp_path / "a" / "trajectory.json").read_text())
    assert doc["found"]["string"] == _found(out1)
    assert doc["args"]["seed"] == 7 and doc["strategy"] == "continuous"
    traj = doc["stages"][0]["result"]["trajectory"]
    assert len(traj["rounded"]) == 11 and len(traj["rounded"][0][0]) == 27
    expected_flops = MultiResolutionSpace().flops(code, convention="thop") / 1e9
    assert doc["found"]["flops"] == pytest.approx(float(expected_flops))
    assert (tmp_path / "a" / "trajectory.png").read_bytes()[:8] == PNG_MAGIC

    args = ["--setting", "seg", "--iters", "10", "--epochs", "30", "--seed", "7", "--no-oracle"]
    rc, out2, err2, _ = _search(capsys, *args, "--out", str(tmp_path / "b"))
    assert rc == 0, err2
    assert "reused from cache" in out2 and "trained in" not in out2
    assert _found(out2) == _found(out1)
    assert "surrogate oracle off" in out2 or "measured: table row" in out2
    doc2 = json.loads((tmp_path / "b" / "trajectory.json").read_text())
    assert doc2["found"]["predicted"] == doc["found"]["predicted"]
    assert doc2["stages"][0]["result"]["codes"] == doc["stages"][0]["result"]["codes"]


def test_joint_and_transfer_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--iters", "5", "--epochs", "10", "--no-plot", "--no-oracle"]
    rc, out, err, _ = _search(
        capsys, "--setting", "seg", "--joint", "cls-50-1000,seg", *common, "--out", str(tmp_path)
    )
    assert rc == 0, err
    assert "propagation [seg + cls-50-1000]" in out
    assert "predicted mIoU" in out and "predicted top1" in out
    doc = json.loads((tmp_path / "trajectory.json").read_text())
    assert doc["objective_settings"] == ["seg", "cls-50-1000"]
    assert doc["stages"][0]["result"]["objective_names"] == ["seg:mIoU", "cls-50-1000:top1"]
    assert doc["stages"][0]["result"]["settings"]["weights"] == [0.5, 0.5]

    rc, out, err, _ = _search(
        capsys,
        "--setting",
        "seg",
        "--transfer-from",
        "cls-50-1000",
        *common,
        "--out",
        str(tmp_path),
    )
    assert rc == 0, err
    assert "cls-50-1000 (transfer source)" in out and "seg (transfer target)" in out
    doc = json.loads((tmp_path / "trajectory.json").read_text())
    src, dst = doc["stages"]
    assert src["settings"] == ["cls-50-1000"] and dst["settings"] == ["seg"]
    # the target starts exactly where the source ended
    assert dst["result"]["initial_codes"][0] == [float(v) for v in src["result"]["codes"][0]]
    assert doc["found"]["code"] == dst["result"]["codes"][0]


def test_nas_bench_201_search_prints_cell_and_true_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err, _ = _search(
        capsys,
        "--setting",
        "nas-bench-201",
        "--iters",
        "20",
        "--epochs",
        "10",
        "--lam",
        "0.2",
        "--out",
        str(tmp_path),
    )
    assert rc == 0, err
    cell = _found(out)
    code = NB201Space().decode(cell)
    assert out.count("start code: " + NB201_DEFAULT_START) == 1
    row = load_benchmark("nas-bench-201").query(code)
    assert row is not None  # the table is complete
    acc = row["Acc"]
    assert f"true Acc {acc:.2f} %" in out
    doc = json.loads((tmp_path / "trajectory.json").read_text())
    assert [s["iteration"] for s in doc["steps"]] == [0, 10, 20]
    assert doc["steps"][-1]["cell"] == cell and doc["steps"][-1]["acc"] == pytest.approx(acc)
    assert (tmp_path / "trajectory.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            [
                "--setting",
                "seg",
                "--init",
                "64_64-2_1_2_60-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64",
            ],
            "c1_1 (stage1.channels[0], index 4) = 60 is not a multiple of 8",
        ),
        (
            ["--setting", "seg", "--init", ",".join(["64"] * 26)],
            "shape",
        ),
        (
            [
                "--setting",
                "nas-bench-201",
                "--init",
                "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            ],
            "unknown operation 'conv' on edge e1_0",
        ),
        (
            ["--setting", "segg"],
            "unknown benchmark setting 'segg'; known: cls-50-1000, cls-50-100",
        ),
        (
            ["--setting", "seg", "--joint", "cls-50-1000,vdeo"],
            "unknown benchmark setting 'vdeo'; known:",
        ),
        (
            ["--setting", "seg", "--joint", "nas-bench-201"],
            "need one code space",
        ),
        (
            ["--setting", "nas-bench-201", "--strategy", "wta"],
            "does not apply to nas-bench-201",
        ),
        (
            ["--setting", "seg", "--transfer-from", "video", "--init", "1,2"],
            "--init and --transfer-from",
        ),
        (
            ["--setting", "seg", "--n-train", "2400", "--n-val", "500"],
            "--n-train + --n-val = 2900 exceeds the 2507 codes of seg",
        ),
        (["--setting", "seg", "--lam", "nan"], "--lam must be a finite number >= 0"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err, _ = _search(capsys, *argv)
    assert rc == 2
    assert err.startswith("ncp-hpo: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "trained in" not in out  # failed before any predictor training


def test_default_starts() -> None:
    mr = MultiResolutionSpace().default_start()
    assert MultiResolutionSpace().encode(mr) == (
        "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"
    )
    nb = NB201Space().default_start()
    assert NB201Space().encode(nb) == NB201_DEFAULT_START
    ints = parse_code(MultiResolutionSpace(), " ".join(str(v) for v in mr))
    assert np.array_equal(ints, mr)


def test_an_unwritable_cache_warns_in_one_line_and_the_search_goes_on(
    tmp_path: Path,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NCP_HPO_CACHE", str(blocker / "cache"))  # cannot be created
    args = ["--setting", "seg", "--iters", "5", "--epochs", "5", "--seed", "3", "--no-oracle"]
    rc, out, err, _ = _search(capsys, *args, "--out", str(tmp_path / "o"))
    assert rc == 0, err
    assert _found(out)
    warnings_ = [ln for ln in err.splitlines() if ln.startswith("warning: could not cache")]
    assert len(warnings_) >= 1 and "Traceback" not in err
    assert "cached at" not in out  # nothing claims a cache file that was not written


def test_setting_predictor_warns_when_its_cache_cannot_be_written(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    from ncp_hpo.benchmarks.predictors import predictor_cache_key, setting_predictor
    from ncp_hpo.exceptions import PredictorCacheWarning

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    table = load_benchmark("seg", shared_data_dir)
    with pytest.warns(PredictorCacheWarning, match="could not cache the predictor"):
        predictor, record = setting_predictor(
            table, seed=11, n_train=200, n_val=50, epochs=2, cache_root=blocker
        )
    assert record.path is None and not record.cached and record.n_test == len(table) - 250
    assert record.metrics == ["mIoU", "flops"] and predictor.main_metric_ == "mIoU"
    params = predictor.get_params()
    assert record.key == predictor_cache_key(
        table, seed=11, n_train=200, n_val=50, metrics=record.metrics, params=params
    )
    assert record.key != predictor_cache_key(
        table, seed=12, n_train=200, n_val=50, metrics=record.metrics, params=params
    )
