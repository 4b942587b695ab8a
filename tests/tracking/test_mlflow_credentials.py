"""An MLflow server behind basic auth, reached through ``http://USER:PASSWORD@HOST:PORT``.

A real ``mlflow server`` on loopback, behind a loopback proxy that refuses every request
(``/health`` included) without the right basic-auth header. The tracker and the ``worker``
command must find it reachable, log their runs through it, and never put the password in
a name lookup, an output line, a log record, a warning, a run tag or a parameter.
(MLflow's own ``--app-name basic-auth`` needs Flask-WTF, which this environment lacks.)
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from _netcheck import AuthServer, auth_server, observed_lookups

USER = "ncp"
PW = "Zq9x-s3cr3t p@ss:w/rd"


def _creds_uri(server: AuthServer) -> str:
    return f"http://{USER}:{quote(PW, safe='')}@127.0.0.1:{server.port}"


def _clean(*texts: object) -> None:
    for text in texts:
        for form in (PW, quote(PW, safe=""), "Zq9x"):
            assert form.lower() not in str(text).lower(), text


@pytest.fixture
def proxy(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuthServer]:
    from ncp_hpo import _secrets

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # restored afterwards
    with auth_server(USER, PW, upstream=mlflow_server.removeprefix("http://")) as server:
        yield server
    _secrets._SECRETS.clear()


def _all_run_text(mlflow_server: str, experiment: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)  # straight to the server, no credentials needed
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    texts = [str(exp.tags)]
    for run in runs:
        texts += [str(run.data.tags), str(run.data.params), str(run.info)]
    return texts


def test_tracker_logs_through_basic_auth_and_shows_no_password(
    mlflow_server: str,
    proxy: AuthServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ncp_hpo.tracking import MLflowTracker, tracking_hint

    name = f"ncp-auth-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG)
    with observed_lookups() as hosts, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = MLflowTracker(_creds_uri(proxy), experiment=name, log_model=False)
        assert tracker.reachable(), tracker.last_error
        with tracker.study_run("s", sampler="random") as parent_id:
            with tracker.trial_run(
                study_name="s", task="cls", params={"uri": _creds_uri(proxy)}
            ) as run:
                run.log_metrics({"top1": 0.5}, step=0)
        hint = tracking_hint(tracker.resolved_uri, tracker.experiment_id())
    assert parent_id is not None and run.run_id is not None and not tracker.warned
    assert proxy.rejected == 0 and all(s.auth == f"{USER}:{PW}" for s in proxy.seen)
    assert len(proxy.seen) > 3  # the health check and MLflow's own calls went through it
    assert set(hosts) <= {"127.0.0.1"}, hosts
    out, err = capsys.readouterr()
    _clean(out, err, hint, repr(tracker), *caught, *(r.getMessage() for r in caplog.records))
    texts = _all_run_text(mlflow_server, name)
    assert any("uri" in t for t in texts)  # the param holding a URI is there, masked
    _clean(*texts)


def test_worker_with_credentials_in_mlflow_uri_logs_its_trials(
    mlflow_server: str,
    proxy: AuthServer,
    shared_data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ncp_hpo.cli import main

    name = f"ncp-auth-worker-{uuid.uuid4().hex[:8]}"
    argv = ["worker", "--study-name", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}",
            "--benchmark", "nas-bench-201", "--data-dir", str(shared_data_dir),
            "--sampler", "random", "--trials", "2", "--quiet",
            "--mlflow-uri", _creds_uri(proxy), "--mlflow-experiment", name]  # fmt: skip
    with observed_lookups() as hosts:
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and "unreachable" not in err, err
    assert set(hosts) <= {"127.0.0.1"}, hosts
    assert proxy.rejected == 0 and proxy.seen
    texts = _all_run_text(mlflow_server, name)
    assert sum("'ncp_hpo.role': 'trial'" in t for t in texts) == 2
    _clean(out, err, *texts)
