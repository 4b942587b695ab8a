"""Budgeted search in ``ncp-hpo compare --max-flops``: accuracy subject to exact FLOPs <= B
on the NAS-Bench-201 table (issue 27): no code over the budget is evaluated or counted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import optuna
import pytest

from ncp_hpo.benchmarks import load_benchmark
from ncp_hpo.benchmarks._budget import check_max_flops, resolve_max_flops, table_flops
from ncp_hpo.cli import main
from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.compare import CompareConfig, run_comparison
from ncp_hpo.experiments.compare._config import study_name
from ncp_hpo.runtime import open_sqlite_storage
from ncp_hpo.spaces import NB201Space
from ncp_hpo.trainers import is_over_budget

NB201 = "nas-bench-201"


def test_percentile_resolves_over_the_exact_flops_of_the_table(shared_data_dir: Path) -> None:
    table = load_benchmark(NB201, shared_data_dir)
    exact = np.asarray(NB201Space().flops(table.codes), dtype=np.float64) / 1e6
    np.testing.assert_allclose(table_flops(table), exact)
    for q in (25, 50, 75):
        assert resolve_max_flops(table, f"p{q}") == pytest.approx(np.percentile(exact, q))
    assert resolve_max_flops(table, "p25") == pytest.approx(19.58528)
    assert resolve_max_flops(table, "P50") == resolve_max_flops(table, "p50")
    assert resolve_max_flops(table, 30) == 30.0 and resolve_max_flops(table, "30.5") == 30.5
    assert resolve_max_flops(table, "p100") == pytest.approx(exact.max())


@pytest.mark.parametrize("bad", ["abc", "p0", "p101", "p", "-3", "0", "nan", "inf", True, None])
def test_bad_budget_values_are_refused_in_one_line(bad: object) -> None:
    with pytest.raises(ValueError, match="max_flops must be a positive number") as info:
        check_max_flops(bad)
    assert "\n" not in str(info.value)


def test_config_refuses_budgets_it_cannot_honour() -> None:
    with pytest.raises(CompareError, match="--max-flops must be"):
        CompareConfig(NB201, max_flops="p-5")
    with pytest.raises(CompareError, match="not two objectives"):
        CompareConfig(NB201, objective="metric+flops", max_flops="p25")
    with pytest.raises(CompareError, match="table mode snaps"):
        CompareConfig(NB201, mode="table", max_flops=30)
    assert CompareConfig(NB201, max_flops=" p25 ").max_flops == "p25"
    assert CompareConfig(NB201, max_flops="30").max_flops == 30.0
    # a study's settings name the absolute budget only when one is set (old studies resume)
    assert "max_flops" not in CompareConfig(NB201).settings("exact")
    assert CompareConfig(NB201).settings("exact", 19.5)["max_flops"] == 19.5


# one sampler of each kind: predictor-based (the budgeted space), Optuna's own (refused
# codes and constraints), and Optuna's random sampler, which a budgeted space makes uniform
# over the codes within it
@pytest.mark.parametrize(
    ("samplers", "refuses"),
    [
        (("ncp", "netadapt", "neural-predictor"), False),
        (("random",), False),
        pytest.param(
            ("tpe", "cmaes", "nsga2"),
            True,
            marks=pytest.mark.skipif(
                importlib.util.find_spec("cmaes") is None,
                reason="needs the 'cmaes' extra (pip install -e '.[cmaes]')",
            ),
        ),
    ],
)
def test_no_code_over_the_budget_is_evaluated_or_counted(
    samplers: tuple[str, ...], refuses: bool, shared_data_dir: Path, tmp_path: Path
) -> None:
    trials = 12
    res = run_comparison(
        CompareConfig(
            NB201,
            samplers=samplers,
            trials=trials,
            seeds=1,
            budgets=(5,),
            max_flops="p25",
            out=tmp_path,
            data_dir=shared_data_dir,
            progress=False,
        )
    )
    assert not res.errors
    cap = res.info.budget["max_flops"]  # type: ignore[index]
    assert cap == pytest.approx(19.58528)
    space = NB201Space()
    refused_total = 0
    for s in samplers:
        name = study_name(NB201, s, 0)
        study = optuna.load_study(
            study_name=name, storage=open_sqlite_storage(tmp_path / "studies" / f"{name}.db")
        )
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        assert len(done) == trials
        for t in done:  # every evaluated code is within the budget
            flops = float(space.flops(space.decode(t.user_attrs["code"]))) / 1e6
            assert flops <= cap + 1e-9 and not is_over_budget(t)
            assert all(v <= 0 for v in t.constraints.values())
        others = [t for t in study.get_trials(deepcopy=False) if t not in done]
        for t in others:  # refused: PRUNED, flagged, constrained, never evaluated
            assert t.state == optuna.trial.TrialState.PRUNED and is_over_budget(t)
            assert t.constraints["compute_budget"] > 0 and t.user_attrs["flops_exact"] > cap
            assert "metrics" not in t.user_attrs and t.values is None
        refused_total += len(others)
        if not refuses:
            assert not others, f"{s} proposed a code over the budget"
    for run in res.runs:  # counted: the first `trials` evaluated trials, all feasible
        assert run.n == trials and run.n_refused is not None
        assert float(np.max(run.values)) <= res.info.optimum + 1e-9  # type: ignore[operator]
    if refuses:
        assert refused_total > 0  # free proposals do cross a 25th-percentile budget
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["benchmark"]["budget"]["given"] == "p25"
    assert doc["config"]["max_flops"] == "p25"
    md = (tmp_path / "summary.md").read_text()
    assert "FLOPs budget: <= 19.5853 MFLOPs (`--max-flops p25`" in md
    assert "best feasible Acc" in md and "over-budget refusals" in md
    # the optimum is the best accuracy within the budget, below the table's 47.33
    assert res.info.optimum == pytest.approx(40.5333, abs=1e-3)


def test_cli_prints_the_absolute_budget_and_errors_in_one_line(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["compare", "--benchmark", NB201, "--samplers", "random", "--trials", "3",
            "--seeds", "1", "--budgets", "2", "--jobs", "1", "--data-dir", str(shared_data_dir),
            "--no-mlflow", "--quiet"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "ok"), "--max-flops", "p50"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs budget: <= 47.1104 MFLOPs on nas-bench-201 (--max-flops p50" in out
    for value, says in (
        ("lots", "--max-flops must be a positive number"),
        ("p250", "--max-flops must be a positive number"),
        ("1", "below the smallest code of the space (7.7888 MFLOPs)"),
    ):
        rc = main([*base, "--out", str(tmp_path / value), "--max-flops", value])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and says in err, err


def test_mlflow_parent_run_names_the_budget(
    shared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a SQLite tracking store puts artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = run_comparison(
        CompareConfig(
            NB201, samplers=("random",), trials=3, seeds=1, budgets=(3,), max_flops="p25",
            out=tmp_path / "o", data_dir=shared_data_dir, progress=False, mlflow=True,
            mlflow_uri=uri, mlflow_experiment="b",
        )
    )  # fmt: skip
    assert res.mlflow_run_id is not None
    params = MlflowClient(tracking_uri=uri).get_run(res.mlflow_run_id).data.params
    assert params["max_flops"] == "19.5853 MFLOPs" and params["max_flops_given"] == "p25"
