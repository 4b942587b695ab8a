"""MLflow tracking, one home for training trials, studies and comparisons.

* :class:`MLflowTracker` (:mod:`._training`): one run per training trial nested under its
  study's run (``ncp-hpo train``, ``study``, ``worker``, :func:`ncp_hpo.trainers.train_code`).
* :class:`StudyParentRun`, :func:`log_study_outcome` (:mod:`._study`): a real-training
  study's parent run, kept across resumes, and its outcome; :func:`study_uid`, the study's
  identity, so a new study that reuses an old one's name gets a parent run of its own.
* :func:`open_comparison`, :class:`LiveStudyRun` (:mod:`._live`), :func:`log_comparison`
  (:mod:`._comparison`): ``ncp-hpo compare`` logged live, a parent run per comparison and a
  child per sampler x seed; who won, readable without a click (:mod:`._verdict`): the
  parent's description (verdict line and summary table) and ``winner``/``verdict`` tags,
  ``<sampler> seed <k>`` child runs with a ``best`` metric, and one top-level
  ``<sampler> (median of N seeds)`` summary run per sampler.
* What every run shares (:mod:`._context`):

  - experiments carry ``mlflow.experimentKind = custom_model_development`` ("Model
    training"), via :func:`experiment_id`;
  - runs carry MLflow's usual context tags (``mlflow.user``, ``mlflow.source.name``,
    ``mlflow.source.type``, and ``mlflow.source.git.commit`` when the code runs from a git
    checkout), resolved by MLflow's run-context registry as ``mlflow.start_run`` does
    (:func:`run_tags`); runs are made with ``MlflowClient.create_run``, which does not add
    them itself;
  - links printed for the user (:func:`ui_url`) open MLflow's "Model training" pages,
    which MLflow 3.17 otherwise picks with a GenAI-first switch kept in the browser.

MLflow itself is imported on first use, so importing this package is cheap.
"""

from ncp_hpo.exceptions import CompareTrackingWarning, TrackingWarning
from ncp_hpo.tracking._comparison import (
    LiveTarget,
    child_params,
    end_comparison,
    log_comparison,
    log_files_run,
    open_comparison,
)
from ncp_hpo.tracking._context import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    VIEW_TAG_PREFIX,
    experiment_id,
    run_tags,
    save_runs_view,
    ui_url,
)
from ncp_hpo.tracking._live import LiveStudyRun
from ncp_hpo.tracking._study import (
    PARENT_RUN_ATTR,
    STUDY_UID_ATTR,
    TRACKING_URI_ATTR,
    StudyParentRun,
    latest_trial_run_id,
    log_study_outcome,
    study_uid,
    tracking_hint,
)
from ncp_hpo.tracking._training import MLflowTracker, TrialRun

__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "PARENT_RUN_ATTR",
    "STUDY_UID_ATTR",
    "TRACKING_URI_ATTR",
    "VIEW_TAG_PREFIX",
    "CompareTrackingWarning",
    "LiveStudyRun",
    "LiveTarget",
    "MLflowTracker",
    "StudyParentRun",
    "TrackingWarning",
    "TrialRun",
    "child_params",
    "end_comparison",
    "experiment_id",
    "latest_trial_run_id",
    "log_comparison",
    "log_files_run",
    "log_study_outcome",
    "open_comparison",
    "run_tags",
    "save_runs_view",
    "study_uid",
    "tracking_hint",
    "ui_url",
]
