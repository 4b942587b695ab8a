"""Every trial that does not end COMPLETE says why (user attribute ``fail_reason``), in the
Optuna storage and on the trial's MLflow run; the pandas snippet of
``docs/scaling-out.md`` section 5 runs on the result.

Stale (killed) and interrupted (SIGTERM) trials are checked end to end in
``test_worker.py``; the stale reason in-process in ``test_heartbeat.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from ncp_hpo.runtime import Worker, benchmark_objective
from ncp_hpo.runtime._storage import open_storage
from ncp_hpo.samplers import make_sampler

pytestmark = pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scaling-out.md"


def _snippet() -> str:
    text = DOCS.read_text()
    section = text.split("## 5. Checking a study", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in section 5"
    return match.group(1)


def _run_snippet(study_name: str, storage: str) -> dict[str, Any]:
    code = _snippet()
    code = re.sub(r'study_name="[^"]*"', f'study_name="{study_name}"', code)
    code = re.sub(r'storage="[^"]*"', f'storage="{storage}"', code, flags=re.S)
    lines = code.strip().splitlines()
    lines[-1] = f"result = {lines[-1]}"  # the last expression is what the reader sees
    scope: dict[str, Any] = {}
    exec(compile("\n".join(lines), str(DOCS), "exec"), scope)
    return scope


def _worker(url: str, data: Path, budget: int, tracker: Any = None, **kw: Any) -> Worker:
    spec = benchmark_objective("nas-bench-201", data_dir=str(data), tracker=tracker)
    return Worker(
        study_name="s",
        storage=open_storage(url, heartbeat=1),
        spec=spec,
        sampler=make_sampler("random", space=spec.space, seed=0),
        budget=budget,
        poll=0.1,
        **kw,
    )


def test_fail_reasons_reach_the_storage_mlflow_and_the_documented_snippet(
    tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pandas")
    from ncp_hpo.tracking import MLflowTracker

    url = f"sqlite:///{tmp_path / 's.db'}"
    tracker = MLflowTracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment="reasons",
        log_model=False,
        log_architecture=False,
    )
    monkeypatch.setenv("NCP_HPO_FAULTS", "raise@1,nan@2")
    summary = _worker(url, shared_data_dir, 3, tracker).run()
    assert summary.study_complete == 3 and summary.failed == 2, summary
    trials = optuna.load_study(study_name="s", storage=url).trials
    reasons = {t.number: t.user_attrs.get("fail_reason") for t in trials}
    assert reasons[1] == "objective error: InjectedFault: injected fault in trial 1"
    assert reasons[2] == "objective returned nan"
    assert all(reasons[t.number] is None for t in trials if t.state == TrialState.COMPLETE)

    runs = tracker.client.search_runs([tracker.experiment_id()])
    tagged = {
        r.data.tags.get("ncp_hpo.trial"): r for r in runs if "ncp_hpo.fail_reason" in r.data.tags
    }
    assert set(tagged) == {"1", "2"}, [r.data.tags for r in runs]
    assert tagged["1"].data.tags["ncp_hpo.fail_reason"] == reasons[1]
    assert tagged["1"].info.status == "FAILED"
    assert tagged["2"].data.tags["ncp_hpo.fail_reason"] == reasons[2]

    scope = _run_snippet("s", url)
    failed = scope["result"]
    assert list(failed["number"]) == [1, 2]
    assert list(failed["user_attrs_fail_reason"]) == [reasons[1], reasons[2]]


def test_documented_snippet_runs_on_a_study_without_failures(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """The snippet raised KeyError when no trial had a fail_reason (issue 15)."""
    pytest.importorskip("pandas")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _worker(url, shared_data_dir, 2).run().study_complete == 2
    scope = _run_snippet("s", url)
    assert len(scope["result"]) == 0
    assert int(scope["df"].groupby("state").size()["COMPLETE"]) == 2


def test_over_budget_trial_says_why(tmp_path: Path, shared_data_dir: Path) -> None:
    """Budget 1, one trial RUNNING elsewhere and one queued: the queued one ranks past the
    budget, so it is PRUNED unevaluated with its reason."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    worker = _worker(url, shared_data_dir, 1, timeout=1.0)
    study = worker.open_study()
    study.ask()  # running in another worker (no heartbeat: never stale)
    study.enqueue_trial({})
    summary = worker.run()
    assert summary.past_budget == 1
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert len(pruned) == 1
    assert pruned[0].user_attrs["fail_reason"].startswith("over budget")


def test_worker_summary_names_refusals_apart_from_the_trial_budget() -> None:
    from ncp_hpo.runtime._worker import WorkerSummary

    summary = WorkerSummary(
        worker="w", study="s", budget=4, ran=7, complete=3, pruned=1, refused=2, past_budget=1
    )
    summary.study_complete, summary.study_pruned = 3, 1
    line = summary.line()
    assert "7 trials here (3 complete, 1 pruned, 0 failed, 2 refused over the compute " in line
    assert "budget, 1 past the trial budget)" in line
    assert "study 's': 4/4 counted (3 complete, 1 pruned)" in line
