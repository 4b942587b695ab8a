"""The comparison runner (``ncp-hpo compare``): statistics, resuming, MLflow, CLI, outputs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from ncp_hpo.benchmarks import load_benchmark
from ncp_hpo.cli import main
from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.compare import (
    BenchmarkInfo,
    CompareConfig,
    RunRecord,
    best_so_far,
    hypervolume_2d,
    paired_wilcoxon,
    pareto_front_2d,
    run_comparison,
    summary_stat,
)
from ncp_hpo.experiments.compare._config import SETTINGS_ATTR, study_name
from ncp_hpo.experiments.compare._records import summarize_runs
from ncp_hpo.experiments.compare._report import verdict
from ncp_hpo.experiments.compare._stats import hypervolume_history
from ncp_hpo.runtime import open_sqlite_storage

NB201 = "nas-bench-201"


# -- statistics against hand-computed values ---------------------------------------------
def test_summary_stat_median_and_iqr_by_hand() -> None:
    s = summary_stat([5.0, 1.0, 4.0, 2.0, 3.0, float("nan")])
    # sorted 1..5: median 3, 25th percentile 2, 75th 4 (linear interpolation), NaN ignored
    assert (s.median, s.q25, s.q75, s.mean, s.n) == (3.0, 2.0, 4.0, 3.0, 5)
    s4 = summary_stat([1.0, 2.0, 3.0, 4.0])
    # positions 0.75 and 2.25 of the sorted values -> 1.75 and 3.25
    assert (s4.median, s4.q25, s4.q75) == (2.5, 1.75, 3.25)
    assert s4.format(1) == "2.5 [1.8, 3.2]"
    assert summary_stat([]).n == 0


def test_best_so_far() -> None:
    np.testing.assert_array_equal(best_so_far([1, 3, 2, np.nan, 5]), [1, 3, 3, 3, 5])
    np.testing.assert_array_equal(best_so_far([3, 1, 2], maximize=False), [3, 1, 1])


def _info(
    optimum: float | None = 10.0, directions: tuple[str, ...] = ("maximize",)
) -> BenchmarkInfo:
    return BenchmarkInfo(
        setting="toy", mode="exact", objective_names=["m", "flops"][: len(directions)],
        directions=list(directions), main_metric="m", units={}, optimum=optimum,
        optimum_note="", fidelity=None, metric_range=(0.0, 10.0), cost_range=(0.0, 100.0),
    )  # fmt: skip


def _run(sampler: str, seed: int, values: list[float]) -> RunRecord:
    n = len(values)
    return RunRecord(
        sampler=sampler, seed=seed, study_name=f"toy-{sampler}-seed{seed}",
        values=np.asarray(values, dtype=float)[:, None], wall_s=np.full(n, 0.01 * (seed + 1)),
        codes=[""] * n, sources=["table"] * n, metrics=[{}] * n, n_failed=0,
        timestamps_ms=[0] * n,
    )  # fmt: skip


def test_summaries_budgets_regret_and_wilcoxon_by_hand() -> None:
    runs = [
        _run("ncp", 0, [1, 5, 4, 9]),  # best so far 1 5 5 9
        _run("ncp", 1, [2, 2, 7, 7]),  # 2 2 7 7
        _run("ncp", 2, [3, 6, 6, 8]),  # 3 6 6 8
        _run("random", 0, [1, 2, 3, 4]),  # 1 2 3 4
        _run("random", 1, [2, 3, 3, 7]),  # 2 3 3 7 (tie with ncp at 4)
        _run("random", 2, [3, 4, 5, 6]),  # 3 4 5 6
    ]
    summ = summarize_runs(runs, _info(), samplers=["ncp", "random"], trials=4, budgets=[2, 4])
    ncp, rnd = summ["ncp"], summ["random"]
    # budget 2: ncp scores {5, 2, 6} -> median 5, IQR [3.5, 5.5]
    assert (ncp.budgets[2].median, ncp.budgets[2].q25, ncp.budgets[2].q75) == (5.0, 3.5, 5.5)
    # budget 4: ncp {9, 7, 8} -> 8 [7.5, 8.5]; regret 10 - {9,7,8} = {1,3,2} -> 2 [1.5, 2.5]
    assert (ncp.budgets[4].median, ncp.budgets[4].q25, ncp.budgets[4].q75) == (8.0, 7.5, 8.5)
    assert ncp.regret is not None and (ncp.regret.median, ncp.regret.q25) == (2.0, 1.5)
    assert rnd.regret is not None and rnd.regret.median == 4.0  # 10 - {4, 7, 6}
    assert ncp.tests[4] is None
    t = rnd.tests[4]
    assert t is not None
    # differences random - ncp: {-5, 0, -2}: one tie dropped, 2 losses
    assert (t.n, t.n_zero, t.wins, t.ties, t.losses) == (3, 1, 0, 1, 2)
    assert t.p_value == pytest.approx(0.5)  # exact test, 2 non-zero pairs, both negative
    assert "tie" in t.note
    assert ncp.wall_ms == pytest.approx(20.0)  # median of 10, 20, 30 ms
    np.testing.assert_array_equal(ncp.curves[0], [1, 5, 5, 9])


def test_verdict_names_the_best_and_the_significant_differences() -> None:
    # 6 seeds: tpe beats ncp on every seed (exact p = 2^(1-6) = 0.03125), random loses on all
    runs = [_run("ncp", k, [5.0, 5.0 + k]) for k in range(6)]
    runs += [_run("tpe", k, [6.0, 6.0 + k]) for k in range(6)]
    runs += [_run("random", k, [1.0, 1.0 + k]) for k in range(6)]
    runs += [_run("gp", k, [5.0, 5.0 + k + (0.5 if k % 2 else -0.5)]) for k in range(6)]
    summ = summarize_runs(
        runs, _info(), samplers=["ncp", "tpe", "random", "gp"], trials=2, budgets=[2]
    )
    line = verdict(summ, _info())
    assert line.startswith("**Verdict** (best@2, median over seeds): best `tpe` (8.50")
    assert "better than `ncp` (p < 0.05): `tpe` (p = 0.031)" in line
    assert "Significantly worse: `random` (p = 0.031)." in line
    assert "`gp`" not in line  # 3 wins / 3 losses: not significant
    # minimised objective: lower is better, so tpe is now the significantly worse one
    info = _info(optimum=None, directions=("minimize",))
    summ = summarize_runs(runs, info, samplers=["ncp", "tpe", "random"], trials=2, budgets=[2])
    low = verdict(summ, info)
    assert "best `random`" in low and "Significantly worse: `tpe`" in low


def test_wilcoxon_matches_scipy_documented_example() -> None:
    # scipy.stats.wilcoxon docs: these 15 differences give statistic 24, p = 0.041259765625
    d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    t = paired_wilcoxon(np.zeros(15), d)
    assert t.statistic == 24.0
    assert t.p_value == pytest.approx(0.041259765625, abs=1e-12)
    assert (t.wins, t.losses, t.ties, t.note) == (13, 2, 0, "")


def test_wilcoxon_all_ties_and_too_few_pairs_are_explicit() -> None:
    t = paired_wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (t.p_value, t.statistic, t.n_zero, t.note) == (1.0, None, 3, "all ties")
    assert t.format() == "1 (all ties)"
    one = paired_wilcoxon([1.0], [2.0])
    assert one.p_value is None and "1 pair" in one.note
    with pytest.raises(ValueError, match="differ in length"):
        paired_wilcoxon([1.0, 2.0], [1.0])


def test_hypervolume_of_a_tiny_front_by_hand() -> None:
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.0, 3.0], [5.0, 0.0]])
    # (3,3) is dominated, (5,0) lies outside the reference box; the staircase of the
    # other three up to (4,4): 1*1 + 1*2 + 1*3 = 6
    assert hypervolume_2d(pts, (4.0, 4.0)) == pytest.approx(6.0)
    assert hypervolume_2d(np.empty((0, 2)), (4.0, 4.0)) == 0.0
    np.testing.assert_allclose(hypervolume_history(pts[:3], (4.0, 4.0)), [3.0, 5.0, 6.0])
    np.testing.assert_array_equal(pareto_front_2d(pts), [[1, 3], [2, 2], [3, 1], [5, 0]])


def test_hypervolume_matches_botorch_on_random_fronts() -> None:
    """The 2-D hypervolume agrees with BoTorch's public exact ``Hypervolume`` (maximised,
    so both coordinates are negated) on random point sets with ties and points outside."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    rng = np.random.default_rng(0)
    ref = np.array([1.0, 1.0])
    botorch_hv = Hypervolume(ref_point=torch.tensor(-ref, dtype=torch.float64))
    for i in range(200):
        pts = rng.random((int(rng.integers(1, 40)), 2)) * 1.2
        if i % 2:
            pts = np.round(pts, 1)  # duplicates and equal coordinates
        inside = pts[(pts < ref).all(1)]
        expected = (
            botorch_hv.compute(torch.tensor(-inside, dtype=torch.float64)) if len(inside) else 0.0
        )
        assert hypervolume_2d(pts, ref) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_two_objective_scores_are_normalised_hypervolume() -> None:
    info = _info(optimum=None, directions=("maximize", "minimize"))
    # metric 10 at FLOPs 0 is the ideal point: u = v = 0, hypervolume 1
    r = RunRecord(
        sampler="ncp", seed=0, study_name="x", values=np.array([[5.0, 50.0], [10.0, 0.0]]),
        wall_s=np.zeros(2), codes=["", ""], sources=["", ""], metrics=[{}, {}], n_failed=0,
        timestamps_ms=[0, 0],
    )  # fmt: skip
    summarize_runs([r], info, samplers=["ncp"], trials=2, budgets=[1, 2])
    np.testing.assert_allclose(r.scores, [0.25, 1.0])


