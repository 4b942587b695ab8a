"""MLflow runs of ``study``/``train`` and ``compare`` as MLflow 3's UI expects them.

Against a real ``mlflow server`` on loopback: experiments carry the "Model training" kind,
runs carry the usual context tags, and a comparison's child runs are logged while their
studies run (real start and end times, metrics stamped inside the run).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from ncp_hpo.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

REPO = Path(__file__).resolve().parents[2]
CONTEXT = ("mlflow.user", "mlflow.source.name", "mlflow.source.type")


def _repo_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _assert_context(tags: dict[str, str]) -> None:
    for key in CONTEXT:
        assert tags.get(key), (key, tags)
    commit = _repo_commit()
    if commit is not None:  # running from a checkout: the run names its commit
        assert tags.get("mlflow.source.git.commit") == commit


def test_training_runs_open_on_the_runs_table_with_context_tags(mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.tracking import MLflowTracker

    name = f"ncp-kind-{uuid.uuid4().hex[:8]}"
    tracker = MLflowTracker(mlflow_server, experiment=name, log_model=False)
    with tracker.study_run("digits-ncp", sampler="ncp") as parent_id:
        with tracker.trial_run(study_name="digits-ncp", task="cls", run_name="trial-0") as run:
            run.log_metrics({"top1": 0.5}, step=0)
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(name)
    assert exp is not None and exp.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND
    assert EXPERIMENT_KIND == "custom_model_development"
    assert parent_id is not None and run.run_id is not None
    for run_id in (parent_id, run.run_id):
        _assert_context(client.get_run(run_id).data.tags)


def test_ui_links_open_the_model_training_pages() -> None:
    from ncp_hpo.tracking import ui_url

    assert ui_url("http://10.0.0.5:5000/", "7", "abc") == (
        "http://10.0.0.5:5000/#/experiments/7/runs/abc?workflowType=machine_learning"
    )
    assert ui_url("sqlite:///mlflow.db") == (
        "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    )


def test_an_existing_experiment_gets_the_kind_tag(mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.tracking import experiment_id

    client = MlflowClient(mlflow_server)
    name = f"ncp-old-{uuid.uuid4().hex[:8]}"
    exp_id = client.create_experiment(name)  # as versions before 0.2 made it
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(exp_id).tags
    assert experiment_id(client, name) == exp_id
    assert client.get_experiment(exp_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_comparison_children_are_logged_while_their_studies_run(
    mlflow_server: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.experiments import CompareConfig, run_comparison

    name = f"ncp-compare-{uuid.uuid4().hex[:8]}"
    config = CompareConfig(
        "nas-bench-201", samplers=("random", "tpe"), trials=5, seeds=1, jobs=1,
        out=tmp_path / "o", data_dir=shared_data_dir, progress=False, mlflow=True,
        mlflow_uri=mlflow_server, mlflow_experiment=name,
    )  # fmt: skip
    res = run_comparison(config)
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(name)
    assert exp is not None and exp.tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND
    parent = client.get_run(res.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    _assert_context(parent.data.tags)
    children = sorted(
        client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        ),
        key=lambda r: r.info.start_time,
    )
    assert {c.data.tags["ncp_hpo.study"] for c in children} == {
        "nas-bench-201-random-seed0",
        "nas-bench-201-tpe-seed0",
    }
    for child in children:
        _assert_context(child.data.tags)
        assert child.info.status == "FINISHED"
        values = client.get_metric_history(child.info.run_id, "value")
        best = client.get_metric_history(child.info.run_id, "best_so_far")
        assert sorted(m.step for m in values) == sorted(m.step for m in best) == list(range(5))
        # live: the run opened before its first trial finished and closed after its last
        stamps = [m.timestamp for m in values]
        assert child.info.start_time <= min(stamps) <= max(stamps) <= child.info.end_time
        assert parent.info.start_time <= child.info.start_time
        assert child.data.metrics["final.n_complete"] == 5
        sampler = child.data.tags["sampler"]  # named and tagged live (issue 25)
        assert child.info.run_name == f"{sampler} seed 0" and child.data.tags["seed"] == "0"
        assert child.data.metrics["best"] == max(m.value for m in best)
    assert parent.data.tags["winner"] in ("random", "tpe", "random = tpe")
    assert parent.data.tags["mlflow.note.content"].startswith("**Verdict** (best@5")
    # one study after the other (jobs=1): the second child starts after the first ended
    assert children[0].info.end_time <= children[1].info.start_time
    # a rerun with nothing left to run reuses the parent and keeps the children
    again = run_comparison(config)
    assert again.mlflow_run_id == res.mlflow_run_id
    runs = client.search_runs([exp.experiment_id])
    summaries = [r for r in runs if r.data.tags.get("ncp_hpo.kind") == "sampler-summary"]
    ids = {r.info.run_id for r in runs} - {r.info.run_id for r in summaries}
    assert ids == {parent.info.run_id, *(c.info.run_id for c in children)}
    # plus one top-level summary run per sampler (replaced by the rerun, not added)
    assert sorted(r.info.run_name for r in summaries) == [
        "random (median of 1 seed)",
        "tpe (median of 1 seed)",
    ]


def test_compare_without_a_server_still_writes_its_files(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    from ncp_hpo.experiments import CompareConfig, run_comparison
    from ncp_hpo.tracking import CompareTrackingWarning

    config = CompareConfig(
        "nas-bench-201", samplers=("random",), trials=3, seeds=1, jobs=1, out=tmp_path / "o",
        data_dir=shared_data_dir, progress=False, mlflow=True, mlflow_uri="http://127.0.0.1:9",
    )  # fmt: skip
    with pytest.warns(CompareTrackingWarning):
        res = run_comparison(config)
    assert res.mlflow_run_id is None and (tmp_path / "o" / "summary.md").is_file()
