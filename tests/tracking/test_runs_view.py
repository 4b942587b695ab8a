"""A saved view of an experiment's runs table (MLflow 3.17's "Views" menu).

MLflow's default runs table shows no metric column; a view saved as an experiment tag, and
a link naming it, open the table with the columns that answer "who won". The browser side
is checked by ``docs/mlflow-screenshots.sh`` (headless Chromium).
"""

from __future__ import annotations

import json
from pathlib import Path

from ncp_hpo.tracking import VIEW_TAG_PREFIX, save_runs_view, ui_url


def test_a_view_link_opens_the_runs_tab_with_the_view_key() -> None:
    assert ui_url("http://10.0.0.5:5000/", "7", view="ncp-hpo best") == (
        "http://10.0.0.5:5000/#/experiments/7/runs"
        "?viewStateShareKey=ncp-hpo%20best&workflowType=machine_learning"
    )
    # a run's link ignores the view; no experiment: the list, as before
    run_link = ui_url("http://h:1", "7", "abc", view="v")
    assert run_link == "http://h:1/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert (
        ui_url("http://h:1", view="v") == "http://h:1/#/experiments?workflowType=machine_learning"
    )


def test_the_view_is_an_experiment_tag_in_mlflows_saved_view_form(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("views")
    columns = ["metrics.`median_best`", "tags.`sampler`"]
    save_runs_view(client, exp_id, "best", "best per sampler", columns, order_by=columns[0])
    save_runs_view(client, exp_id, "best", "best per sampler", columns[:1])  # replaced
    envelope = json.loads(client.get_experiment(exp_id).tags[VIEW_TAG_PREFIX + "best"])
    assert envelope["name"] == "best per sampler"
    assert isinstance(envelope["createdAt"], int)
    assert json.loads(envelope["state"]) == {"selectedColumns": ["metrics.`median_best`"]}