# -- configuration errors ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samplers": ("ncp", "bogus")}, "unknown sampler 'bogus'"),
        ({"samplers": ("ncp", "ncp")}, "appears twice"),
        ({"trials": 0}, "--trials must be"),
        ({"flops_weight": 0.5}, "--flops-weight scalarises"),
        ({"objective": "metric+flops", "samplers": ("cmaes",)}, "single-objective"),
    ],
)
def test_config_errors_name_the_flag(kwargs: dict, match: str) -> None:
    with pytest.raises(CompareError, match=match):
        CompareConfig(NB201, **kwargs)


def test_config_lam_is_a_deprecated_name_of_flops_weight() -> None:
    with pytest.warns(FutureWarning, match="flops_weight"):
        cfg = CompareConfig(NB201, objective="metric+flops", lam=0.5)
    assert cfg.flops_weight == 0.5 and cfg.n_objectives == 1
    assert cfg.settings("exact")["flops_weight"] == 0.5 and "lam" not in cfg.settings("exact")
    with pytest.raises(CompareError, match="--flops-weight must be a finite number"):
        CompareConfig(NB201, objective="metric+flops", flops_weight=-1.0)
    with pytest.raises(TypeError, match="flops_weight only"):
        CompareConfig(NB201, objective="metric+flops", flops_weight=0.5, lam=0.5)


