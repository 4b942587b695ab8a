"""Experiment kind, run-context tags and UI links that every run shares."""

from __future__ import annotations

import functools
import json
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact
from ncp_hpo.tracking._connect import is_http, shown_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "VIEW_TAG_PREFIX",
    "experiment_id",
    "run_tags",
    "save_runs_view",
    "ui_url",
]

# The tag MLflow 3's UI reads to choose an experiment's layout, and its "Model training"
# value (the UI's CUSTOM_MODEL_DEVELOPMENT); without it an experiment with no traces is
# shown as a GenAI project.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# MLflow 3.17's UI also has a global "GenAI | Model training" switch in its sidebar, kept in
# the browser (GenAI by default), which wins over the experiment's kind; this query
# parameter of the UI's routes selects "Model training".
UI_QUERY = "workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# MLflow 3.17's saved views of a runs table (its "Views" menu, and the "Share" button's
# links): an experiment tag VIEW_TAG_PREFIX + key holding {"name", "createdAt", "state"},
# state the table's UI state as JSON; `#/experiments/<id>/runs?viewStateShareKey=<key>`
# opens it. The default runs table shows no metric column; a saved view can.
VIEW_TAG_PREFIX = "mlflow.sharedViewState."


def ui_url(
    uri: str,
    experiment_id: str | None = None,
    run_id: str | None = None,
    *,
    view: str | None = None,
) -> str:
    """A link into MLflow's UI on its "Model training" pages.

    ``uri`` is the tracking URI: an ``http(s)`` server is linked directly (credentials in
    the URI left out); for a local store the link is where ``mlflow ui`` serves it. Without
    ``experiment_id`` the link is the experiment list; with ``run_id`` too, the run's page;
    with ``view`` instead (a key saved by :func:`save_runs_view`), the experiment's runs
    table in that view (the link names the ``runs`` tab: MLflow drops the view's key when
    it redirects a bare experiment link there).
    """
    base = shown_uri(uri).rstrip("/") if is_http(uri) else LOCAL_UI
    path = "/#/experiments"
    query = UI_QUERY
    if experiment_id is not None:
        path += f"/{experiment_id}"
        if run_id is not None:
            path += f"/runs/{run_id}"
        elif view is not None:
            path += "/runs"
            query = f"viewStateShareKey={urllib.parse.quote(view, safe='')}&{UI_QUERY}"
    return f"{base}{path}?{query}"


def save_runs_view(
    client: MlflowClient,
    experiment_id: str,
    key: str,
    name: str,
    columns: list[str],
    order_by: str | None = None,
    ascending: bool = False,
) -> None:
    """Save a view of the experiment's runs table that shows ``columns``.

    ``columns`` are MLflow's column names: ``"metrics.`best`"``, ``"tags.`sampler`"``,
    ``"attributes.`Source`"``; ``order_by`` sorts the table by one of them. The view is
    listed under the table's "Views" menu as ``name`` and opened by
    ``ui_url(uri, experiment_id, view=key)``. Saving it again replaces it.
    """
    state: dict[str, Any] = {"selectedColumns": list(columns)}
    if order_by is not None:
        state["orderByKey"] = order_by
        state["orderByAsc"] = ascending
    envelope = {"name": name, "createdAt": int(time.time() * 1000), "state": json.dumps(state)}
    client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + key, json.dumps(envelope))


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``: created (or restored) if needed, kind tag set.

    Safe against another process creating the experiment at the same moment.
    """
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = str(
                client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            )
        except Exception:  # created by another worker meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp is not None:
        exp_id = str(exp.experiment_id)
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp_id)
        if EXPERIMENT_KIND_TAG not in exp.tags:  # made by an earlier version or by hand
            client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp_id


def run_tags(tags: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``tags`` plus the run-context tags (user, source, git commit); ``tags`` win. Values
    are redacted (:func:`ncp_hpo._secrets.redact`)."""
    out = dict(_context_tags())
    out.update({str(k): redact(v) for k, v in (tags or {}).items()})
    return out


@functools.cache
def _context_tags() -> dict[str, str]:
    try:
        from mlflow.tracking.context.registry import resolve_tags

        # redacted: a git remote's URL may hold a token (``mlflow.source.git.repoURL``)
        tags = {str(k): redact(v) for k, v in resolve_tags().items()}
    except Exception:  # a registry plug-in failed: run without context tags
        tags = {}
    if GIT_COMMIT_TAG not in tags:  # the console script is no git file; the package may be
        commit = _package_commit()
        if commit:
            tags[GIT_COMMIT_TAG] = commit
    return tags


def _package_commit() -> str | None:
    """The commit of the git checkout ``ncp_hpo`` is imported from; None when installed."""
    pkg = Path(__file__).resolve().parents[1]
    try:
        top, commit = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    # only the checkout holding the package itself, not a repository it is installed into
    return commit if Path(top).resolve() == pkg.parent else None
