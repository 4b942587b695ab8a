"""The plots of a comparison: ``anytime.png`` and ``pareto.png``.

``pareto.png`` (two objectives) draws each sampler's median attainment surface over the
seeds after the last trial (what at least half of the seeds attained: the trade-off a run
of that sampler reaches as often as not), beside the table's own Pareto front.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ncp_hpo.experiments.compare._config import REFERENCE_SAMPLER
from ncp_hpo.experiments.compare._records import score_name
from ncp_hpo.experiments.compare._stats import attainment_surface_2d

if TYPE_CHECKING:
    from ncp_hpo.experiments.compare._runner import ComparisonResult


def plot_anytime(result: ComparisonResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info, cfg = result.info, result.config
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    x = np.arange(1, cfg.trials + 1)
    lows, highs = [], []
    for s, summ in result.summaries.items():
        if summ.curves.size == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, med, q75 = np.nanpercentile(summ.curves, [25, 50, 75], axis=0)
        lw = 2.4 if s == REFERENCE_SAMPLER else 1.5
        (line,) = ax.plot(x, med, label=f"{s} (n={len(summ.seeds)})", lw=lw)
        ax.fill_between(x, q25, q75, color=line.get_color(), alpha=0.15, lw=0)
        k = min(cfg.trials, 10) - 1
        lows.append(med[k])
        highs.append(np.nanmax(q75))
    if info.optimum is not None:
        ax.axhline(info.optimum, color="k", ls="--", lw=1, label=f"optimum {info.optimum:.4g}")
        highs.append(info.optimum)
    if lows and all(map(math.isfinite, lows + highs)):
        lo, hi = min(lows), max(highs)
        pad = 0.05 * max(hi - lo, 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(score_name(info))
    ax.set_title(f"{info.setting} ({info.mode}): median and IQR over seeds")
    ax.grid(alpha=0.3)
    # outside the axes: the curves rise into every corner
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _axis_label(name: str, unit: str) -> str:
    """``"Acc", "% (ImageNet16-120)"`` -> ``"Acc (%, ImageNet16-120)"``; ``"params", "M"`` ->
    ``"params (M)"``."""
    head, _, rest = unit.partition(" (")
    if not head:
        return name
    return f"{name} ({head}, {rest.rstrip(')')})" if rest else f"{name} ({head})"


def plot_pareto(result: ComparisonResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = result.info
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    tf = np.asarray(info.table_front)
    if len(tf):
        ax.step(tf[:, 1], tf[:, 0], where="post", color="0.6", lw=1.2, label="table front")
    for s in result.summaries:
        runs = [r for r in result.runs if r.sampler == s and r.n]
        if not runs:
            continue
        # (cost, -metric): both minimised; the median attainment surface over the seeds
        x, y = attainment_surface_2d([np.stack([r.values[:, 1], -r.values[:, 0]], 1) for r in runs])
        ok = np.isfinite(y)
        if not ok.any():
            continue
        hv = float(np.median([r.scores[-1] for r in runs]))
        ax.step(x[ok], -y[ok], where="post", lw=1.4, label=f"{s} (median HV {hv:.3f})")
    unit = info.units.get(info.cost, "")
    if info.cost == "flops":
        ax.set_xlabel(unit if "FLOPs" in unit else f"FLOPs ({unit})")  # "GFLOPs (128x128 input)"
    else:
        ax.set_xlabel(_axis_label("parameters", unit))
    ax.set_ylabel(_axis_label(info.main_metric, info.units.get(info.main_metric, "")))
    ax.set_title(
        f"{info.setting}: median attainment surfaces over seeds after {result.config.trials} trials"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
