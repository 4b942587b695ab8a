"""MLflow logging of a comparison (``ncp-hpo compare``) through ``MlflowClient``.

Logged live: :func:`open_comparison` creates (or reopens) the parent run before any study
starts; each sampler x seed study opens its child run (:class:`LiveStudyRun`, in the worker
process that runs it) when it starts, logs every trial as it completes and closes the run
when the study ends, so runs have real start and end times and can be watched in the UI.
After the studies, :func:`log_comparison` adds the summary to the parent, fills in what the
live children could not know (the final figures, the hypervolume of two-objective runs) and
logs complete histories for studies that ran without live tracking.

What is logged:

* a **parent run** per comparison (output folder x benchmark), tagged
  ``ncp_hpo.role=compare``; params: benchmark, mode, objective, flops_weight, samplers, trials,
  seeds, budgets; metrics: per sampler the median score at each budget
  (``<sampler>.best_at_<b>``), median regret and median wall time per trial, and the oracle
  fidelity (``oracle.spearman`` ...) in surrogate mode; artifacts: ``summary.md``,
  ``summary.csv``, ``runs.csv``, ``results.json`` and the PNG plots.
* a **child run** per sampler x seed (tag ``mlflow.parentRunId``, tags ``sampler``,
  ``seed``, run name ``<sampler> seed <k>``); params: sampler, seed, budget, flops_weight,
  benchmark, objective, mode; metrics: the score after every trial (``best_so_far``, or
  ``hypervolume`` for two objectives, with ``step`` = trial index), each trial's objective
  value(s) (``value`` / ``value_<i>``), and the final figures (``best``, ``final.best``,
  ``final.regret``, ``final.wall_s_per_trial``, ``final.n_complete``). Metrics go in
  ``log_batch`` calls of up to 1,000.
* who won (:mod:`ncp_hpo.tracking._verdict`): the parent's description (verdict line and
  summary table), tags ``winner`` and ``verdict``, metrics ``<sampler>.median_best``; one
  top-level summary run per sampler (``ncp_hpo.kind=sampler-summary``).

A rerun reuses the parent (found by the tag ``ncp_hpo.compare_key``, a hash of the
resolved output folder and the benchmark) and its children whose logged history has as
many steps as the study has trials; other children are deleted and logged again.

Tracking URI: ``uri`` or MLflow's default (``MLFLOW_TRACKING_URI``, else the local
``sqlite:///mlflow.db`` store in the working directory); credentials in an ``http(s)`` URI
are handled by :mod:`ncp_hpo.tracking._connect` (never shown). An ``http(s)`` URI is probed
first (``GET <uri>/health``, 3 s). If the probe or any MLflow call fails, one
:class:`CompareTrackingWarning` says so and the comparison's files are still written.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact
from ncp_hpo.exceptions import CompareTrackingWarning
from ncp_hpo.tracking._connect import mlflow_client, probe_health
from ncp_hpo.tracking._context import experiment_id as _experiment_id
from ncp_hpo.tracking._context import run_tags, save_runs_view
from ncp_hpo.tracking._verdict import child_run_name, log_sampler_summaries, parent_outcome

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from ncp_hpo.experiments.compare import (
        BenchmarkInfo,
        CompareConfig,
        ComparisonResult,
        RunRecord,
    )

__all__ = [
    "LiveTarget",
    "child_params",
    "end_comparison",
    "log_comparison",
    "log_files_run",
    "open_comparison",
]

ROLE_TAG = "ncp_hpo.role"
KEY_TAG = "ncp_hpo.compare_key"
STUDY_TAG = "ncp_hpo.study"
PARENT_TAG = "mlflow.parentRunId"
STEPS_TAG = "ncp_hpo.steps"
_BATCH = 1000
_NO_URLS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


def _client(uri: str | None) -> tuple[MlflowClient, str]:
    """A client for ``uri`` (probed first when ``http(s)``) and the resolved URI (with its
    credentials: for :func:`mlflow_client` only, never shown)."""
    import mlflow

    resolved = uri or str(mlflow.get_tracking_uri())
    probe_health(resolved, 3.0)
    return mlflow_client(resolved), resolved


def _batches(items: list[Any], size: int = _BATCH) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _metrics(values: Mapping[str, Any], ts: int, step: int = 0) -> list[Metric]:
    from mlflow.entities import Metric

    return [Metric(k, float(v), ts, step) for k, v in values.items() if _finite(v)]


def _key(config: CompareConfig, info: BenchmarkInfo) -> str:
    text = f"{config.out_dir.resolve()}|{info.setting}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parent_params(config: CompareConfig, info: BenchmarkInfo) -> dict[str, str]:
    params = {
        "benchmark": info.setting,
        "mode": info.mode,
        "objective": config.objective,
        "flops_weight": config.flops_weight,
        "samplers": ",".join(config.samplers),
        "trials": config.trials,
        "seeds": config.seeds,
        "budgets": ",".join(map(str, config.budgets)),
    }
    budget = getattr(info, "budget", None)
    if budget:  # a budgeted comparison (--max-flops): the absolute cap and how it was given
        params["max_flops"] = f"{budget['max_flops']:g} {budget.get('unit', '')}".strip()
        params["max_flops_given"] = budget.get("given")
    if config.prior is not None:  # the setting the +prior samplers' predictor was fitted on
        params["prior"] = config.prior
    return {k: str(v) for k, v in params.items()}


def _parent(client: MlflowClient, exp_id: str, config: CompareConfig, info: BenchmarkInfo) -> str:
    """The comparison's parent run: an earlier call's with the same folder and parameters
    (MLflow params are immutable, so other parameters get a new parent), else a new one."""
    from mlflow.entities import Param

    key = _key(config, info)
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'compare' and tags.`{KEY_TAG}` = '{key}'",
        max_results=100,
    )
    wanted = {k: redact(v) for k, v in _parent_params(config, info).items()}  # as logged
    reuse = [r for r in found if r.data.params == wanted]
    if reuse:
        return str(reuse[0].info.run_id)
    tags = {ROLE_TAG: "compare", KEY_TAG: key, "ncp_hpo.out": str(config.out_dir.resolve())}
    parent = client.create_run(exp_id, run_name=f"compare-{info.setting}", tags=run_tags(tags))
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in wanted.items()])
    return str(parent.info.run_id)


@dataclass(frozen=True)
class LiveTarget:
    """Where the studies of a comparison log their child runs (picklable for workers)."""

    uri: str = field(repr=False)  # may hold credentials: never shown
    experiment_id: str
    parent_id: str


def open_comparison(
    config: CompareConfig, info: BenchmarkInfo, *, uri: str | None, experiment: str
) -> LiveTarget | None:
    """Open (RUNNING) the comparison's parent run before the studies start; None with one
    :class:`CompareTrackingWarning` when MLflow is unavailable."""
    try:
        client, resolved = _client(uri)
        exp_id = _experiment_id(client, experiment)
        parent_id = _parent(client, exp_id, config, info)
        client.update_run(parent_id, status="RUNNING")
        return LiveTarget(resolved, exp_id, parent_id)
    except Exception as exc:
        warnings.warn(
            redact(
                f"MLflow tracking unavailable ({type(exc).__name__}: {exc}); results are in "
                f"{config.out_dir}"
            ),
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


@contextlib.contextmanager
def _no_run_urls() -> Iterator[None]:
    """Keep MLflow from printing a "View run ... at" line when a child run ends."""
    old = os.environ.get(_NO_URLS)
    os.environ[_NO_URLS] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_NO_URLS, None)
        else:
            os.environ[_NO_URLS] = old


BEST_VIEW = "ncp-hpo-best"
"""The key of the comparison experiment's saved runs-table view: each summary run's
``median_best`` and each study's ``best`` as columns, best first (MLflow's default view
shows no metric column)."""


def end_comparison(target: LiveTarget, status: str) -> None:
    """End the parent run of a comparison that stopped before its summary was logged."""
    with contextlib.suppress(Exception), _no_run_urls():
        mlflow_client(target.uri).set_terminated(target.parent_id, status)


def log_comparison(
    result: ComparisonResult, *, uri: str | None = None, experiment: str = "ncp-hpo-compare"
) -> str | None:
    """Log ``result`` (see the module docstring); return the parent run id, or None (with
    one warning) when tracking failed."""
    try:
        return _log(result, uri, experiment)
    except Exception as exc:  # tracking never costs the results
        warnings.warn(
            redact(
                f"MLflow tracking unavailable ({type(exc).__name__}: {exc}); results are in "
                f"{result.config.out_dir}"
            ),
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _log(result: ComparisonResult, uri: str | None, experiment: str) -> str:
    client, _ = _client(uri)
    exp_id = _experiment_id(client, experiment)
    parent_id = _parent(client, exp_id, result.config, result.info)
    _log_parent_summary(client, parent_id, result)
    children = {
        r.data.tags.get(STUDY_TAG): r
        for r in client.search_runs(
            [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=5000
        )
    }
    for run in result.runs:
        _log_child(client, exp_id, parent_id, result, run, children.get(run.study_name))
    with _no_run_urls():
        log_sampler_summaries(client, exp_id, parent_id, result)
    save_runs_view(
        client,
        exp_id,
        BEST_VIEW,
        "ncp-hpo: best per sampler",
        [
            "metrics.`median_best`",
            "metrics.`best`",
            "tags.`sampler`",
            "tags.`seed`",
            "tags.`winner`",
        ],
        order_by="metrics.`median_best`",
    )
    for path in result.files.values():
        client.log_artifact(parent_id, str(path))
    with _no_run_urls():  # the CLI prints its own link, on the Model-training pages
        client.set_terminated(parent_id, "FINISHED" if not result.errors else "FAILED")
    return parent_id


def _log_parent_summary(client: MlflowClient, parent_id: str, result: ComparisonResult) -> None:
    """The parent's metrics (medians per budget ...), its verdict tags and description."""
    from mlflow.entities import RunTag

    cfg, info = result.config, result.info
    summary: dict[str, Any] = {}
    for s, summ in result.summaries.items():
        for b, st in summ.budgets.items():
            summary[f"{s}.best_at_{b}"] = st.median
        if summ.regret is not None:
            summary[f"{s}.regret"] = summ.regret.median
        summary[f"{s}.wall_ms_per_trial"] = summ.wall_ms
        t = summ.tests.get(cfg.trials)
        if t is not None and t.p_value is not None:
            summary[f"{s}.wilcoxon_p_vs_ncp"] = t.p_value
    if info.fidelity:
        for k in ("spearman", "kendall", "mae", "rmse"):
            summary[f"oracle.{k}"] = info.fidelity.get(k)
    summary["elapsed_s"] = result.elapsed_s
    tags, medians = parent_outcome(result)
    summary |= medians
    for chunk in _batches(_metrics(summary, int(time.time() * 1000))):
        client.log_batch(parent_id, metrics=chunk)
    tags["ncp_hpo.optimum"] = str(info.optimum)
    client.log_batch(parent_id, tags=[RunTag(k, redact(v)) for k, v in tags.items()])


