"""Study progress (bars on a terminal, plain lines without one), the compute budget of
real-training studies, and the study's metric names."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest

from ncp_hpo.cli import main
from ncp_hpo.runtime._progress import StudyProgress, format_duration
from ncp_hpo.trainers import OVER_BUDGET, TrainingObjective, train_code

ROOT = Path(__file__).resolve().parents[2]
START = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"
QUICK = ["--train-size", "64", "--val-size", "32", "--seed", "0", "--device", "cpu"]


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_progress_lines_best_and_eta() -> None:
    out, clock = io.StringIO(), _Clock()
    p = StudyProgress(
        total=3, epochs=4, metric="top1", tty=False, every=30.0, stream=out, clock=clock
    )
    p.start_trial(0)
    for epoch, t in ((1, 10.0), (2, 20.0), (3, 35.0), (4, 40.0)):
        clock.t = t
        p.on_epoch(epoch, {"top1": 10.0 * epoch})
    p.end_trial("trial 0 COMPLETE", value=40.0)
    p.start_trial(1)
    clock.t = 60.0
    p.end_trial("trial 1 COMPLETE", value=30.0)
    p.start_trial(2)
    p.end_trial("", value=None, counted=False)  # an over-budget refusal: not counted
    lines = out.getvalue().splitlines()
    # one epoch line per `every` seconds, plus the final epoch
    assert lines[0] == "  trial 0 epoch 3/4: top1 30 (35s in this trial)"
    assert lines[1] == "  trial 0 epoch 4/4: top1 40 (40s in this trial)"
    assert lines[2] == "trial 0 COMPLETE  [1/3 trials, best top1 40, ETA 1m20s]"
    assert lines[3] == "trial 1 COMPLETE  [2/3 trials, best top1 40, ETA 30s]"
    assert p.done == 2 and p.best == 40.0


def test_tty_progress_draws_bars_and_quiet_draws_nothing() -> None:
    out = io.StringIO()
    with StudyProgress(total=2, epochs=2, metric="mIoU", tty=True, stream=out) as p:
        p.start_trial(0)
        p.on_epoch(1, {"mIoU": 0.5})
        p.on_epoch(2, {"mIoU": 0.6})
        p.end_trial("trial 0 COMPLETE mIoU 0.6", value=0.6)
    text = out.getvalue()
    assert "trials:" in text and "best mIoU 0.6" in text and "trial 0 COMPLETE" in text
    quiet = io.StringIO()
    q = StudyProgress(total=2, epochs=2, metric="top1", enabled=False, tty=True, stream=quiet)
    q.start_trial(0)
    q.on_epoch(1, {"top1": 1.0})
    q.end_trial("trial 0", value=1.0)
    q.close()
    assert quiet.getvalue() == ""


def test_format_duration() -> None:
    assert [format_duration(s) for s in (9, 75, 3725)] == ["9s", "1m15s", "1h02m"]
    assert format_duration(float("nan")) == "?"


def test_training_step_emits_no_warning(tiny_code: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train_code(
            tiny_code, epochs=1, train_size=32, val_size=16, image_size=16, progress=True
        )
    assert result.epochs == 1


def test_objective_refuses_an_over_budget_code_without_training() -> None:
    obj = TrainingObjective(
        "cls", max_flops=4e6, image_size=16, train_size=32, val_size=16, progress=False
    )
    assert obj.budget is not None and obj.budget.input_size == (16, 16)
    assert obj.budget.num_classes == 10
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(obj.space.to_params(obj.space.decode(START)))
    study.optimize(obj, n_trials=1)
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.PRUNED
    assert t.user_attrs["fail_reason"] == OVER_BUDGET
    assert "wall_time_s" not in t.user_attrs and "metrics" not in t.user_attrs  # not trained
    assert t.user_attrs["macs_analytic"] == 30_823_040  # 0.031 GFLOPs at 16x16


def test_study_names_its_metric_and_skips_over_budget_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    argv = ["study", "--task", "cls", "--sampler", "random", "--trials", "2", "--epochs", "1"]
    argv += [*QUICK, "--no-mlflow", "--storage", storage, "--study-name", "b"]
    argv += ["--enqueue", START, "--max-gflops", "0.002"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "budget <= 0.002 GFLOPs at 16x16" in out
    assert "1 proposed code(s) were over the compute budget and not trained" in out
    study = optuna.load_study(study_name="b", storage=storage)
    assert study.metric_names == ["top1"]
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.PRUNED  # the enqueued start code
    counted = [t for t in study.trials if t.user_attrs.get("fail_reason") != OVER_BUDGET]
    assert len(counted) == 2  # --trials counts trained trials only
    assert all(t.user_attrs["macs_analytic"] <= 2e6 for t in counted)


def _cli(*extra: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ncp_hpo.cli", "study", "--task", "cls", "--trials", "2"]
    argv += ["--epochs", "2", "--sampler", "random", *QUICK, "--no-mlflow", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
    )  # stdout and stderr are pipes: no terminal


def test_study_without_a_terminal_prints_plain_progress(tmp_path: Path) -> None:
    proc = _cli(tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "  trial 0 epoch 2/2: top1" in out  # the last epoch of every trial
    assert "trial   0 COMPLETE top1" in out and "[1/2 trials, best top1" in out
    assert "ETA" in out and "best trials:" in out
    assert "\r" not in proc.stderr and "Traceback" not in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr  # no per-step torch warning

    quiet = _cli("--quiet", tmp_path=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "trial   0 COMPLETE" not in quiet.stdout and "epoch 2/2" not in quiet.stdout
    assert "best trials:" in quiet.stdout  # the summary only
    assert quiet.stderr == ""
