"""MLflow logging of a comparison (``ncp-hpo compare``) through ``MlflowClient``.

What is logged (after the studies ran, from what the studies hold, so a resumed comparison
logs complete histories):

* a **parent run** per comparison (output folder x benchmark), tagged
  ``ncp_hpo.role=compare``; params: benchmark, mode, objective, lambda, samplers, trials,
  seeds, budgets; metrics: per sampler the median score at each budget
  (``<sampler>.best_at_<b>``), median regret and median wall time per trial, and the oracle
  fidelity (``oracle.spearman`` ...) in surrogate mode; artifacts: ``summary.md``,
  ``summary.csv``, ``runs.csv``, ``results.json`` and the PNG plots.
* a **child run** per sampler x seed (tag ``mlflow.parentRunId``, run name = the study
  name); params: sampler, seed, budget, lambda, benchmark, objective, mode; metrics: the
  score after every trial (``best_so_far``, or ``hypervolume`` for two objectives, with
  ``step`` = trial index), each trial's objective value(s) (``value`` / ``value_<i>``),
  and the final figures (``final.best``, ``final.regret``, ``final.wall_s_per_trial``,
  ``final.n_complete``). Metrics go in ``log_batch`` calls of up to 1,000.

A rerun reuses the parent (found by the tag ``ncp_hpo.compare_key``, a hash of the
resolved output folder and the benchmark) and its children whose logged history has as
many steps as the study has trials; other children are deleted and logged again.

Tracking URI: ``uri`` or MLflow's default (``MLFLOW_TRACKING_URI``, else the local
``sqlite:///mlflow.db`` store in the working directory). An ``http(s)`` URI is probed first
(``GET <uri>/health``, 3 s). If the probe or any MLflow call fails, one
:class:`CompareTrackingWarning` says so and the comparison's files are still written.
"""

from __future__ import annotations

import hashlib
import math
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import NCPWarning

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from ncp_hpo.benchmarks._compare import ComparisonResult

__all__ = ["CompareTrackingWarning", "log_comparison", "log_files_run"]

ROLE_TAG = "ncp_hpo.role"
KEY_TAG = "ncp_hpo.compare_key"
STUDY_TAG = "ncp_hpo.study"
PARENT_TAG = "mlflow.parentRunId"
STEPS_TAG = "ncp_hpo.steps"
_BATCH = 1000


class CompareTrackingWarning(NCPWarning):
    """MLflow tracking is unavailable; the comparison's files are written anyway."""


def _probe(uri: str, timeout: float = 3.0) -> None:
    """Raise if an ``http(s)`` tracking server does not answer ``/health``."""
    if not uri.startswith(("http://", "https://")):
        return
    with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
        if resp.status >= 400:  # pragma: no cover - urlopen raises on 4xx/5xx
            raise OSError(f"HTTP {resp.status}")