def _log_child(
    client: MlflowClient,
    exp_id: str,
    parent_id: str,
    result: ComparisonResult,
    run: RunRecord,
    prev: Any,
) -> None:
    """Complete the child run of ``run`` (``prev``: the run found for its study, if any)."""
    from mlflow.entities import RunTag

    cfg, info = result.config, result.info
    now = int(time.time() * 1000)
    score_name = "hypervolume" if info.n_objectives == 2 else "best_so_far"
    # a child logged live holds the whole history: add only what it could not know
    live = prev is not None and prev.data.tags.get(STEPS_TAG) == str(run.n)
    logged: Mapping[str, Any] = prev.data.metrics if live else {}
    if live:
        cid = prev.info.run_id
    else:
        if prev is not None:
            client.delete_run(prev.info.run_id)
        cid = _new_child(client, exp_id, parent_id, run)
        client.log_batch(cid, params=_child_params(run.sampler, run.seed, cfg, info))
    mets: list[Any] = []
    for i in range(run.n):
        vals: dict[str, Any] = {}
        if score_name not in logged:
            vals[score_name] = float(run.scores[i])
        if not live and run.values.shape[1] == 1:
            vals["value"] = float(run.values[i, 0])
        elif not live:
            vals |= {f"value_{j}": float(v) for j, v in enumerate(run.values[i])}
        mets += _metrics(vals, run.timestamps_ms[i] or now, step=i)
    best = float(run.scores[-1]) if run.n else float("nan")
    final = {
        "best": best,  # the runs table's column: the best found, not the last trial's value
        "final.best": best,
        "final.regret": info.optimum - best if info.optimum is not None else float("nan"),
        "final.wall_s_per_trial": float(_median(run.wall_s)),
        "final.n_complete": float(run.n),
        "final.n_failed": float(run.n_failed),
    }
    final = {k: v for k, v in final.items() if k not in logged}
    mets += _metrics(final, now, step=max(run.n - 1, 0))
    for chunk in _batches(mets):
        client.log_batch(cid, metrics=chunk)
    if not live:
        client.log_batch(cid, tags=[RunTag(STEPS_TAG, str(run.n))])
        with _no_run_urls():
            client.set_terminated(cid, "FINISHED")


