"""The files of a comparison: ``summary.csv``, ``runs.csv``, ``results.json``,
``summary.md`` and the plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.experiments._files import jsonable, write_csv
from ncp_hpo.experiments.compare._plots import plot_anytime, plot_pareto
from ncp_hpo.experiments.compare._records import score_at
from ncp_hpo.experiments.compare._report import markdown_report

if TYPE_CHECKING:
    from ncp_hpo.experiments.compare._runner import ComparisonResult

__all__ = ["run_rows", "summary_rows", "write_reports"]


def summary_rows(result: ComparisonResult) -> list[dict[str, Any]]:
    """One CSV row per sampler x budget."""
    rows = []
    for s, summ in result.summaries.items():
        for b, stat in summ.budgets.items():
            t = summ.tests.get(b)
            reg = summ.regret if b == result.config.trials else None
            rows.append(
                {
                    "benchmark": result.info.setting,
                    "mode": result.info.mode,
                    "objective": "+".join(result.info.objective_names),
                    "sampler": s,
                    "budget": b,
                    "n_seeds": stat.n,
                    "median": stat.median,
                    "q25": stat.q25,
                    "q75": stat.q75,
                    "mean": stat.mean,
                    "regret_median": None if reg is None else reg.median,
                    "regret_q25": None if reg is None else reg.q25,
                    "regret_q75": None if reg is None else reg.q75,
                    "wall_ms_per_trial_median": summ.wall_ms,
                    "table_share": summ.table_share,
                    "wilcoxon_p_vs_ncp": None if t is None else t.p_value,
                    "wilcoxon_statistic": None if t is None else t.statistic,
                    "wilcoxon_note": "" if t is None else t.note,
                    "wins_vs_ncp": None if t is None else t.wins,
                    "ties_vs_ncp": None if t is None else t.ties,
                    "losses_vs_ncp": None if t is None else t.losses,
                }
            )
    return rows


def run_rows(result: ComparisonResult) -> list[dict[str, Any]]:
    """One CSV row per sampler x seed x budget."""
    rows = []
    opt = result.info.optimum
    for r in result.runs:
        for b in result.config.budgets:
            score = score_at(r, b)
            rows.append(
                {
                    "sampler": r.sampler,
                    "seed": r.seed,
                    "budget": b,
                    "score": score,
                    "regret": None if opt is None else opt - score,
                    "n_complete": r.n,
                    "n_failed": r.n_failed,
                    "wall_s_total": float(np.nansum(r.wall_s)),
                }
            )
    return rows


def write_reports(result: ComparisonResult, out: Path) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv``, ``runs.csv``, ``results.json``,
    ``anytime.png`` (and ``pareto.png`` for two objectives) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["csv"] = write_csv(out / "summary.csv", summary_rows(result))
    files["runs_csv"] = write_csv(out / "runs.csv", run_rows(result))
    files["anytime_png"] = plot_anytime(result, out / "anytime.png")
    if result.info.n_objectives == 2:
        files["pareto_png"] = plot_pareto(result, out / "pareto.png")
    files["markdown"] = out / "summary.md"
    files["markdown"].write_text(markdown_report(result))
    files["json"] = out / "results.json"
    doc = result.to_dict()
    doc["files"] = {k: v.name for k, v in files.items()}
    files["json"].write_text(json.dumps(jsonable(doc), separators=(",", ":")))
    return files