def _client(uri: str | None) -> tuple[MlflowClient, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    resolved = uri or mlflow.get_tracking_uri()
    _probe(resolved)
    return MlflowClient(tracking_uri=resolved), resolved


def _experiment_id(client: MlflowClient, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    return str(client.create_experiment(name))


def _batches(items: list[Any], size: int = _BATCH) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _metrics(values: Mapping[str, Any], ts: int, step: int = 0) -> list[Metric]:
    from mlflow.entities import Metric

    return [Metric(k, float(v), ts, step) for k, v in values.items() if _finite(v)]


def _key(result: ComparisonResult) -> str:
    text = f"{result.config.out_dir.resolve()}|{result.info.setting}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def log_comparison(
    result: ComparisonResult, *, uri: str | None = None, experiment: str = "ncp-hpo-compare"
) -> str | None:
    """Log ``result`` (see the module docstring); return the parent run id, or None (with
    one warning) when tracking failed."""
    try:
        return _log(result, uri, experiment)
    except Exception as exc:  # tracking never costs the results
        warnings.warn(
            f"MLflow tracking unavailable ({type(exc).__name__}: {exc}); results are in "
            f"{result.config.out_dir}",
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _log(result: ComparisonResult, uri: str | None, experiment: str) -> str:
    from mlflow.entities import Param, RunTag

    client, _ = _client(uri)
    exp_id = _experiment_id(client, experiment)
    cfg, info = result.config, result.info
    key = _key(result)
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'compare' and tags.`{KEY_TAG}` = '{key}'",
        max_results=100,
    )
    now = int(time.time() * 1000)
    params = {
        "benchmark": info.setting,
        "mode": info.mode,
        "objective": cfg.objective,
        "lam": cfg.lam,
        "samplers": ",".join(cfg.samplers),
        "trials": cfg.trials,
        "seeds": cfg.seeds,
        "budgets": ",".join(map(str, cfg.budgets)),
    }
    wanted = {k: str(v) for k, v in params.items()}
    # reuse the parent of an earlier call with the same folder and parameters; MLflow
    # params are immutable, so other parameters (more trials, seeds ...) get a new parent
    reuse = [r for r in found if r.data.params == wanted]
    if reuse:
        parent_id = reuse[0].info.run_id
    else:
        parent = client.create_run(
            exp_id,
            run_name=f"compare-{info.setting}",
            tags={ROLE_TAG: "compare", KEY_TAG: key, "ncp_hpo.out": str(cfg.out_dir.resolve())},
        )
        parent_id = parent.info.run_id
        client.log_batch(parent_id, params=[Param(k, v) for k, v in wanted.items()])
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
    for chunk in _batches(_metrics(summary, now)):
        client.log_batch(parent_id, metrics=chunk)
    client.set_tag(parent_id, "ncp_hpo.optimum", str(info.optimum))

    children = {
        r.data.tags.get(STUDY_TAG): r
        for r in client.search_runs(
            [exp_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=5000
        )
    }
    score_name = "hypervolume" if info.n_objectives == 2 else "best_so_far"
    for run in result.runs:
        prev = children.get(run.study_name)
        if prev is not None:
            if prev.data.tags.get(STEPS_TAG) == str(run.n):
                continue
            client.delete_run(prev.info.run_id)
        child = client.create_run(
            exp_id,
            run_name=run.study_name,
            tags={PARENT_TAG: parent_id, STUDY_TAG: run.study_name, ROLE_TAG: "compare-study"},
        )
        cid = child.info.run_id
        cparams = [
            Param("sampler", run.sampler),
            Param("seed", str(run.seed)),
            Param("budget", str(cfg.trials)),
            Param("lambda", str(cfg.lam)),
            Param("benchmark", info.setting),
            Param("objective", cfg.objective),
            Param("mode", info.mode),
        ]
        mets: list[Any] = []
        for i in range(run.n):
            ts = run.timestamps_ms[i] or now
            vals: dict[str, Any] = {score_name: float(run.scores[i])}
            if run.values.shape[1] == 1:
                vals["value"] = float(run.values[i, 0])
            else:
                vals |= {f"value_{j}": float(v) for j, v in enumerate(run.values[i])}
            mets += _metrics(vals, ts, step=i)
        final = {
            "final.best": float(run.scores[-1]) if run.n else float("nan"),
            "final.regret": (info.optimum - float(run.scores[-1]))
            if info.optimum is not None and run.n
            else float("nan"),
            "final.wall_s_per_trial": float(_median(run.wall_s)),
            "final.n_complete": float(run.n),
            "final.n_failed": float(run.n_failed),
        }
        mets += _metrics(final, now, step=max(run.n - 1, 0))
        client.log_batch(cid, params=cparams)
        for chunk in _batches(mets):
            client.log_batch(cid, metrics=chunk)
        client.log_batch(cid, tags=[RunTag(STEPS_TAG, str(run.n))])
        client.set_terminated(cid, "FINISHED")
    for path in result.files.values():
        client.log_artifact(parent_id, str(path))
    client.set_terminated(parent_id, "FINISHED" if not result.errors else "FAILED")
    return parent_id


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
        run = client.create_run(exp_id, run_name=run_name, tags={ROLE_TAG: "paper-protocol"})
        rid = run.info.run_id
        client.log_batch(
            rid,
            params=[Param(k, str(v)) for k, v in params.items()],
            metrics=_metrics(metrics, int(time.time() * 1000)),
        )
        for path in files.values():
            client.log_artifact(rid, str(path))
        client.set_terminated(rid, "FINISHED")
        return str(rid)
    except Exception as exc:
        warnings.warn(
            f"MLflow tracking unavailable ({type(exc).__name__}: {exc}); results are on disk",
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _median(x: Any) -> float:
    import numpy as np

    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")