def test_cli_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["compare", "--benchmark", NB201, "--samplers", "ncp,bogus", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "unknown sampler 'bogus'" in err and "netadapt" in err
    rc = main(["compare", "--benchmark", "no-such-bench", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no-such-bench" in err
    rc = main(["compare", "--benchmark", NB201, "--protocol", "paper", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "NAS-Bench-MR setting" in err


@pytest.mark.parametrize(
    ("option", "value", "uses"),
    [
        ("--samplers", "ncp,random", "NetAdapt"),
        ("--trials", "100", "100 for random search"),  # the study loop's default: still refused
        ("--budgets", "10,25", "fixed budget per method"),
        ("--objective", "metric", "main metric with an exact-FLOPs term"),
        ("--flops-weight", "0.5", "lambda 0.3, 0.5 and 0.7"),
        ("--mode", "table", "surrogate oracle"),
        ("--jobs", "4", "one process"),
    ],
)
def test_paper_protocol_refuses_options_it_does_not_use(
    option: str, value: str, uses: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "paper"
    argv = ["compare", "--benchmark", "seg", "--protocol", "paper", "--out", str(out)]
    rc = main([*argv, option, value])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"{option} is not used by --protocol paper" in err and uses in err
    assert not out.exists()  # refused before anything ran


# -- end to end, resuming, MLflow ----------------------------------------------------------
def test_cli_end_to_end_writes_tables_and_plots(shared_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--benchmark", NB201, "--samplers", "ncp,random", "--trials", "8",
            "--seeds", "2", "--budgets", "4", "--jobs", "2", "--out", str(out), "--data-dir",
            str(shared_data_dir), "--no-mlflow", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    for name in ("summary.md", "summary.csv", "runs.csv", "results.json", "anytime.png"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "summary.md").read_text()
    assert "| `ncp` |" in md and "| `random` |" in md and "optimum 47.333" in md
    assert "Wilcoxon p vs ncp @8" in md and "**Verdict** (best@8" in md
    doc = json.loads((out / "results.json").read_text())
    assert doc["benchmark"]["optimum"] == pytest.approx(47.3333333, abs=1e-6)
    assert {r["sampler"] for r in doc["runs"]} == {"ncp", "random"}
    assert all(r["n_complete"] == 8 for r in doc["runs"])
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + 2 samplers x budgets (4, 8)
    dbs = sorted(p.name for p in (out / "studies").glob("*.db"))
    assert dbs == [f"{study_name(NB201, s, k)}.db" for s in ("ncp", "random") for k in (0, 1)]


def _complete(path: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_sqlite_storage(path))
    return study.get_trials(deepcopy=False)


def test_resume_runs_only_missing_trials_and_fails_stale_running(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    cfg: dict[str, Any] = {
        "samplers": ("random",),
        "seeds": 1,
        "out": out,
        "data_dir": shared_data_dir,
        "progress": False,
    }
    first = run_comparison(CompareConfig(NB201, trials=6, **cfg))
    assert first.studies == {"skipped": 0, "resumed": 0, "new": 1, "stale": 0}
    name = study_name(NB201, "random", 0)
    path = out / "studies" / f"{name}.db"
    before = _complete(path, name)
    # a killed run leaves a RUNNING trial behind
    study = optuna.load_study(study_name=name, storage=open_sqlite_storage(path))
    study.ask()
    second = run_comparison(CompareConfig(NB201, trials=10, **cfg))
    assert second.studies == {"skipped": 0, "resumed": 1, "new": 0, "stale": 1}
    after = _complete(path, name)
    states = [t.state for t in after]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 10
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # the stale one, never counted
    assert [(t.params, t.datetime_start) for t in after[:6]] == [
        (t.params, t.datetime_start) for t in before
    ]  # the first 6 trials untouched: only the missing 4 ran
    assert second.runs[0].n == 10 and second.runs[0].n_failed == 1
    third = run_comparison(CompareConfig(NB201, trials=10, **cfg))
    assert third.studies["skipped"] == 1 and len(_complete(path, name)) == 11
    with pytest.raises(CompareError, match="other settings"):
        run_comparison(CompareConfig(NB201, trials=10, objective="metric+flops", **cfg))
    # a study written before 0.2.0 records the FLOPs weight as "lam": still the same settings
    study = optuna.load_study(study_name=name, storage=open_sqlite_storage(path))
    old = dict(study.user_attrs[SETTINGS_ATTR])
    old["lam"] = old.pop("flops_weight")
    study.set_user_attr(SETTINGS_ATTR, old)
    assert run_comparison(CompareConfig(NB201, trials=10, **cfg)).studies["skipped"] == 1


def test_resumed_compare_matches_an_uninterrupted_one(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    """Issue 26 (5): a 12-then-14-trial resume gives the trials of a 14-trial run (the
    samplers' random streams and NCP's fitted predictor go on, not restart at the seed)."""
    cfg: dict[str, Any] = {
        "samplers": ("ncp", "tpe", "random"),
        "seeds": 1,
        "data_dir": shared_data_dir,
        "progress": False,
    }
    run_comparison(CompareConfig(NB201, trials=12, out=tmp_path / "resumed", **cfg))
    resumed = run_comparison(CompareConfig(NB201, trials=14, out=tmp_path / "resumed", **cfg))
    straight = run_comparison(CompareConfig(NB201, trials=14, out=tmp_path / "straight", **cfg))
    assert resumed.studies["resumed"] == 3
    dirs = ("resumed", "straight")
    for s in cfg["samplers"]:
        name = study_name(NB201, s, 0)
        a, b = (_complete(tmp_path / d / "studies" / f"{name}.db", name) for d in dirs)
        assert [(t.params, t.values) for t in a] == [(t.params, t.values) for t in b], s
        assert len(a) == 14
    for r, u in zip(resumed.runs, straight.runs, strict=True):
        np.testing.assert_array_equal(r.values, u.values)
        assert r.codes == u.codes


def _all_trials(studies: Path) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for db in sorted(studies.glob("*.db")):
        with contextlib.suppress(Exception):  # a study being created
            trials += _complete(db, db.stem)
    return trials


@pytest.mark.parametrize("jobs", [2, 1])
def test_ctrl_c_stops_every_job_at_once_without_a_traceback(
    jobs: int, shared_data_dir: Path, tmp_path: Path
) -> None:
    """Issue 26 (6): Ctrl-C (SIGINT to the process group, as a terminal sends it) starts no
    further trial or study, lets the running trials end, says how to resume, exits 130."""
    out = tmp_path / "cmp"
    argv = [sys.executable, "-m", "ncp_hpo.cli", "compare", "--benchmark", NB201,
            "--samplers", "random,tpe", "--trials", "5000", "--seeds", "2", "--jobs", str(jobs),
            "--out", str(out), "--data-dir", str(shared_data_dir), "--no-mlflow",
            "--quiet"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_all_trials(out / "studies")) < 10 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.3)
        signalled = datetime.now()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("ncp-hpo: interrupted: ") and "same command again" in err
    trials = _all_trials(out / "studies")
    assert 10 <= len(trials) < 2000
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # ran to the end
    # none started after the signal (a grace for its delivery: a trial the process was
    # creating at that instant)
    late = [t.number for t in trials if t.datetime_start > signalled + timedelta(seconds=0.25)]
    assert not late
    assert not (out / "compare.lock").exists() and not (out / "summary.csv").exists()


def test_ax_loop_records_trials_in_a_study_and_resumes(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    cfg: dict[str, Any] = {
        "samplers": ("ax",),
        "seeds": 1,
        "out": tmp_path,
        "data_dir": shared_data_dir,
        "progress": False,
    }
    run_comparison(CompareConfig(NB201, trials=3, **cfg))
    res = run_comparison(CompareConfig(NB201, trials=12, **cfg))
    assert res.studies["resumed"] == 1 and not res.errors
    name = study_name(NB201, "ax", 0)
    trials = _complete(tmp_path / "studies" / f"{name}.db", name)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert all(t.user_attrs["compare:gen_s"] >= 0 for t in trials)  # Ax's generation time
    assert len({t.user_attrs["code"] for t in trials}) == 12  # the replayed trials were kept


def test_ax_default_is_axs_own_strategy(shared_data_dir: Path, tmp_path: Path) -> None:
    """``ax-default`` runs the strategy Ax picks itself (Sobol, then BoTorch), not ``ax``'s
    Sobol + NCP node, in studies of its own name; it is refused where ``ax`` is."""
    cfg: dict[str, Any] = {"seeds": 1, "data_dir": shared_data_dir, "progress": False}
    res = run_comparison(
        CompareConfig(NB201, samplers=("ax", "ax-default"), trials=7, out=tmp_path, **cfg)
    )
    assert not res.errors
    codes = {r.sampler: [tuple(c) for c in r.codes] for r in res.runs}
    assert len(codes["ax-default"]) == 7 and len(set(codes["ax-default"])) >= 6
    assert codes["ax-default"] != codes["ax"]
    assert (tmp_path / "studies" / f"{study_name(NB201, 'ax-default', 0)}.db").exists()
    with pytest.raises(CompareError, match="ax-default\\+zc: Ax's strategy takes no enqueued"):
        CompareConfig(NB201, samplers=("ax-default+zc",), out=tmp_path / "b", **cfg)
    with pytest.raises(CompareError, match="the ax-default strategy is not budgeted yet"):
        CompareConfig(NB201, samplers=("ax-default",), max_flops="p50", out=tmp_path / "c", **cfg)


def test_two_objectives_hypervolume_and_pareto_plot(
    shared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.tracking import log_comparison

    res = run_comparison(
        CompareConfig(NB201, samplers=("random",), trials=5, seeds=2, objective="metric+flops",
                      out=tmp_path, data_dir=shared_data_dir, progress=False)
    )  # fmt: skip
    assert res.info.optimum is not None and 0 < res.info.optimum < 1
    assert (tmp_path / "pareto.png").stat().st_size > 0
    for r in res.runs:  # exact mode: the table front bounds every study's hypervolume
        assert np.all(np.diff(r.scores) >= 0) and r.scores[-1] <= res.info.optimum + 1e-12
    # MLflow: the hypervolume is the score the verdict, `best` and the summary run show
    monkeypatch.chdir(tmp_path)  # a SQLite tracking store puts artifacts in ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = log_comparison(res, uri=uri, experiment="hv")
    assert parent_id is not None
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(parent_id)
    assert parent.data.tags["winner"] == "random"
    assert parent.data.tags["verdict"].startswith("Verdict (HV@5, median over seeds): best random")
    assert "| sampler | HV@5 |" in parent.data.tags["mlflow.note.content"]
    median = res.summaries["random"].budgets[5].median
    assert parent.data.metrics["random.median_best"] == pytest.approx(median)
    runs = client.search_runs([parent.info.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.data.metrics["best"] for r in children) == sorted(
        r.scores[-1] for r in res.runs
    )
    (summary,) = [r for r in runs if r.data.tags.get("ncp_hpo.kind") == "sampler-summary"]
    assert summary.info.run_name == "random (median of 2 seeds)"
    assert summary.data.metrics["median_best"] == pytest.approx(median)
    curve = client.get_metric_history(summary.info.run_id, "hypervolume")
    assert len(curve) == 5 and max(m.value for m in curve) == pytest.approx(median)


def test_metric_and_parameters_hypervolume_uses_the_parameter_range(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    res = run_comparison(
        CompareConfig(NB201, samplers=("random", "ncp"), trials=12, seeds=1,
                      objective="metric+params", out=tmp_path, data_dir=shared_data_dir,
                      progress=False)
    )  # fmt: skip
    table = load_benchmark(NB201, shared_data_dir)
    p = np.asarray(table.metrics["params"])
    assert res.info.cost == "params" and res.info.objective_names == ["Acc", "params"]
    assert res.info.cost_range == (float(p.min()), float(p.max()))
    for r in res.runs:  # each trial's second value is its cell's parameter count
        assert len(r.values) == 12
        assert set(np.round(r.values[:, 1], 6)) <= set(np.round(p, 6))
        assert 0 < r.scores[-1] <= res.info.optimum + 1e-12
    summary = (tmp_path / "summary.md").read_text()
    hv = f"`v = (params - {p.min():.4g}) / {p.max() - p.min():.4g}` "
    hv += f"(params in {table.units['params']};"
    assert hv in summary
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_mlflow_round_trip_and_unreachable_server(
    shared_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a SQLite tracking store puts artifacts in ./mlruns

    from ncp_hpo.tracking import CompareTrackingWarning, log_comparison

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = run_comparison(
        CompareConfig(NB201, samplers=("ncp", "random"), trials=4, seeds=2, out=tmp_path / "o",
                      data_dir=shared_data_dir, progress=False, mlflow=True, mlflow_uri=uri,
                      mlflow_experiment="t")
    )  # fmt: skip
    assert res.mlflow_run_id is not None
    assert res.mlflow_hint == (
        f"mlflow ui --backend-store-uri {uri}, then open {res.mlflow_url}"
    )  # a local store: the same hint `study` prints
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("t")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if r.info.run_id == res.mlflow_run_id]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == res.mlflow_run_id]
    assert len(parent) == 1 and len(runs) == 7 and len(children) == 4  # + 2 sampler summaries
    _assert_who_won_is_readable(client, exp.experiment_id, res, res.mlflow_run_id)
    child = children[0]
    assert child.data.params["benchmark"] == NB201 and child.data.params["budget"] == "4"
    assert {"sampler", "seed", "flops_weight", "objective", "mode"} <= set(child.data.params)
    hist = client.get_metric_history(child.info.run_id, "best_so_far")
    assert sorted(m.step for m in hist) == [0, 1, 2, 3]
    values = [m.value for m in sorted(hist, key=lambda m: m.step)]
    assert values == sorted(values)  # best so far never decreases
    arts = {a.path for a in client.list_artifacts(res.mlflow_run_id)}
    assert {"summary.md", "summary.csv", "results.json", "anytime.png"} <= arts
    # a rerun (from the command line) reuses the parent and the finished children
    capsys.readouterr()
    argv = ["compare", "--benchmark", NB201, "--samplers", "ncp,random", "--trials", "4",
            "--seeds", "2", "--out", str(tmp_path / "o"), "--data-dir", str(shared_data_dir),
            "--mlflow-uri", uri, "--mlflow-experiment", "t"]  # fmt: skip
    assert main(argv) == 0
    assert (
        f"MLflow: comparison run {res.mlflow_run_id} (experiment 't'); see it with: "
        f"{res.mlflow_hint}\n"
    ) in capsys.readouterr().out  # the same hint as `study`'s: the actual store, then the link
    assert len(client.search_runs([exp.experiment_id])) == 7  # summaries replaced, not added
    # children logged after the studies (not live) look the same
    other = f"sqlite:///{tmp_path / 'other.db'}"
    other_parent = log_comparison(res, uri=other, experiment="t")
    assert other_parent is not None
    other_client = MlflowClient(tracking_uri=other)
    other_exp = other_client.get_experiment_by_name("t")
    assert other_exp is not None
    _assert_who_won_is_readable(other_client, other_exp.experiment_id, res, other_parent)
    # unreachable server: one warning, no exception, files stay
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert log_comparison(res, uri="http://127.0.0.1:9") is None
    hits = [w for w in caught if issubclass(w.category, CompareTrackingWarning)]
    assert len(hits) == 1 and "unavailable" in str(hits[0].message)
    assert (tmp_path / "o" / "summary.md").is_file()


def _assert_who_won_is_readable(client: Any, exp_id: str, res: Any, parent_id: str) -> None:
    """The parent's verdict tags, description and medians; named, tagged children with a
    ``best`` metric; one top-level summary run per sampler (issue 25)."""
    final = res.config.trials
    medians = {s: summ.budgets[final].median for s, summ in res.summaries.items()}
    top = max(medians.values())  # NAS-Bench-201 accuracy: higher is better
    runs = client.search_runs([exp_id])
    parent = client.get_run(parent_id)
    tags, metrics = parent.data.tags, parent.data.metrics
    assert tags["winner"].split(" = ") == [s for s, v in medians.items() if v == top]
    assert tags["verdict"].startswith(f"Verdict (best@{final}, median over seeds): best ")
    note = tags["mlflow.note.content"]
    assert note.startswith("**Verdict**") and f"| sampler | best@{final} |" in note
    assert "| `ncp` |" in note and "| `random` |" in note
    for s, v in medians.items():
        assert metrics[f"{s}.median_best"] == pytest.approx(v)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.info.run_name for r in children) == [
        "ncp seed 0", "ncp seed 1", "random seed 0", "random seed 1"
    ]  # fmt: skip
    for r in children:
        s, seed = r.data.tags["sampler"], int(r.data.tags["seed"])
        assert r.info.run_name == f"{s} seed {seed}"
        hist = client.get_metric_history(r.info.run_id, "best_so_far")
        record = next(x for x in res.runs if x.sampler == s and x.seed == seed)
        assert r.data.metrics["best"] == max(m.value for m in hist) == record.scores[-1]
    summaries = [r for r in runs if r.data.tags.get("ncp_hpo.kind") == "sampler-summary"]
    assert sorted(r.info.run_name for r in summaries) == [
        "ncp (median of 2 seeds)", "random (median of 2 seeds)"
    ]  # fmt: skip
    for r in summaries:
        s = r.data.tags["sampler"]
        assert "mlflow.parentRunId" not in r.data.tags  # a row of the default runs view
        assert r.data.tags["ncp_hpo.compare_parent"] == parent_id
        assert r.data.tags["winner"] == tags["winner"]  # one column, one meaning
        assert r.data.metrics["median_best"] == pytest.approx(medians[s])
        curve = client.get_metric_history(r.info.run_id, "best_so_far")
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(final))
        assert max(m.value for m in curve) == pytest.approx(medians[s])
    # a saved runs-table view shows each sampler's best as a column (MLflow's default shows
    # no metric column), best first
    view = json.loads(client.get_experiment(exp_id).tags["mlflow.sharedViewState.ncp-hpo-best"])
    state = json.loads(view["state"])
    assert "metrics.`median_best`" in state["selectedColumns"]
    assert state["orderByKey"] == "metrics.`median_best`" and state["orderByAsc"] is False


# -- paper protocol pieces ------------------------------------------------------------------
class _LinearPredictor:
    """Duck-typed predictor: the metric is the sum of the code."""

    def __init__(self) -> None:
        self.metric_names_ = ["m"]
        self.main_metric_ = "m"

    def predict(self, codes: np.ndarray) -> np.ndarray:
        return np.atleast_2d(codes).sum(1, keepdims=True).astype(float)


def test_netadapt_greedy_climbs_until_no_move_improves() -> None:
    from ncp_hpo.experiments.paper._methods import netadapt_greedy
    from ncp_hpo.propagation import paper_start
    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    start = paper_start(space)
    code, steps = netadapt_greedy(
        _LinearPredictor(), space, start, lam=0.0, metric_std=1.0, flops_std=1.0, max_steps=5
    )
    assert steps == 5 and code.sum() > start.sum()
    # with a huge FLOPs weight no move that adds FLOPs is taken, shrinking moves are
    small, _ = netadapt_greedy(
        _LinearPredictor(), space, start, lam=1e6, metric_std=1.0, flops_std=1.0, max_steps=3
    )
    from ncp_hpo.spaces.cost import flops

    assert flops(small[None], convention="thop")[0] < flops(start[None], convention="thop")[0]


# -- the one Markdown table helper -----------------------------------------------------------
def test_paper_tradeoff_is_scored_as_compare_scores_a_two_objective_study(
    shared_data_dir: Path,
) -> None:
    """Table 2's trade-off view and ``compare --objective metric+flops`` share one score."""
    from types import SimpleNamespace

    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.experiments.compare._records import benchmark_info, tradeoff_hypervolume
    from ncp_hpo.experiments.paper._report import tradeoff_rows

    # metric 0..10 (higher is better), FLOPs 1..5: the front (10, 5), (0, 1) spans nothing
    metrics = {"acc": [0.0, 10.0, 5.0], "flops": [1.0, 5.0, 5.0]}
    table = SimpleNamespace(name="t", main_metric="acc", units={}, metrics=metrics)
    assert tradeoff_hypervolume(np.array([[10.0, 1.0]]), table) == 1.0  # (0, 0): all of it
    assert tradeoff_hypervolume(np.array([[5.0, 3.0]]), table) == 0.25
    assert tradeoff_hypervolume(np.array([[10.0, 5.0], [0.0, 1.0]]), table) == 0.0
    # (0.25, 0.25) and (0.5, 0): 0.75 x 0.75 plus 0.5 x 0.25
    assert tradeoff_hypervolume(np.array([[7.5, 2.0], [5.0, 1.0]]), table) == 0.6875
    points = [{"method": "a", "seed": 0, "metric": 5.0, "flops_g": 3.0},
              {"method": "a", "seed": 0, "metric": 10.0, "flops_g": 5.0},
              {"method": "a", "seed": 1, "metric": 7.5, "flops_g": 2.0},
              {"method": "b", "seed": 0, "metric": 0.0, "flops_g": 1.0}]  # fmt: skip
    table.metrics["acc"].append(7.5)  # the table front now has (7.5, 2.0) too
    table.metrics["flops"].append(2.0)
    rows = {(r["method"], r["seed"]): r for r in tradeoff_rows(points, table)}
    assert [(k, r["evaluations"]) for k, r in rows.items()] == [
        (("a", 0), 2), (("a", 1), 1), (("b", 0), 1)]  # fmt: skip
    assert rows["a", 0]["hypervolume"] == 0.25 and rows["b", 0]["hypervolume"] == 0.0
    assert rows["a", 1]["share_of_table_front"] == 1.0  # the table's front is that one point
    # on a real table: the score of a set of codes equals compare's hypervolume of a study
    obj = BenchmarkObjective("nas-bench-201", objective="metric+flops", data_dir=shared_data_dir)
    info, nb = benchmark_info(obj), obj.table
    pick = np.random.default_rng(0).choice(len(nb.codes), 30, replace=False)
    values = np.stack([np.asarray(nb.metrics[nb.main_metric])[pick],
                       np.asarray(nb.metrics["flops"])[pick]], 1)  # fmt: skip
    assert tradeoff_hypervolume(values, nb) == hypervolume_history(info.normalise(values))[-1]
    front = np.asarray(info.table_front)
    assert tradeoff_hypervolume(front, nb) == info.optimum


def test_markdown_table_alignment_cells_and_errors() -> None:
    from ncp_hpo.experiments._markdown import markdown_table

    lines = markdown_table(["a", "b", "c"], [[1, 2.5, None], ["x", "y", "z"]], align="lr")
    assert lines == ["| a | b | c |", "|---|---:|---|", "| 1 | 2.5 | None |", "| x | y | z |"]
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a"], [], align="c")
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        markdown_table(["a", "b"], [["only"]])


def test_zero_cost_rows_start_from_ncps_warm_start_codes(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    """``tpe+zc`` and ``random+zc`` enqueue the codes NCP's warm start proposes first; a
    space without a score table makes ``+zc`` one clear error before any study runs."""
    cfg: dict[str, Any] = dict(trials=11, seeds=1, data_dir=shared_data_dir, progress=False)
    with pytest.raises(CompareError, match=r"\+zc needs a zero-cost score table"):
        run_comparison(
            CompareConfig("seg", mode="table", samplers=("tpe+zc",), out=tmp_path / "a", **cfg)
        )
    # two objectives on the multi-resolution space: NCP's start spreads along the exact
    # FLOPs, and the +zc rows enqueue those codes
    mo = run_comparison(
        CompareConfig(
            "seg",
            mode="table",
            objective="metric+flops",
            samplers=("ncp", "tpe+zc"),
            out=tmp_path / "mo",
            **cfg,
        )
    )
    firsts = {r.sampler: [list(c) for c in r.codes[:10]] for r in mo.runs}
    assert firsts["ncp"] == firsts["tpe+zc"]
    assert mo.warm_start is not None and "spread along their exact FLOPs" in mo.warm_start
    with pytest.raises(CompareError, match="ax\\+zc: Ax's strategy takes no enqueued codes"):
        CompareConfig(NB201, samplers=("ax+zc",), out=tmp_path / "b", **cfg)
    res = run_comparison(
        CompareConfig(NB201, samplers=("ncp", "tpe+zc", "random+zc"), out=tmp_path / "c", **cfg)
    )
    first = {r.sampler: [list(c) for c in r.codes[:10]] for r in res.runs}
    assert first["ncp"] == first["tpe+zc"] == first["random+zc"]
    assert res.warm_start == "ZeroCostWarmStart(synflow (nas-bench-201), pool_size=1000)"
    text = (tmp_path / "c" / "summary.md").read_text()
    assert "Zero-cost warm start of `ncp`" in text and "`+zc` rows enqueue the same codes" in text


def test_compare_studies_name_their_objectives(shared_data_dir: Path, tmp_path: Path) -> None:
    """optuna-dashboard labels a comparison study's Pareto-front axes with these names."""
    cfg = CompareConfig(
        NB201,
        samplers=("random",),
        trials=4,
        seeds=1,
        objective="metric+flops",
        out=tmp_path / "out",
        data_dir=shared_data_dir,
        progress=False,
    )
    run_comparison(cfg)
    name = study_name(NB201, "random", 0)
    study = optuna.load_study(
        study_name=name, storage=open_sqlite_storage(tmp_path / "out" / "studies" / f"{name}.db")
    )
    assert study.metric_names == ["Acc", "flops"]
    assert len(study.best_trials) >= 1  # the front optuna-dashboard draws
