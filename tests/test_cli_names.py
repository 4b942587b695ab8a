"""One name per concept across commands (issue 25), and ``worker`` agreeing with ``study``.

* ``--study-name`` (as ``study`` and Optuna's CLI) and ``--data-dir`` (as every other
  command) are the documented names; ``worker --study`` and ``data fetch --from`` still
  work, hidden, with one warning line each.
* ``search --strategy`` documents ``winner_takes_all`` (the sampler's name) and reads the
  older ``wta`` silently; so does ``--sampler-param strategy=``.
* ``worker`` logs to MLflow like ``study``: ``--mlflow-uri``, else ``$MLFLOW_TRACKING_URI``,
  else ``./mlflow.db``; ``--no-mlflow`` writes no store.
* ``worker --trials`` counts COMPLETE + PRUNED trials, as ``study --trials`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from _cli import run_cli as _run
from optuna.trial import TrialState

from ncp_hpo.cli import build_parser, main

pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)


def _worker(tmp_path: Path, data: Path, *extra: str, name: str = "s") -> list[str]:
    return [
        "worker", "--study-name", name, "--storage", f"sqlite:///{tmp_path / 's.db'}",
        "--benchmark", "nas-bench-201", "--data-dir", str(data), "--sampler", "random",
        "--seed", "0", "--quiet", *extra,
    ]  # fmt: skip


def _stores(folder: Path) -> list[str]:
    """MLflow stores a command may leave in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name in ("mlflow.db", "mlruns"))


