"""What the studies hold, summarised: one :class:`RunRecord` per study, one
:class:`SamplerSummary` per sampler, and :class:`BenchmarkInfo` (optimum, ranges, fidelity)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.experiments._files import nan_to_none
from ncp_hpo.experiments.compare._config import REFERENCE_SAMPLER
from ncp_hpo.experiments.compare._stats import (
    PairedTest,
    Stat,
    best_so_far,
    hypervolume_2d,
    hypervolume_history,
    paired_wilcoxon,
    pareto_front_2d,
    summary_stat,
)

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkObjective, BenchmarkTable

__all__ = [
    "BenchmarkInfo",
    "RunRecord",
    "SamplerSummary",
    "benchmark_info",
    "score_at",
    "score_name",
    "summarize_runs",
    "tradeoff_hypervolume",
]


@dataclass
class RunRecord:
    """The COMPLETE trials of one sampler x seed study, in trial order (at most ``trials``).

    Attributes:
        values: ``n x k`` objective values.
        wall_s: ``n`` seconds per trial.
        codes: ``n`` evaluated codes (strings).
        sources: ``n`` value sources (``"table"``/``"surrogate"``).
        metrics: ``n`` dicts of every metric of the evaluated code.
        scores: ``n`` score after each trial (best so far, or hypervolume so far).
        n_failed: FAIL trials in the study (stale RUNNING ones included).
        timestamps_ms: ``n`` completion times (ms since the epoch).
        n_refused: with a FLOPs budget, the trials refused unevaluated for it (never
            counted); ``None`` without one.
        refused_s: seconds those refused trials took (the sampler's proposals).
    """

    sampler: str
    seed: int
    study_name: str
    values: np.ndarray
    wall_s: np.ndarray
    codes: list[str]
    sources: list[str]
    metrics: list[dict[str, float]]
    n_failed: int
    timestamps_ms: list[int]
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_refused: int | None = None
    refused_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def study_s(self) -> float:
        """Seconds of the study's counted trials plus its refused ones."""
        return float(np.nansum(self.wall_s)) + self.refused_s

    def to_dict(self) -> dict[str, Any]:
        budget = (
            {}
            if self.n_refused is None
            else {"n_refused": self.n_refused, "refused_s": round(self.refused_s, 4)}
        )
        return {
            **budget,
            "sampler": self.sampler,
            "seed": self.seed,
            "study_name": self.study_name,
            "n_complete": self.n,
            "n_failed": self.n_failed,
            "values": np.round(self.values, 6).tolist(),
            "scores": nan_to_none(np.round(self.scores, 6).tolist()),
            "wall_s": np.round(self.wall_s, 4).tolist(),
            "codes": self.codes,
            "sources": self.sources,
        }


@dataclass
class SamplerSummary:
    """One sampler's statistics over seeds (see the module docstring).

    Attributes:
        budgets: budget -> :class:`Stat` of the score at that budget.
        regret: :class:`Stat` of ``optimum - score`` at the final budget (None without an
            optimum).
        wall_ms: median wall time per trial in milliseconds.
        tests: budget -> :class:`PairedTest` against NCP (None for NCP or without NCP).
        curves: ``seeds x trials`` scores (NaN past a study's last trial).
        seeds: the seeds of the rows of ``curves``.
        notes: caveats (fallbacks, incomplete studies).
    """

    sampler: str
    budgets: dict[int, Stat]
    regret: Stat | None
    wall_ms: float
    tests: dict[int, PairedTest | None]
    curves: np.ndarray
    seeds: list[int]
    n_failed: int
    notes: list[str] = field(default_factory=list)
    table_share: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "budgets": {str(b): s.to_dict() for b, s in self.budgets.items()},
            "regret": None if self.regret is None else self.regret.to_dict(),
            "wall_ms_per_trial_median": self.wall_ms,
            "wilcoxon_vs_ncp": {
                str(b): (None if t is None else t.to_dict()) for b, t in self.tests.items()
            },
            "seeds": self.seeds,
            "n_failed": self.n_failed,
            "table_share": self.table_share,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class BenchmarkInfo:
    """What the statistics need to know about the objective."""

    setting: str
    mode: str
    objective_names: list[str]
    directions: list[str]
    main_metric: str
    units: dict[str, str]
    optimum: float | None
    optimum_note: str
    fidelity: dict[str, Any] | None
    metric_range: tuple[float, float]
    cost_range: tuple[float, float]  # the table's range of the cost column
    table_front: list[list[float]] = field(default_factory=list)  # raw (metric, cost)
    budget: dict[str, Any] | None = None  # the FLOPs budget (see flops_budget_info)
    cost: str = "flops"  # the second objective's table column ("flops", "params")

    @property
    def n_objectives(self) -> int:
        return len(self.directions)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """``n x 2`` (metric, cost) -> minimised normalised coordinates ``(u, v)``."""
        v = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        m_lo, m_hi = self.metric_range
        f_lo, f_hi = self.cost_range
        u = (m_hi - v[:, 0]) / max(m_hi - m_lo, 1e-12)
        w = (v[:, 1] - f_lo) / max(f_hi - f_lo, 1e-12)
        return np.stack([u, w], axis=1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("table_front")
        return d


def summarize_runs(
    runs: Sequence[RunRecord],
    info: BenchmarkInfo,
    *,
    samplers: Sequence[str],
    trials: int,
    budgets: Sequence[int],
) -> dict[str, SamplerSummary]:
    """Per-sampler statistics of ``runs`` (fills each run's ``scores``)."""
    for r in runs:
        r.scores = _scores(r.values, info)
    by: dict[str, list[RunRecord]] = {s: [] for s in samplers}
    for r in runs:
        by.setdefault(r.sampler, []).append(r)
    ref_runs = {r.seed: r for r in by.get(REFERENCE_SAMPLER, [])}
    out: dict[str, SamplerSummary] = {}
    for s in samplers:
        rs = sorted(by.get(s, []), key=lambda r: r.seed)
        curves = np.full((len(rs), trials), np.nan)
        for i, r in enumerate(rs):
            n = min(trials, len(r.scores))
            curves[i, :n] = r.scores[:n]
        stats = {b: summary_stat(curves[:, b - 1]) for b in budgets}
        final = curves[:, trials - 1] if trials else np.zeros(0)
        regret = None if info.optimum is None else summary_stat(info.optimum - final)
        walls = np.concatenate([r.wall_s[:trials] for r in rs]) if rs else np.zeros(0)
        wall_ms = float(np.median(walls) * 1000) if len(walls) else float("nan")
        tests: dict[int, PairedTest | None] = {}
        for b in budgets:
            if s == REFERENCE_SAMPLER or not ref_runs:
                tests[b] = None
                continue
            seeds = [r.seed for r in rs if r.seed in ref_runs]
            ref = [score_at(ref_runs[k], b) for k in seeds]
            oth = [score_at(next(r for r in rs if r.seed == k), b) for k in seeds]
            tests[b] = paired_wilcoxon(ref, oth)
        notes = []
        short = [r.seed for r in rs if r.n < trials]
        if short:
            notes.append(f"incomplete studies (seeds {short}): fewer than {trials} trials")
        n_failed = sum(r.n_failed for r in rs)
        if n_failed:
            notes.append(f"{n_failed} failed trial(s) not counted")
        out[s] = SamplerSummary(
            sampler=s,
            budgets=stats,
            regret=regret,
            wall_ms=wall_ms,
            tests=tests,
            curves=curves,
            seeds=[r.seed for r in rs],
            n_failed=n_failed,
            notes=notes,
            table_share=_table_share(rs, trials),
        )
    return out


def _table_share(runs: Sequence[RunRecord], trials: int) -> float:
    """Fraction of evaluated codes whose value came from the table (not the surrogate)."""
    src = [x for r in runs for x in r.sources[:trials]]
    return sum(x == "table" for x in src) / len(src) if src else float("nan")


def score_at(run: RunRecord, budget: int) -> float:
    return float(run.scores[budget - 1]) if len(run.scores) >= budget else float("nan")


def _scores(values: np.ndarray, info: BenchmarkInfo) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(0)
    if info.n_objectives == 1:
        return best_so_far(values[:, 0], maximize=info.directions[0] == "maximize")
    return hypervolume_history(info.normalise(values[:, :2]))


def score_name(info: BenchmarkInfo) -> str:
    if info.n_objectives == 2:
        return "hypervolume (normalised, reference (1, 1))"
    name = info.objective_names[0]
    unit = info.units.get(name, "").split(" (")[0]  # "% (ImageNet16-120)" -> "%"
    best = "best feasible" if info.budget else "best"
    return f"{best} {name} ({unit})" if unit else f"{best} {name}"


def benchmark_info(obj: BenchmarkObjective) -> BenchmarkInfo:
    """Optimum, ranges, table front and oracle fidelity of ``obj``'s benchmark."""
    table = obj.table
    m = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    f = np.asarray(table.metrics["flops"], dtype=np.float64)
    cost = obj.cost or "flops"  # the budget and the FLOPs weight are FLOPs
    c = np.asarray(table.metrics[cost], dtype=np.float64)
    front_raw = pareto_front_2d(np.stack([-m, c], axis=1))
    info_front = [[-a, b] for a, b in front_raw.tolist()]
    fidelity = obj.oracle.fidelity.to_dict() if obj.oracle is not None else None
    exact = obj.mode in ("exact", "table")
    if obj.n_objectives == 2:
        optimum = tradeoff_hypervolume(np.asarray(info_front), table, cost=cost)
        note = "hypervolume of the table's Pareto front (normalised, reference (1, 1))"
    elif obj.flops_weight is not None:
        from ncp_hpo.benchmarks._objectives import scalarize

        scores = scalarize(m, f, weight=obj.flops_weight, mean=obj.flops_mean, std=obj.flops_std)
        optimum = float(scores.max())
        note = f"best scalarised table value ({table.main_metric} - {obj.flops_weight:g}*z(flops))"
    else:
        optimum = float(m.max())
        note = f"best {table.main_metric} in the table"
    budget = flops_budget_info(obj)
    if budget is not None and obj.n_objectives == 1:
        from ncp_hpo.benchmarks._objectives import scalarize

        within = np.asarray(obj.space.feasible(table.codes), dtype=bool)
        w = obj.flops_weight
        vals = m if w is None else scalarize(m, f, weight=w, mean=obj.flops_mean, std=obj.flops_std)
        optimum = float(np.max(vals[within]))
        note += f" within the FLOPs budget ({budget['table_codes_within']:,} codes)"
    if not exact:
        note += "; surrogate values may exceed it (negative regret)"
    return BenchmarkInfo(
        setting=table.name,
        mode=obj.mode,
        objective_names=list(obj.objective_names),
        directions=list(obj.directions),
        main_metric=table.main_metric,
        units=dict(table.units),
        optimum=optimum,
        optimum_note=note,
        fidelity=fidelity,
        metric_range=(float(m.min()), float(m.max())),
        cost_range=(float(c.min()), float(c.max())),
        table_front=info_front,
        budget=budget,
        cost=cost,
    )


def flops_budget_info(obj: BenchmarkObjective) -> dict[str, Any] | None:
    """The FLOPs budget of ``obj`` for reports: the absolute cap, how it was given, its
    unit, and how many table codes are within it (``None`` without a budget)."""
    if obj.max_flops is None:
        return None
    table = obj.table
    within = int(np.count_nonzero(obj.space.feasible(table.codes)))
    return {
        "max_flops": obj.max_flops,
        "given": obj.max_flops_spec,
        "unit": str(getattr(obj.space.budget, "unit", "")),
        "count": "exact closed-form FLOPs of the code (space.flops)",
        "table_codes_within": within,
        "table_codes": len(table),
    }


def tradeoff_hypervolume(
    values: np.ndarray, table: BenchmarkTable, *, cost: str = "flops"
) -> float:
    """Normalised hypervolume of ``values`` (``n x 2``: the main metric, higher is better,
    and the ``cost`` column's value, lower is better, in the table's units) as
    ``compare --objective metric+<cost>`` scores a study: both axes scaled to the table's
    range (metric ``max -> 0``, ``min -> 1``; cost ``min -> 0``, ``max -> 1``), reference
    point ``(1, 1)``. The table's own Pareto front scores the optimum."""
    m = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    c = np.asarray(table.metrics[cost], dtype=np.float64)
    info = BenchmarkInfo(
        table.name, "exact", [table.main_metric, cost], ["maximize", "minimize"],
        table.main_metric, dict(table.units), None, "", None,
        (float(m.min()), float(m.max())), (float(c.min()), float(c.max())), cost=cost,
    )  # fmt: skip
    return hypervolume_2d(info.normalise(np.asarray(values, dtype=np.float64)))
