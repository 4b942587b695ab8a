"""MLflow tracking of training trials: one run per trial, nested under the study's run.

:class:`MLflowTracker` talks to MLflow through an explicit ``MlflowClient`` (never the
fluent ``mlflow.start_run`` stack, whose active-run state is process-global), so several
trials may log from threads at once.

What a trial run holds:

* **params**: the 27 named code dimensions (``i1`` ... ``o1``), ``code`` (the upstream string),
  ``task``, ``sampler``, and the training settings passed in ``params``;
* **metrics**: every per-epoch value with ``step=epoch`` (``train_loss``, ``val_loss``, the
  task metrics, ``lr``, ``epoch_time_s``, ...) and the final ``final.<metric>`` values,
  ``macs``, ``flops``, ``params``, ``macs_analytic``, ``params_analytic``, ``wall_time_s``,
  ``samples_per_s``;
* **tags**: ``mlflow.parentRunId`` (the study's run), ``ncp_hpo.study``, ``ncp_hpo.trial``
  (the trial number), ``ncp_hpo.role`` (``trial``/``study``), ``ncp_hpo.state`` (``COMPLETE``,
  ``PRUNED`` or ``FAIL``), ``ncp_hpo.device``;
* **artifacts**: ``model/state_dict.pt`` (``torch.save`` of the trained weights),
  ``architecture.png`` (:func:`~ncp_hpo.trainers.archplot.plot_architecture`) and
  ``result.json`` (the :class:`~ncp_hpo.trainers.TrainResult` without the model).

The study's parent run is found by its tags (``ncp_hpo.role=study``, ``ncp_hpo.study=<name>``)
or created on first use, so a resumed study keeps adding children to the same parent.

Tracking URI: ``None`` uses MLflow's default (``MLFLOW_TRACKING_URI``, else the local
``sqlite:///mlflow.db`` store in the working directory); any URI MLflow accepts works. An
``http(s)://USER:PASSWORD@HOST:PORT`` URI works too: its credentials go to MLflow as
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` and in the health check's
basic-auth header, never into a host name, a message or a record
(:mod:`ncp_hpo.tracking._connect`).

**Unreachable servers never cost a trial.** Before each trial run an ``http(s)`` URI is
probed with ``GET <uri>/health`` (``probe_timeout`` seconds, no retries). If that or any
MLflow call fails, the tracker emits one :class:`TrackingWarning` (once per tracker), the
trial trains and returns normally and its results stay in the Optuna storage (trial user
attributes, see :func:`ncp_hpo.trainers.train_code`). The next trial probes again. Note
that a server that dies in the middle of a call is subject to MLflow's own HTTP retries
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT``; lower them to fail
faster).
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact, remember_url
from ncp_hpo.exceptions import NCPWarning, TrackingWarning
from ncp_hpo.tracking._connect import is_http, mlflow_client, probe_health, shown_uri
from ncp_hpo.tracking._context import run_tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.trainers import TrainResult

__all__ = ["MLflowTracker", "TrialRun"]

ROLE_TAG = "ncp_hpo.role"
STUDY_TAG = "ncp_hpo.study"
TRIAL_TAG = "ncp_hpo.trial"
STATE_TAG = "ncp_hpo.state"
STUDY_UID_TAG = "ncp_hpo.study_uid"
PARENT_TAG = "mlflow.parentRunId"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class TrialRun:
    """The MLflow run of one trial (inactive when tracking is unavailable).

    Every method is safe to call when inactive (it does nothing) and never raises because
    of MLflow: a failure deactivates the run and warns once through the tracker.
    """

    def __init__(self, tracker: MLflowTracker, run_id: str | None) -> None:
        self._tracker = tracker
        self.run_id = run_id

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.run_id is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # any MLflow or network error: keep training
            self._tracker._unavailable(f"{what} failed: {exc!r}")
            self.run_id = None
            return None

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the finite numeric entries of ``metrics`` (at ``step``)."""
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        ts = int(time.time() * 1000)
        batch = [
            Metric(key=k, value=float(v), timestamp=ts, step=step or 0)
            for k, v in metrics.items()
            if _finite(v)
        ]
        for i in range(0, len(batch), 1000):
            self._call(
                "logging metrics",
                self._tracker.client.log_batch,
                self.run_id,
                metrics=batch[i : i + 1000],
            )

    def log_epoch(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Per-epoch metrics at ``step=epoch`` (the ``epoch`` entry itself is skipped);
        fits :data:`ncp_hpo.trainers.EpochCallback`."""
        self.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        if self.run_id is None:
            return
        self._call(
            "setting tags",
            self._tracker.client.log_batch,
            self.run_id,
            tags=[RunTag(k, redact(v)) for k, v in tags.items()],
        )

    def log_result(self, result: TrainResult, *, task: str | None = None) -> None:
        """Final metrics, measured and analytic cost, and the artifacts of ``result``."""
        if self.run_id is None:
            return
        final = {f"final.{k}": v for k, v in result.metrics.items()}
        cost = {
            "macs": result.macs,
            "flops": result.flops,
            "params": result.params,
            "macs_analytic": result.macs_analytic,
            "params_analytic": result.params_analytic,
            "wall_time_s": result.wall_time_s,
            "samples_per_s": result.samples_per_s,
            "epochs_completed": result.epochs,
        }
        self.log_metrics({**final, **cost}, step=result.epochs)
        self.set_tags(
            {
                "ncp_hpo.device": result.device,
                "ncp_hpo.amp": result.amp or "off",
                "ncp_hpo.diverged": result.diverged,
            }
        )
        self._call("logging artifacts", self._log_artifacts, result, task or result.task)

    def _log_artifacts(self, result: TrainResult, task: str) -> None:
        import torch

        client = self._tracker.client
        assert self.run_id is not None
        with tempfile.TemporaryDirectory(prefix="ncp-hpo-") as tmp:
            d = Path(tmp)
            (d / "result.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
            client.log_artifact(self.run_id, str(d / "result.json"))
            if self._tracker.log_model and result.model is not None:
                (d / "model").mkdir()
                state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
                torch.save(state, d / "model" / "state_dict.pt")
                client.log_artifacts(self.run_id, str(d / "model"), artifact_path="model")
            if self._tracker.log_architecture and result.code is not None:
                from ncp_hpo.trainers.archplot import plot_architecture

                try:
                    plot_architecture(result.code, d / "architecture.png", task=task)
                except Exception as exc:  # a code of another space: no picture
                    warnings.warn(f"no architecture picture: {exc}", NCPWarning, stacklevel=2)
                else:
                    client.log_artifact(self.run_id, str(d / "architecture.png"))


class MLflowTracker:
    """Log training trials to MLflow, one nested run per trial.

    Example:
        >>> tracker = MLflowTracker("http://127.0.0.1:5000", experiment="ncp-digits")
        >>> with tracker.trial_run(code=code, task="cls", trial=trial) as run:  # doctest: +SKIP
        ...     result = fit(model, task, train, val, callback=run.log_epoch)
        ...     run.log_result(result)

    :func:`ncp_hpo.trainers.train_code` does this for you when given ``tracker=``.

    Args:
        tracking_uri: any MLflow tracking URI; ``None`` is MLflow's default. Credentials in
            an ``http(s)`` URI's userinfo are used, never shown (attribute ``tracking_uri``
            holds the URI without them).
        experiment: experiment name (created if missing).
        parent_run_name: name of the parent run when no study name is known (standalone
            trials are grouped under it); ``None`` leaves such runs top-level.
        log_model: log the trained ``state_dict`` as an artifact.
        log_architecture: log a PNG of the architecture.
        probe_timeout: seconds to wait for ``GET <uri>/health`` of an HTTP server.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "ncp-hpo",
        parent_run_name: str | None = None,
        log_model: bool = True,
        log_architecture: bool = True,
        probe_timeout: float = 2.0,
    ) -> None:
        remember_url(tracking_uri)
        self._uri = tracking_uri  # as given, credentials included: for connecting only
        self.tracking_uri = None if tracking_uri is None else shown_uri(tracking_uri)
        self.experiment = experiment
        self.parent_run_name = parent_run_name
        self.log_model = log_model
        self.log_architecture = log_architecture
        self.probe_timeout = probe_timeout
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._parents: dict[str, str] = {}
        self._uids: dict[str, str] = {}
        self._lock = threading.Lock()
        self.warned = False
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"MLflowTracker(tracking_uri={self.tracking_uri!r}, experiment={self.experiment!r})"

    # -- connection ------------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self._uri)
        return self._client

    def _connect_uri(self) -> str:
        """The URI to connect to, credentials included (never shown)."""
        if self._uri is not None:
            return self._uri
        import mlflow

        uri = str(mlflow.get_tracking_uri())
        remember_url(uri)
        return uri

    @property
    def resolved_uri(self) -> str:
        """The tracking URI in use (MLflow's default when none was given), as shown and
        recorded: without userinfo, other secrets masked."""
        return shown_uri(self._connect_uri())

    def _unavailable(self, reason: str) -> None:
        reason = redact(reason)
        self.last_error = reason
        with self._lock:
            if self.warned:
                return
            self.warned = True
        warnings.warn(
            f"MLflow tracking at {self.resolved_uri} is unavailable ({reason}). Training goes "
            "on; results stay in the returned TrainResult and the Optuna storage (trial user "
            "attributes) but are not logged to MLflow. This warning is shown once.",
            TrackingWarning,
            stacklevel=4,
        )

    def reachable(self) -> bool:
        """Probe the tracking store: ``GET /health`` for HTTP(S), else open the experiment."""
        uri = self._connect_uri()
        if is_http(uri):
            try:
                probe_health(uri, self.probe_timeout)
            except (OSError, ValueError) as exc:
                self._unavailable(f"GET /health: {exc}")
                return False
        try:
            self.experiment_id()
        except Exception as exc:
            self._unavailable(f"opening experiment {self.experiment!r}: {exc!r}")
            return False
        return True

    def experiment_id(self) -> str:
        """The experiment's id, created on first use."""
        if self._experiment_id is None:
            from ncp_hpo.tracking._context import experiment_id

            self._experiment_id = experiment_id(self.client, self.experiment)
        return self._experiment_id

    # -- study (parent) runs ---------------------------------------------------------------
    def parent_run_id(
        self, study_name: str, *, sampler: str | None = None, uid: str | None = None
    ) -> str:
        """The study's parent run: found by tags, else created (left RUNNING until
        :meth:`close` or the end of :meth:`study_run`).

        Args:
            study_name: the study's name (tag ``ncp_hpo.study``, and the run's name).
            sampler: the sampler's name, a tag of a new run.
            uid: the study's identity (tag ``ncp_hpo.study_uid``; see
                :func:`ncp_hpo.tracking.study_uid`). With it, only a run of that study is
                reused, so a new study that shares an old one's name (another storage, or
                the old file deleted) gets a run of its own. Without it (``None``, and none
                given to :meth:`study_run` before), runs are grouped by name.
        """
        with self._lock:
            if study_name in self._parents:
                return self._parents[study_name]
            uid = uid or self._uids.get(study_name)
        exp = self.experiment_id()
        wanted = f"tags.`{ROLE_TAG}` = 'study' and tags.`{STUDY_TAG}` = '{_quote(study_name)}'"
        if uid:
            wanted += f" and tags.`{STUDY_UID_TAG}` = '{_quote(uid)}'"
        found = self.client.search_runs(
            [exp], filter_string=wanted, max_results=1, order_by=["attributes.start_time ASC"]
        )
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {ROLE_TAG: "study", STUDY_TAG: study_name}
            if sampler:
                tags["ncp_hpo.sampler"] = sampler
            if uid:
                tags[STUDY_UID_TAG] = uid
            run = self.client.create_run(exp, run_name=study_name, tags=run_tags(tags))
            run_id = run.info.run_id
        with self._lock:
            self._parents.setdefault(study_name, run_id)
            return self._parents[study_name]

    @contextmanager
    def study_run(
        self, study_name: str, *, sampler: str | None = None, uid: str | None = None
    ) -> Iterator[str | None]:
        """Open the study's parent run for the block; yields its id (``None`` if unavailable).

        Trials of the study logged inside (or outside) the block nest under it; the parent
        is marked FINISHED (FAILED on an exception) at the end. ``uid``: as in
        :meth:`parent_run_id`, kept for trial runs that open the parent later (MLflow
        back mid-study).
        """
        run_id: str | None = None
        if uid:
            with self._lock:
                self._uids[study_name] = uid
        if self.reachable():
            try:
                run_id = self.parent_run_id(study_name, sampler=sampler, uid=uid)
            except Exception as exc:
                self._unavailable(f"creating the study run: {exc!r}")
        status = "FINISHED"
        try:
            yield run_id
        except BaseException:
            status = "FAILED"
            raise
        finally:
            if run_id is not None:
                self._terminate(run_id, status)
                with self._lock:
                    self._parents.pop(study_name, None)

    def close(self) -> None:
        """Mark the parent runs this tracker opened lazily as FINISHED."""
        with self._lock:
            parents, self._parents = dict(self._parents), {}
        for run_id in parents.values():
            self._terminate(run_id, "FINISHED")

    def _terminate(self, run_id: str, status: str) -> None:
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception as exc:
            self._unavailable(f"closing run {run_id}: {exc!r}")

    # -- trial runs ------------------------------------------------------------------------
    @contextmanager
    def trial_run(
        self,
        *,
        code: Any = None,
        task: str | None = None,
        trial: Any = None,
        study_name: str | None = None,
        sampler: str | None = None,
        params: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Iterator[TrialRun]:
        """A run for one trial; yields a :class:`TrialRun` (inactive if MLflow is unavailable).

        Args:
            code: the architecture (logged as named dimensions and the code string).
            task: the task key.
            trial: an Optuna trial: gives the study name, trial number and sampler, and gets
                the run id as user attribute ``mlflow_run_id``.
            study_name, sampler: override what ``trial`` gives.
            params: more params (training settings).
            run_name: default ``trial-<number>`` (or MLflow's random name without a trial).

        The run ends FINISHED, or KILLED with ``ncp_hpo.state=PRUNED`` when
        ``optuna.TrialPruned`` passes through, or FAILED on another exception (re-raised).
        """
        number = getattr(trial, "number", None)
        study = getattr(trial, "study", None)
        if study_name is None and study is not None:
            study_name = getattr(study, "study_name", None)
        if sampler is None and study is not None:
            sampler = type(getattr(study, "sampler", None)).__name__
        handle = TrialRun(self, None)
        if self.reachable():
            try:
                handle.run_id = self._create_trial_run(
                    code=code,
                    task=task,
                    number=number,
                    study_name=study_name,
                    sampler=sampler,
                    params=params,
                    run_name=run_name,
                )
            except Exception as exc:
                self._unavailable(f"creating the trial run: {exc!r}")
        if handle.run_id is not None and trial is not None:
            try:
                trial.set_user_attr("mlflow_run_id", handle.run_id)
            except Exception:  # e.g. a FixedTrial without storage
                pass
        state, status = "COMPLETE", "FINISHED"
        try:
            yield handle
        except BaseException as exc:
            pruned = type(exc).__name__ == "TrialPruned"
            state, status = ("PRUNED", "KILLED") if pruned else ("FAIL", "FAILED")
            raise
        finally:
            if handle.run_id is not None:
                handle.set_tags({STATE_TAG: state})
                if handle.run_id is not None:
                    self._terminate(handle.run_id, status)

    def _create_trial_run(
        self,
        *,
        code: Any,
        task: str | None,
        number: int | None,
        study_name: str | None,
        sampler: str | None,
        params: Mapping[str, Any] | None,
        run_name: str | None,
    ) -> str:
        from mlflow.entities import Param

        exp = self.experiment_id()
        tags: dict[str, str] = {ROLE_TAG: "trial"}
        group = study_name or self.parent_run_name
        if group is not None:
            tags[PARENT_TAG] = self.parent_run_id(group, sampler=sampler)
            tags[STUDY_TAG] = group
        if number is not None:
            tags[TRIAL_TAG] = str(number)
        if run_name is None and number is not None:
            run_name = f"trial-{number}"
        run = self.client.create_run(exp, run_name=run_name, tags=run_tags(tags))
        values: dict[str, Any] = {}
        if code is not None:
            values.update(_code_params(code))
        if task is not None:
            values["task"] = task
        if sampler is not None:
            values["sampler"] = sampler
        values.update(params or {})
        plist = [Param(str(k), redact(v)[:6000]) for k, v in values.items()]
        for i in range(0, len(plist), 100):
            self.client.log_batch(run.info.run_id, params=plist[i : i + 100])
        return str(run.info.run_id)


def _quote(s: str) -> str:
    return s.replace("'", "\\'")


def _code_params(code: Any) -> dict[str, Any]:
    """Named dimensions and the code string of a multi-resolution code (else its repr)."""
    from ncp_hpo.exceptions import InvalidCodeError
    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    try:
        vec = space.decode(code) if isinstance(code, str) else space.validate(code)
        return {**space.to_params(vec), "code": space.encode(vec)}
    except InvalidCodeError:
        return {"code": str(code)}