def _child_tags(parent_id: str, study_name: str, sampler: Any, seed: Any) -> dict[str, Any]:
    tags = {PARENT_TAG: parent_id, STUDY_TAG: study_name, ROLE_TAG: "compare-study"}
    if sampler is not None and seed is not None:
        tags |= {"sampler": sampler, "seed": seed}
    return tags


def _new_child(client: MlflowClient, exp_id: str, parent_id: str, run: Any) -> str:
    tags = run_tags(_child_tags(parent_id, run.study_name, run.sampler, run.seed))
    name = child_run_name(run.sampler, run.seed)
    return str(client.create_run(exp_id, run_name=name, tags=tags).info.run_id)


def _child_params(sampler: str, seed: int, cfg: CompareConfig, info: BenchmarkInfo) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, redact(v)) for k, v in child_params(sampler, seed, cfg, info).items()]


def child_params(
    sampler: str, seed: int, cfg: CompareConfig, info: BenchmarkInfo
) -> dict[str, Any]:
    """The params of a sampler x seed child run."""
    return {
        "sampler": sampler,
        "seed": seed,
        "budget": cfg.trials,
        "flops_weight": cfg.flops_weight,
        "benchmark": info.setting,
        "objective": cfg.objective,
        "mode": info.mode,
    }


def log_files_run(
    files: Mapping[str, Path],
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    uri: str | None = None,
    experiment: str = "ncp-hpo-compare",
    run_name: str = "paper-protocol",
) -> str | None:
    """Log one run with ``params``, ``metrics`` and ``files`` as artifacts (the paper
    protocol); None with one warning when tracking failed."""
    try:
        from mlflow.entities import Param

        client, _ = _client(uri)
        exp_id = _experiment_id(client, experiment)
        tags = run_tags({ROLE_TAG: "paper-protocol"})
        run = client.create_run(exp_id, run_name=run_name, tags=tags)
        rid = run.info.run_id
        client.log_batch(
            rid,
            params=[Param(k, redact(v)) for k, v in params.items()],
            metrics=_metrics(metrics, int(time.time() * 1000)),
        )
        for path in files.values():
            client.log_artifact(rid, str(path))
        client.set_terminated(rid, "FINISHED")
        return str(rid)
    except Exception as exc:
        warnings.warn(
            redact(
                f"MLflow tracking unavailable ({type(exc).__name__}: {exc}); results are on disk"
            ),
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _median(x: Any) -> float:
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")
