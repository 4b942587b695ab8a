"""MLflow tracking: a real server receives nested trial runs; an unreachable one costs nothing."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient

from ncp_hpo.exceptions import TrackingWarning
from ncp_hpo.spaces import DIM_NAMES, MultiResolutionSpace
from ncp_hpo.tracking import MLflowTracker
from ncp_hpo.trainers import (
    TrainingObjective,
    build_model,
    plot_architecture,
    train_code,
)

# Every b and n = 1, every channel count = 8 (the conftest's tiny_code).
TINY_CODE = "8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8"

SMALL = {"train_size": 32, "val_size": 16, "batch_size": 16, "image_size": 16, "progress": False}


def _objective(tracker: MLflowTracker | None, epochs: int = 2) -> TrainingObjective:
    space = MultiResolutionSpace()
    fixed = space.to_params(space.decode(TINY_CODE))
    fixed.pop("o1")  # one dimension left to the sampler (cheap: the head's channels)
    return TrainingObjective("cls", tracker=tracker, fixed=fixed, epochs=epochs, **SMALL)


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_server_receives_nested_trial_runs(mlflow_server: str, tmp_path: Path) -> None:
    experiment = f"ncp-test-{uuid.uuid4().hex[:8]}"
    tracker = MLflowTracker(mlflow_server, experiment=experiment)
    study = optuna.create_study(
        study_name="digits-study", direction="maximize", sampler=optuna.samplers.RandomSampler(0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        with tracker.study_run(study.study_name, sampler="RandomSampler") as parent_id:
            study.optimize(_objective(tracker), n_trials=2)
    assert parent_id is not None

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ncp_hpo.role") == "study"]
    children = [r for r in runs if r.data.tags.get("ncp_hpo.role") == "trial"]
    assert [p.info.run_id for p in parents] == [parent_id]
    assert parents[0].info.status == "FINISHED" and parents[0].info.run_name == "digits-study"
    assert len(children) == 2

    for trial in study.trials:
        (run,) = [r for r in children if r.data.tags["ncp_hpo.trial"] == str(trial.number)]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == parent_id
        assert tags["ncp_hpo.study"] == "digits-study" and tags["ncp_hpo.state"] == "COMPLETE"
        assert run.info.status == "FINISHED" and run.info.run_name == f"trial-{trial.number}"
        # params: named code dimensions, code string, task, sampler, training settings
        assert set(DIM_NAMES) <= set(params)
        assert params["o1"] == str(trial.params["o1"])
        assert MultiResolutionSpace().decode(params["code"])[-1] == trial.params["o1"]
        assert params["task"] == "cls" and params["sampler"] == "RandomSampler"
        assert params["epochs"] == "2" and params["dataset"] == "digits-cls"
        # per-epoch history and final values
        hist = client.get_metric_history(run.info.run_id, "top1")
        assert sorted(m.step for m in hist) == [1, 2]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        metrics = run.data.metrics
        assert metrics["final.top1"] == pytest.approx(trial.value)
        assert metrics["macs"] == metrics["macs_analytic"] == trial.user_attrs["macs"]
        assert metrics["params"] == metrics["params_analytic"] > 0
        # artifacts: weights, architecture picture, result
        top = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"architecture.png", "result.json", "model"} <= top
        assert [f.path for f in client.list_artifacts(run.info.run_id, "model")] == [
            "model/state_dict.pt"
        ]

    # the logged weights load into the architecture they were trained as
    run_id = study.trials[0].user_attrs["mlflow_run_id"]
    path = client.download_artifacts(run_id, "model/state_dict.pt", str(tmp_path))
    state = torch.load(path, weights_only=True)
    model = build_model(study.trials[0].user_attrs["code"], task="cls", num_classes=10)
    model.load_state_dict(state)
    png = Path(client.download_artifacts(run_id, "architecture.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pruned_trial_run_is_closed_as_killed(mlflow_server: str) -> None:
    tracker = MLflowTracker(mlflow_server, experiment=f"ncp-test-{uuid.uuid4().hex[:8]}")
    study = optuna.create_study(
        study_name="pruned",
        direction="maximize",
        pruner=optuna.pruners.ThresholdPruner(lower=101.0),
    )
    study.optimize(_objective(tracker, epochs=3), n_trials=1)
    tracker.close()
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    run = MlflowClient(mlflow_server).get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and run.data.tags["ncp_hpo.state"] == "PRUNED"
    # the study's parent run was created lazily and closed by close()
    parent = MlflowClient(mlflow_server).get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"


def test_resumed_study_reuses_its_parent_run(mlflow_server: str) -> None:
    experiment = f"ncp-test-{uuid.uuid4().hex[:8]}"
    first = MLflowTracker(mlflow_server, experiment=experiment)
    second = MLflowTracker(mlflow_server, experiment=experiment)
    with first.study_run("resume-me") as a:
        pass
    with second.study_run("resume-me") as b:
        pass
    assert a is not None and a == b


def test_unreachable_server_warns_once_and_loses_nothing(closed_port_url: str) -> None:
    url = closed_port_url  # nothing listens there
    tracker = MLflowTracker(url, experiment="never-created", probe_timeout=2.0)
    study = optuna.create_study(direction="maximize")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(_objective(tracker, epochs=1), n_trials=2)
        result = train_code(TINY_CODE, task="cls", epochs=1, tracker=tracker, **SMALL)  # type: ignore[arg-type]
    tracking = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(tracking) == 1
    assert url in str(tracking[0].message) and "Optuna storage" in str(tracking[0].message)
    assert not tracker.reachable()
    # every trial completed with its value and kept its results in the study
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in study.trials:
        assert t.value is not None and 0 <= t.value <= 100
        assert t.user_attrs["macs"] > 0 and "top1" in t.user_attrs["metrics"]
        assert "mlflow_run_id" not in t.user_attrs
    assert 0 <= result.value <= 100 and result.epochs == 1


def test_default_tracking_uri_is_mlflows_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MLflowTracker().resolved_uri == f"sqlite:///{tmp_path}/mlflow.db"


def test_plot_architecture_writes_a_png(tmp_path: Path) -> None:
    fig = plot_architecture(TINY_CODE, tmp_path / "a.png", task="seg")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert TINY_CODE in fig.texts[0].get_text()


def test_study_parent_run_names_its_best_trial_and_code(mlflow_server: str) -> None:
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    from ncp_hpo.tracking import log_study_outcome

    tracker = MLflowTracker(mlflow_server, experiment=f"ncp-test-{uuid.uuid4().hex[:8]}")
    study = optuna.create_study(study_name="best-of", direction="maximize")
    dist = {"o1": IntDistribution(8, 64, step=8)}
    for i, (value, state) in enumerate([(61.5, "COMPLETE"), (73.25, "COMPLETE"), (None, "PRUNED")]):
        study.add_trial(
            create_trial(
                params={"o1": 8 * (i + 1)}, distributions=dist, value=value,
                state=TrialState[state], user_attrs={"code": f"code-{i}", "macs": 1e6 * (i + 1)},
            )
        )  # fmt: skip
    with tracker.study_run(study.study_name, sampler="ncp") as parent_id:
        assert parent_id is not None
        log_study_outcome(tracker, parent_id, study, "top1")
    run = MlflowClient(mlflow_server).get_run(parent_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["best_trial"] == "1" and tags["best_code"] == "code-1"
    assert float(tags["best_value"]) == 73.25
    assert metrics["best.top1"] == 73.25 and metrics["best.trial"] == 1
    assert metrics["best.macs"] == 2e6 and metrics["n_pruned"] == 1
    assert tags["mlflow.note.content"] == (
        "Best of study `best-of` (2 complete, 1 pruned, 0 failed): trial 1, top1 73.25, "
        "code `code-1`."
    )
