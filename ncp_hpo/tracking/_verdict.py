"""Who won a comparison, readable in MLflow's runs table without a click.

What :func:`ncp_hpo.tracking.log_comparison` adds through this module:

* the **parent run** (the comparison): its description (the ``mlflow.note.content`` tag,
  shown on the run page) holds the verdict line and the summary table of ``summary.md`` in
  Markdown; tags ``winner`` (the sampler with the best median at the final budget, ties
  joined by `` = ``) and ``verdict`` (the verdict line as plain text); metrics
  ``<sampler>.median_best`` (the median over seeds at the final budget).
* each **sampler x seed child run** is named ``<sampler> seed <k>`` and tagged ``sampler``
  and ``seed``; its final score is the metric ``best`` (the runs table shows it, not the
  last trial's ``value``).
* one top-level **summary run per sampler** (no parent, so MLflow's default runs view,
  which collapses children under their parent, shows one row per sampler), named
  ``<sampler> (median of N seeds)`` and tagged ``ncp_hpo.kind=sampler-summary``,
  ``sampler``, ``winner`` (the comparison's, as on the parent: one column reads the same
  in every row) and ``ncp_hpo.compare_parent`` (the parent run's id); metrics
  ``median_best`` and, per trial index, the median over seeds of the score after that
  trial (``best_so_far``, or ``hypervolume`` for two objectives). A rerun replaces them
  (they are deleted and logged again).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from ncp_hpo.tracking._context import run_tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ncp_hpo.experiments.compare import ComparisonResult

__all__ = [
    "KIND_TAG",
    "NOTE_TAG",
    "SUMMARY_KIND",
    "child_run_name",
    "log_sampler_summaries",
    "parent_outcome",
    "winners",
]

NOTE_TAG = "mlflow.note.content"  # MLflow's run description
KIND_TAG = "ncp_hpo.kind"
SUMMARY_KIND = "sampler-summary"
OF_TAG = "ncp_hpo.compare_parent"


def child_run_name(sampler: Any, seed: Any) -> str:
    """``<sampler> seed <k>``: the run name of a sampler x seed child run."""
    return f"{sampler} seed {seed}"


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _final_medians(result: ComparisonResult) -> tuple[int | None, dict[str, float]]:
    """The final budget and each sampler's finite median score there."""
    summaries = result.summaries
    final = max((max(s.budgets) for s in summaries.values() if s.budgets), default=None)
    if final is None:
        return None, {}
    medians = {
        name: float(s.budgets[final].median)
        for name, s in summaries.items()
        if final in s.budgets and math.isfinite(s.budgets[final].median)
    }
    return final, medians


def _higher_is_better(result: ComparisonResult) -> bool:
    info = result.info
    return info.n_objectives == 2 or info.directions[0] == "maximize"


def winners(result: ComparisonResult) -> list[str]:
    """The samplers with the best median at the final budget (several on a tie)."""
    _, medians = _final_medians(result)
    if not medians:
        return []
    pick = max if _higher_is_better(result) else min
    top = pick(medians.values())
    return [name for name, v in medians.items() if v == top]


def _plain(markdown: str) -> str:
    return markdown.replace("**", "").replace("`", "")


def parent_outcome(result: ComparisonResult) -> tuple[dict[str, str], dict[str, float]]:
    """The parent run's tags (description, ``winner``, ``verdict``) and metrics
    (``<sampler>.median_best``). The verdict and the summary table are the comparison's own
    (``result.verdict()``, ``result.summary_lines()``)."""
    line = result.verdict()
    n_seeds = len(result.config.seed_list)
    head = line or "No finished study: no verdict."
    description = "\n".join(
        [
            head,
            "",
            *result.summary_lines(),
            "",
            f"One run per sampler (`{KIND_TAG} = {SUMMARY_KIND}`, named "
            f"`<sampler> (median of {_seeds(n_seeds)})`) holds its median best-so-far curve; "
            "the sampler x seed runs are nested under this one.",
        ]
    )
    tags = {NOTE_TAG: description, "verdict": _plain(head), "winner": " = ".join(winners(result))}
    _, medians = _final_medians(result)
    metrics = {f"{s}.median_best": v for s, v in medians.items()}
    return tags, metrics


def _median_curve(scores: list[Any]) -> list[float]:
    """Per trial index, the median over seeds of the finite scores at that index."""
    import numpy as np

    n = max((len(s) for s in scores), default=0)
    out = []
    for i in range(n):
        vals = [float(s[i]) for s in scores if len(s) > i and math.isfinite(float(s[i]))]
        out.append(float(np.median(vals)) if vals else math.nan)
    return out


def log_sampler_summaries(
    client: MlflowClient, exp_id: str, parent_id: str, result: ComparisonResult
) -> list[str]:
    """Replace the comparison's per-sampler summary runs (see the module docstring); return
    their ids."""
    from mlflow.entities import Metric, Param

    earlier = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{KIND_TAG}` = '{SUMMARY_KIND}' and tags.`{OF_TAG}` = '{parent_id}'",
        max_results=1000,
    )
    for run in earlier:
        client.delete_run(run.info.run_id)
    final, medians = _final_medians(result)
    won = " = ".join(winners(result))
    score = "hypervolume" if result.info.n_objectives == 2 else "best_so_far"
    now = int(time.time() * 1000)
    ids = []
    for sampler in result.summaries:
        runs = [r for r in result.runs if r.sampler == sampler]
        tags = {
            KIND_TAG: SUMMARY_KIND,
            "ncp_hpo.role": "compare-summary",
            OF_TAG: parent_id,
            "sampler": sampler,
            "winner": won,
            NOTE_TAG: f"Median over {_seeds(len(runs))} of `{sampler}` on "
            f"`{result.info.setting}` (comparison run `{parent_id}`).",
        }
        name = f"{sampler} (median of {_seeds(len(runs))})"
        rid = str(client.create_run(exp_id, run_name=name, tags=run_tags(tags)).info.run_id)
        curve = _median_curve([r.scores for r in runs])
        metrics = [Metric(score, v, now, i) for i, v in enumerate(curve) if math.isfinite(v)]
        if sampler in medians:
            metrics.append(Metric("median_best", medians[sampler], now, max(len(curve) - 1, 0)))
        params = {
            "sampler": sampler,
            "benchmark": result.info.setting,
            "seeds": len(runs),
            "budget": final if final is not None else "",
        }
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i : i + 1000])
        client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()])
        client.set_terminated(rid, "FINISHED")
        ids.append(rid)
    return ids
