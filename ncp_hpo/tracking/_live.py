"""The live MLflow child run of one ``compare`` study: an Optuna callback that logs each
COMPLETE trial while the study runs (:class:`LiveStudyRun`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from ncp_hpo._secrets import redact
from ncp_hpo.exceptions import CompareTrackingWarning
from ncp_hpo.tracking._comparison import (
    PARENT_TAG,
    STEPS_TAG,
    STUDY_TAG,
    LiveTarget,
    _child_tags,
    _metrics,
    _no_run_urls,
)
from ncp_hpo.tracking._connect import mlflow_client
from ncp_hpo.tracking._context import run_tags
from ncp_hpo.tracking._verdict import child_run_name

__all__ = ["LiveStudyRun"]


class LiveStudyRun:
    """The child run of one sampler x seed study, open while the study runs.

    An Optuna callback: each COMPLETE trial adds ``value`` (``value_<i>`` for several
    objectives) and, for one objective, ``best_so_far`` at ``step`` = its index among the
    study's complete trials, stamped with the trial's completion time. A resumed study's
    earlier trials are logged first (:meth:`replay`). An MLflow failure costs one warning
    and the rest of the live logging, never a trial.
    """

    def __init__(
        self, target: LiveTarget, *, study_name: str, params: Mapping[str, Any], maximize: bool
    ) -> None:
        from mlflow.entities import Param

        self._client = mlflow_client(target.uri)
        self._maximize = maximize
        self._best: float | None = None
        self.steps = 0
        earlier = self._client.search_runs(
            [target.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{target.parent_id}' and "
            f"tags.`{STUDY_TAG}` = '{study_name}'",
            max_results=100,
        )
        for run in earlier:  # its history is logged again, from the study
            self._client.delete_run(run.info.run_id)
        tags = _child_tags(target.parent_id, study_name, params.get("sampler"), params.get("seed"))
        name = (
            child_run_name(params["sampler"], params["seed"])
            if "sampler" in params and "seed" in params
            else study_name
        )
        run = self._client.create_run(target.experiment_id, run_name=name, tags=run_tags(tags))
        self.run_id: str | None = str(run.info.run_id)
        self._client.log_batch(self.run_id, params=[Param(k, redact(v)) for k, v in params.items()])

    def replay(self, trials: Iterable[Any]) -> None:
        """Log already finished trials (a resumed study), in trial-number order."""
        for t in sorted(trials, key=lambda t: t.number):
            self._log(t)

    def __call__(self, study: Any, trial: Any) -> None:
        self._log(trial)

    def _log(self, trial: Any) -> None:
        from optuna.trial import TrialState

        if self.run_id is None or trial.state != TrialState.COMPLETE or trial.values is None:
            return
        values = [float(v) for v in trial.values]
        vals: dict[str, float] = (
            {"value": values[0]}
            if len(values) == 1
            else {f"value_{j}": v for j, v in enumerate(values)}
        )
        if len(values) == 1 and math.isfinite(values[0]):
            v = values[0]
            if self._best is None or (v > self._best if self._maximize else v < self._best):
                self._best = v
        if len(values) == 1 and self._best is not None:
            vals["best_so_far"] = self._best
        done = trial.datetime_complete
        ts = int(done.timestamp() * 1000) if done else int(time.time() * 1000)
        self._call(lambda rid: self._client.log_batch(rid, metrics=_metrics(vals, ts, self.steps)))
        self.steps += 1

    def close(self, status: str = "FINISHED") -> None:
        """Record how many steps were logged and end the run (real end time)."""
        from mlflow.entities import RunTag

        self._call(
            lambda rid: self._client.log_batch(rid, tags=[RunTag(STEPS_TAG, str(self.steps))])
        )
        with _no_run_urls():  # one "View run" line per study would bury the progress bar
            self._call(lambda rid: self._client.set_terminated(rid, status))
        self.run_id = None

    def _call(self, fn: Any) -> None:
        if self.run_id is None:
            return
        try:
            fn(self.run_id)
        except Exception as exc:  # tracking never costs a trial
            warnings.warn(
                redact(
                    f"MLflow live logging stopped ({type(exc).__name__}: {exc}); the study "
                    "goes on and is logged when the comparison ends"
                ),
                CompareTrackingWarning,
                stacklevel=2,
            )
            self.run_id = None