# -- aliases -----------------------------------------------------------------------------------
def test_worker_study_alias_works_and_warns_once(
    tmp_path: Path,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _worker(tmp_path, shared_data_dir, "--trials", "1", "--no-mlflow", name="old")
    argv[1] = "--study"
    code, out, err = _run([*argv, "--study=old"], capsys)  # both forms, given twice
    assert code == 0, err
    assert err == "ncp-hpo: warning: --study is deprecated; use --study-name\n"
    assert "study 'old': 1/1 complete" in out
    study = optuna.load_study(study_name="old", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_data_fetch_from_alias_reads_as_data_dir_and_warns_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["data", "fetch", "--from", "/x", "--from=/y", "seg"])
    assert args.source == "/y" and args.settings == ["seg"]
    assert capsys.readouterr().err == "ncp-hpo: warning: --from is deprecated; use --data-dir\n"
    args = build_parser().parse_args(["data", "fetch", "--data-dir", "/x"])
    assert args.source == "/x" and capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--benchmark", "seg"],
        ["worker", "--study-name", "s", "--storage", "sqlite:///x.db", "--benchmark", "seg"],
    ],
)
def test_lam_of_compare_and_worker_reads_as_flops_weight_and_warns_once(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--lam`` weighted FLOPs inside the objective on these two commands until 0.2.0; it
    is now ``--flops-weight`` (``lam`` is the samplers' own FLOPs penalty everywhere)."""
    args = build_parser().parse_args([*argv, "--lam", "0.3", "--lam=0.5"])
    assert args.flops_weight == 0.5 and not hasattr(args, "lam")
    assert capsys.readouterr().err == "ncp-hpo: warning: --lam is deprecated; use --flops-weight\n"
    args = build_parser().parse_args([*argv, "--flops-weight", "0.5"])
    assert args.flops_weight == 0.5 and capsys.readouterr().err == ""


def test_compare_lam_alias_is_checked_as_flops_weight(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["compare", "--benchmark", "nas-bench-201", "--lam", "0.5"], capsys)
    assert code == 2
    assert err.splitlines() == [
        "ncp-hpo: warning: --lam is deprecated; use --flops-weight",
        *[line for line in err.splitlines()[1:] if "--flops-weight scalarises" in line],
    ]
    assert len(err.splitlines()) == 2


def test_new_names_are_documented_and_old_ones_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, new, old in (
        (["worker", "--help"], "--study-name NAME", "--study "),
        (["data", "fetch", "--help"], "--data-dir DIR", "--from"),
        (["search", "--help"], "winner_takes_all", "wta"),
        (["compare", "--help"], "--flops-weight W", "--lam"),
        (["worker", "--help"], "--flops-weight W", "--lam"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert new in out and old not in out, argv
    # a typo is pointed at the documented name, never at the alias
    code, _, err = _run(["worker", "--studyname", "s", "--benchmark", "seg"], capsys)
    assert code == 2 and "did you mean --study-name?" in err


def test_an_alias_after_double_dash_is_left_alone() -> None:
    args = build_parser().parse_args(["data", "fetch", "--", "--from"])
    assert args.settings == ["--from"] and args.source is None


@pytest.mark.parametrize("spelling", ["winner_takes_all", "wta", "winner-takes-all"])
def test_search_strategy_reads_both_spellings_silently(
    spelling: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["search", "--setting", "seg", "--strategy", spelling])
    assert args.strategy == "winner_takes_all" and capsys.readouterr().err == ""
    for argv in (
        ["study", "--task", "cls", "--trials", "3"],
        ["worker", "--study-name", "s", "--task", "cls"],
    ):
        args = build_parser().parse_args([*argv, "--sampler-param", "strategy=wta"])
        assert args.sampler_param == [("strategy", "winner_takes_all")]


def test_search_strategy_refuses_other_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["search", "--setting", "seg", "--strategy", "greedy"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "expected continuous or winner_takes_all, got 'greedy'" in err


# -- worker and MLflow -------------------------------------------------------------------------
def test_worker_no_mlflow_writes_no_store(
    tmp_path: Path,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    code, out, err = _run(
        _worker(tmp_path, shared_data_dir, "--trials", "2", "--no-mlflow"), capsys
    )
    assert code == 0 and "2/2 complete" in out, err
    assert _stores(tmp_path) == [] and not (tmp_path / "env.db").exists()


def test_worker_honours_mlflow_tracking_uri(
    tmp_path: Path,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.chdir(tmp_path)  # a SQLite store writes ./mlruns (artifacts)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code, out, err = _run(_worker(tmp_path, shared_data_dir, "--trials", "2"), capsys)
    assert code == 0 and "2/2 complete" in out, err
    assert (tmp_path / "env.db").exists() and not (tmp_path / "mlflow.db").exists()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("s")  # the study name, as in `study`
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`ncp_hpo.role` = 'trial'")
    assert len(runs) == 2


# -- worker counts like study ------------------------------------------------------------------
def test_pruned_trials_count_toward_the_worker_budget(
    tmp_path: Path,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Budget 3: trial 0 is pruned (counts), trial 1 is refused for the compute budget (does
    not count, as in ``study``), trials 2 and 3 complete; nothing more runs."""
    import ncp_hpo.runtime
    from ncp_hpo.spaces.budget import OVER_BUDGET

    real = ncp_hpo.runtime.benchmark_objective

    def pruning(*args: Any, **kwargs: Any) -> Any:
        spec = real(*args, **kwargs)
        inner = spec.objective

        def objective(trial: optuna.trial.Trial) -> Any:
            value = inner(trial)
            if trial.number == 1:
                trial.set_user_attr("fail_reason", OVER_BUDGET)
            if trial.number in (0, 1):
                raise optuna.TrialPruned("pruned by the test")
            return value

        spec.objective = objective
        return spec

    monkeypatch.setattr(ncp_hpo.runtime, "benchmark_objective", pruning)
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(
        _worker(tmp_path, shared_data_dir, "--trials", "3", "--no-mlflow"), capsys
    )
    assert code == 0, err
    assert "study 's': 3/3 counted (2 complete, 1 pruned)" in out, out
    # the refused trial is named apart (before, "4 trials here" listed only 3 of them)
    assert (
        "4 trials here (2 complete, 1 pruned, 0 failed, 1 refused over the compute budget, "
        "0 past the trial budget)" in out
    ), out
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    states = [t.state for t in study.trials]
    assert states == [
        TrialState.PRUNED,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    # a second worker with the same budget finds it met and runs nothing
    code, out, err = _run(
        _worker(tmp_path, shared_data_dir, "--trials", "3", "--no-mlflow"), capsys
    )
    assert code == 0 and "0 trials here" in out, (out, err)
    assert (
        len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}").trials) == 4
    )
