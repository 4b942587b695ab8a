"""``ncp-hpo train`` and ``ncp-hpo study``: real (tiny) training from the command line."""

from __future__ import annotations

import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ncp_hpo.cli import main
from ncp_hpo.exceptions import TrackingWarning
from ncp_hpo.runtime._pruning import make_pruner
from ncp_hpo.spaces import MultiResolutionSpace
from ncp_hpo.tracking import PARENT_RUN_ATTR

# The conftest's tiny code (every b, n = 1, every channel count = 8), with head widths varied.
TINY = [f"8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-{o}" for o in (8, 16, 24, 32)]
SMALL = [
    "--epochs", "1", "--train-size", "32", "--val-size", "16", "--image-size", "16",
    "--batch-size", "16", "--seed", "0", "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One local SQLite tracking store for the module (created once: its schema is slow)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in ``tmp_path``: a SQLite tracking store puts artifacts in ``./mlruns``."""
    monkeypatch.chdir(tmp_path)


def _experiment() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def _runs(uri: str, experiment: str) -> list[Run]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id]))


def _study_args(storage: str, name: str, trials: int, *extra: str) -> list[str]:
    enqueue = [a for c in TINY for a in ("--enqueue", c)]
    return [
        "study", "--task", "cls", "--sampler", "random", "--trials", str(trials),
        "--storage", storage, "--study-name", name, *SMALL, *enqueue, *extra,
    ]  # fmt: skip


# -- ncp-hpo train -----------------------------------------------------------------------
def test_train_prints_metrics_logs_one_run_and_saves_weights(
    mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = _experiment()
    weights = tmp_path / "w.pt"
    argv = ["train", "--task", "cls", "--code", TINY[0], *SMALL, "--quiet"]
    argv += ["--mlflow-uri", mlflow_uri, "--mlflow-experiment", exp]
    assert main([*argv, "--save-weights", str(weights)]) == 0
    out = capsys.readouterr().out
    for needle in ("top1", "<- main metric", "MACs", "FLOPs", "params", "samples/s", "wall"):
        assert needle in out, needle

    (run,) = _runs(mlflow_uri, exp)
    assert run.info.run_id in out
    data = run.data
    assert data.params["code"] == TINY[0] and data.params["task"] == "cls"
    top1 = next(line for line in out.splitlines() if line.strip().startswith("top1"))
    assert float(top1.split()[1]) == pytest.approx(data.metrics["final.top1"], abs=1e-3)

    state = torch.load(weights, weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())


def test_train_without_mlflow_writes_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["train", "--task", "cls", "--code", TINY[1], *SMALL, "--no-mlflow"]) == 0
    assert "top1" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns


