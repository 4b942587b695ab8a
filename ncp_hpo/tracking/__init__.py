"""What every MLflow run of ncp-hpo shares: the experiment kind and the run-context tags.

Training trials and studies (:mod:`ncp_hpo.trainers.tracking`) and comparisons
(:mod:`ncp_hpo.benchmarks._tracking`) create experiments and runs through
:func:`experiment_id` and :func:`run_tags`, so that

* experiments carry ``mlflow.experimentKind = custom_model_development``: MLflow 3's UI
  opens them on the runs table ("Model training"), not on the GenAI overview;
* runs carry MLflow's usual context tags (``mlflow.user``, ``mlflow.source.name``,
  ``mlflow.source.type``, and ``mlflow.source.git.commit`` when the code runs from a git
  checkout), resolved by MLflow's run-context registry as ``mlflow.start_run`` does; runs are
  made with ``MlflowClient.create_run``, which does not add them itself;
* links printed for the user (:func:`ui_url`) open MLflow's "Model training" pages, which
  MLflow 3.17 otherwise decides by a GenAI-first switch kept in the browser.
"""

from ncp_hpo.tracking._context import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    experiment_id,
    run_tags,
    ui_url,
)

__all__ = ["EXPERIMENT_KIND", "EXPERIMENT_KIND_TAG", "experiment_id", "run_tags", "ui_url"]
