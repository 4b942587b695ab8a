"""The MLflow side of a real-training study: its parent run (kept across resumes), its
outcome metrics, and how to find the runs afterwards.

A study records its parent run's id as the study user attribute ``mlflow_parent_run_id``
(and the tracking URI as ``mlflow_tracking_uri``); a resumed study reopens that run when
it lives in the tracker's experiment, so all its trial runs stay under one parent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact
from ncp_hpo.tracking._connect import shown_uri
from ncp_hpo.tracking._context import ui_url
from ncp_hpo.tracking._training import MLflowTracker, TrialRun
from ncp_hpo.tracking._verdict import NOTE_TAG

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PARENT_RUN_ATTR",
    "STUDY_UID_ATTR",
    "TRACKING_URI_ATTR",
    "StudyParentRun",
    "latest_trial_run_id",
    "log_study_outcome",
    "study_uid",
    "tracking_hint",
]

PARENT_RUN_ATTR = "mlflow_parent_run_id"
TRACKING_URI_ATTR = "mlflow_tracking_uri"
STUDY_UID_ATTR = "ncp_hpo_study_uid"


def study_uid(study: optuna.Study) -> str:
    """The study's identity across storages: a random hex id kept as the study user
    attribute ``ncp_hpo_study_uid``, created on first use.

    A study's name is not an identity: a new study in another storage (or in a new file
    at the old path) may share it. Two processes starting the same new study at once
    both read the attribute back after writing it, so they agree unless their writes
    and reads interleave exactly.
    """
    uid = study.user_attrs.get(STUDY_UID_ATTR)
    if not uid:
        study.set_user_attr(STUDY_UID_ATTR, uuid.uuid4().hex)
        uid = study.user_attrs[STUDY_UID_ATTR]
    return str(uid)


class StudyParentRun:
    """The study's MLflow parent run, as a context manager giving its id (``None``
    without a tracker or when MLflow is unavailable): reused from the study user
    attribute on resume, else created and given ``settings`` as parameters.

    Args:
        study: the Optuna study.
        tracker: where runs go (``None``: no tracking).
        sampler: the sampler's name (a tag of the parent run).
        settings: the study's settings, logged as parameters of a new parent run
            (``None`` values left out).
        log: where the one line naming the run goes.
    """

    def __init__(
        self,
        study: optuna.Study,
        tracker: MLflowTracker | None,
        *,
        sampler: str,
        settings: Mapping[str, Any],
        log: Callable[[str], None],
    ) -> None:
        self.study, self.tracker, self.log = study, tracker, log
        self.sampler = sampler
        self.settings = dict(settings)
        self._ctx: Any = None

    def __enter__(self) -> str | None:
        tracker, study = self.tracker, self.study
        if tracker is None:
            return None
        stored = study.user_attrs.get(PARENT_RUN_ATTR)
        reused = False
        if stored and tracker.reachable():
            reused = self._adopt(str(stored))
        self._ctx = tracker.study_run(
            study.study_name, sampler=self.sampler, uid=None if reused else study_uid(study)
        )
        parent_id: str | None = self._ctx.__enter__()
        if parent_id is None:
            return None
        if parent_id != stored:
            study.set_user_attr(PARENT_RUN_ATTR, parent_id)
            study.set_user_attr(TRACKING_URI_ATTR, tracker.resolved_uri)
        if not reused:
            self._log_settings(parent_id)
        self.log(
            f"MLflow: {'resumed' if reused else 'parent'} run {parent_id} in experiment "
            f"{tracker.experiment!r} at {tracker.resolved_uri}"
        )
        return parent_id

    def _adopt(self, run_id: str) -> bool:
        """Reopen the stored parent run if it is in the tracker's experiment."""
        tracker = self.tracker
        assert tracker is not None
        try:
            run = tracker.client.get_run(run_id)
            if run.info.experiment_id != tracker.experiment_id():
                return False
            tracker.client.update_run(run_id, status="RUNNING")
        except Exception:  # deleted, or another tracking store: start a new parent
            return False
        # MLflowTracker finds a study's parent by tags; give it the recorded one instead
        tracker._parents[self.study.study_name] = run_id
        return True

    def _log_settings(self, run_id: str) -> None:
        from mlflow.entities import Param

        params = [Param(k, redact(v)) for k, v in self.settings.items() if v is not None]
        assert self.tracker is not None
        try:
            self.tracker.client.log_batch(run_id, params=params)
        except Exception as exc:  # never costs the study
            self.tracker._unavailable(f"logging the study settings: {exc!r}")

    def __exit__(self, *exc: Any) -> bool:
        if self._ctx is not None:
            return bool(self._ctx.__exit__(*exc))
        return False


def log_study_outcome(
    tracker: MLflowTracker, run_id: str, study: optuna.Study, main_metric: str
) -> None:
    """Log the study's trial counts and its best trial to the parent run ``run_id``.

    Metrics ``n_complete``, ``n_pruned``, ``n_failed`` and, with a complete trial,
    ``best.<main_metric>``, ``best.trial`` (``best.macs``, ``best.params`` when known); tags
    ``best_trial``, ``best_value`` and ``best_code`` (the code string); the run's
    description (``mlflow.note.content``) is one line naming the best trial and its code.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    metrics: dict[str, float] = {
        "n_complete": counts[TrialState.COMPLETE],
        "n_pruned": counts[TrialState.PRUNED],
        "n_failed": counts[TrialState.FAIL],
    }
    done = (
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed"
    )
    tags = {NOTE_TAG: f"Study `{study.study_name}`: {done}; no complete trial yet."}
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if complete:
        best = max(complete, key=lambda t: t.value if t.value is not None else -math.inf)
        value = float(best.value or 0.0)
        metrics[f"best.{main_metric}"] = value
        metrics["best.trial"] = best.number
        for k in ("macs", "params"):
            if isinstance(best.user_attrs.get(k), int | float):
                metrics[f"best.{k}"] = float(best.user_attrs[k])
        code = best.user_attrs.get("code")
        tags = {
            "best_trial": str(best.number),
            "best_value": f"{value:.6g}",
            NOTE_TAG: f"Best of study `{study.study_name}` ({done}): trial {best.number}, "
            f"{main_metric} {value:.4g}" + (f", code `{code}`" if code else "") + ".",
        }
        if code:
            tags["best_code"] = str(code)
    run = TrialRun(tracker, run_id)
    run.log_metrics(metrics, step=len(trials))
    run.set_tags(tags)


def tracking_hint(uri: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """How to look at the runs of ``uri`` (links open MLflow's "Model training" pages;
    credentials in ``uri`` are left out)."""
    uri = shown_uri(uri)
    if uri.startswith(("http://", "https://")):
        return f"open {ui_url(uri, experiment_id, run_id)}"
    if uri.startswith("databricks"):
        return "open your Databricks workspace"
    return f"mlflow ui --backend-store-uri {uri}, then open {ui_url(uri, experiment_id, run_id)}"


def latest_trial_run_id(tracker: MLflowTracker, *, since: float) -> str | None:
    """The newest trial run of the tracker's experiment started after ``since`` (epoch
    seconds; ``None`` when there is none or MLflow cannot be asked)."""
    if tracker.warned:
        return None
    try:
        runs = tracker.client.search_runs(
            [tracker.experiment_id()],
            filter_string=f"tags.`ncp_hpo.role` = 'trial' and attributes.start_time >= "
            f"{int(since * 1000) - 1000}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    except Exception:  # the run was logged; only the look-up failed
        return None
    return str(runs[0].info.run_id) if runs else None