def test_bad_code_is_one_line_exit_2() -> None:
    bad = TINY[0][:-1] + "9"  # o1 = 9: not a multiple of 8
    root = Path(__file__).resolve().parents[2]  # this checkout, whatever is installed
    proc = subprocess.run(
        [sys.executable, "-m", "ncp_hpo.cli", "train", "--task", "cls", "--code", bad],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ncp-hpo: error: --code:") and "o1" in lines[0]
    assert "Traceback" not in proc.stderr


# -- ncp-hpo study -----------------------------------------------------------------------
def test_study_resumes_to_the_budget_under_one_mlflow_parent(
    mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, exp = f"sqlite:///{tmp_path / 'study.db'}", _experiment()
    tracking = ["--mlflow-uri", mlflow_uri, "--mlflow-experiment", exp]
    assert main(_study_args(storage, "s", 3, *tracking)) == 0
    first = capsys.readouterr().out
    assert "best trials:" in first and "trial   2 COMPLETE" in first

    assert main(_study_args(storage, "s", 4, *tracking)) == 0  # resume: exactly one more
    second = capsys.readouterr().out
    assert "resuming with 3 of 4" in second
    assert "trial   3 COMPLETE" in second and "trial   0 COMPLETE" not in second

    assert main(_study_args(storage, "s", 4, *tracking)) == 0  # nothing left to run
    assert "nothing to run" in capsys.readouterr().out

    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # the enqueued tiny codes ran, once each, and the results live in Optuna too
    assert sorted(t.user_attrs["code"] for t in study.trials) == sorted(TINY)
    assert all("top1" in t.user_attrs["metrics"] for t in study.trials)

    runs = _runs(mlflow_uri, exp)
    parents = [r for r in runs if r.data.tags.get("ncp_hpo.role") == "study"]
    children = [r for r in runs if r.data.tags.get("ncp_hpo.role") == "trial"]
    (parent,) = parents
    parent_id = parent.info.run_id
    assert study.user_attrs[PARENT_RUN_ATTR] == parent_id
    assert f"MLflow: resumed run {parent_id}" in second  # found through the study attribute
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sampler"] == "random"
    assert parent.data.metrics["n_complete"] == 4
    best = max(study.trials, key=lambda t: t.value if t.value is not None else -1.0)
    assert parent.data.tags["best_trial"] == str(best.number)
    assert parent.data.tags["best_code"] == best.user_attrs["code"]
    assert f"trial {best.number}, top1 " in parent.data.tags["mlflow.note.content"]
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent_id}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {
        c.info.run_id for c in children
    }


def test_a_new_study_with_an_old_name_gets_its_own_mlflow_parent(
    mlflow_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = _experiment()
    tracking = ["--mlflow-uri", mlflow_uri, "--mlflow-experiment", exp]
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    assert main(_study_args(first, "same", 1, *tracking)) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)  # no "MLflow unavailable" on the way
        assert main(_study_args(second, "same", 1, *tracking, "--epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "MLflow: parent run" in out and "resumed" not in out

    studies = [optuna.load_study(study_name="same", storage=s) for s in (first, second)]
    ids = [s.user_attrs[PARENT_RUN_ATTR] for s in studies]
    assert ids[0] != ids[1]
    runs = _runs(mlflow_uri, exp)
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("ncp_hpo.role") == "study"}
    assert set(parents) == set(ids)
    # each parent holds its own study's settings and trials
    assert [parents[i].data.params["epochs"] for i in ids] == ["1", "2"]
    for study, parent_id in zip(studies, ids, strict=True):
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
        assert {c.info.run_id for c in children} == {
            t.user_attrs["mlflow_run_id"] for t in study.trials
        }


def test_study_with_unreachable_mlflow_warns_once_and_completes(
    closed_port_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.warns(TrackingWarning) as record:
        rc = main(_study_args(storage, "offline", 2, "--mlflow-uri", closed_port_url))
    assert rc == 0
    assert sum(issubclass(w.category, TrackingWarning) for w in record) == 1
    study = optuna.load_study(study_name="offline", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert PARENT_RUN_ATTR not in study.user_attrs
    assert "MLflow: parent run" not in capsys.readouterr().out


def test_study_resumed_matches_an_uninterrupted_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26 (5): the same seed gives the same trials whether the study stopped or not."""

    def trials(db: str, *budgets: int) -> list[tuple[dict, list[float] | None]]:
        storage = f"sqlite:///{tmp_path / db}"
        for n in budgets:
            argv = ["study", "--task", "cls", "--sampler", "random", "--trials", str(n), *SMALL]
            assert main([*argv, "--storage", storage, "--study-name", "s", "--no-mlflow"]) == 0
        study = optuna.load_study(study_name="s", storage=storage)
        return [(t.params, t.values) for t in study.trials]

    resumed = trials("resumed.db", 2, 4)
    assert "resuming with 2 of 4" in capsys.readouterr().out
    assert resumed == trials("straight.db", 4)  # params and values, trial by trial
    assert len(resumed) == 4


def test_study_ncp_with_a_saved_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A saved predictor as prior: NCP proposes from trial 0 (no random startup)."""
    from ncp_hpo.predictor import NeuralPredictor

    space = MultiResolutionSpace()
    codes = space.sample(64, seed=0)
    # a prior that prefers narrow networks, so the proposed trials stay cheap
    width = np.asarray(codes[:, np.asarray(space.is_width)], dtype=np.float64).sum(axis=1)
    prior = NeuralPredictor(epochs=30, seed=0).fit(codes, {"top1": -width / 100.0})
    path = prior.save(tmp_path / "prior.safetensors")

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["study", "--task", "cls", "--sampler", "ncp", "--prior", str(path), "--lam", "0.5"]
    argv += ["--trials", "2", "--storage", storage, "--study-name", "ncp", *SMALL, "--no-mlflow"]
    argv += ["--sampler-param", "iterations=10", "--sampler-param", "n_starts=4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prior: predictor loaded" in out and "best trials:" in out
    study = optuna.load_study(study_name="ncp", storage=storage)
    assert len(study.trials) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all("ncp:proposal" in t.system_attrs for t in study.trials)  # proposed by NCP


def test_study_starts_from_the_tasks_prior_by_default(
    tmp_path: Path,
    shared_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--prior auto`` (the default): cls starts from the cls-50-1000 predictor, fitted on
    first use and read from the cache after; NCP proposes from trial 0."""
    monkeypatch.setenv("NCP_HPO_CACHE", str(tmp_path / "cache"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["study", "--task", "cls", "--trials", "1", "--storage", storage, *SMALL]
    argv += ["--no-mlflow", "--data-dir", str(shared_data_dir), "--max-gflops", "0.002"]
    argv += ["--sampler-param", "iterations=5", "--sampler-param", "n_starts=4"]
    assert main([*argv, "--study-name", "a"]) == 0
    first = capsys.readouterr().out
    assert "prior: cls-50-1000 predictor (" in first and ") fitted in" in first
    assert "held-out Spearman" in first
    assert main([*argv, "--study-name", "b"]) == 0
    assert ") read from the cache in" in capsys.readouterr().out
    for name in ("a", "b"):
        (trial,) = optuna.load_study(study_name=name, storage=storage).trials
        assert (
            trial.state == optuna.trial.TrialState.COMPLETE and "ncp:proposal" in trial.system_attrs
        )
    # --prior none: the random start-up; without the data: one line says why, no prior
    no_data = [a for a in argv if a not in ("--data-dir", str(shared_data_dir))]
    assert main([*no_data, "--study-name", "c", "--prior", "none"]) == 0
    assert "prior:" not in capsys.readouterr().out
    assert len(optuna.load_study(study_name="c", storage=storage).trials) == 1
    assert main([*no_data, "--study-name", "d"]) == 0
    assert "prior: none (cls-50-1000 data not found; 'ncp-hpo data fetch cls-50-1000'" in (
        capsys.readouterr().out
    )


def test_resolve_prior_rules(shared_data_dir: Path) -> None:
    from ncp_hpo.runtime import TASK_PRIORS, resolve_prior

    lines: list[str] = []
    data = str(shared_data_dir)

    def res(spec: str, task: str = "cls", sampler: str = "ncp") -> str | None:
        return resolve_prior(spec, task=task, sampler=sampler, data_dir=data, log=lines.append)

    assert [res("auto", t) for t in ("cls", "seg", "video")] == [
        TASK_PRIORS[t] for t in ("cls", "seg", "video")
    ]
    assert res("auto", "bev-det") is None and lines == [
        "prior: none (no NAS-Bench-MR setting for task bev-det)"
    ]
    assert res("auto", sampler="tpe") is None and res("none") is None
    assert res("video") == "video" and res("my.safetensors") == "my.safetensors"
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampler", "random", "--prior", "cls-50-1000"], "--prior applies to"),
        (["--sampler", "tpe", "--lam", "0.5"], "--lam applies to"),
        (["--sampler", "random", "--enqueue", "8_8-1_1_1_8"], "--enqueue: code string"),
        (["--sampler", "ncp", "--prior", "missing.safetensors"], "no such predictor file"),
    ],
)
def test_study_usage_errors_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["study", "--task", "cls", "--trials", "1", *SMALL, "--no-mlflow", *extra]
    assert main([*argv, "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ncp-hpo: error:") and message in err[0]


def test_median_pruning_never_after_the_final_epoch() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", 2))
    for _ in range(5):
        study.add_trial(
            optuna.trial.create_trial(value=10.0, intermediate_values={1: 10.0, 2: 10.0})
        )
    trial = study.ask()
    trial.report(0.0, 1)
    assert trial.should_prune()  # a poor first epoch is pruned
    trial.report(0.0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not trial.should_prune()  # the trained result is kept
