"""Head-to-head comparison of samplers on one benchmark objective (``ncp-hpo compare``).

Every sampler runs through the same loop on the same objective
(:class:`~ncp_hpo.benchmarks.BenchmarkObjective`): Optuna samplers through
``study.optimize``, ``"ax"`` through an Ax ``Client`` driven by
:func:`~ncp_hpo.samplers.ncp_generation_strategy` whose proposals are evaluated by the
same objective in the same kind of Optuna study (each Ax candidate is enqueued and run as
one Optuna trial). One study per sampler x seed; the statistics are computed from what the
studies hold.

>>> from ncp_hpo.benchmarks._compare import CompareConfig, run_comparison   # doctest: +SKIP
>>> res = run_comparison(CompareConfig("nas-bench-201", out="cmp", seeds=3))  # doctest: +SKIP
>>> res.summaries["ncp"].budgets[100].median                                  # doctest: +SKIP

Storage and resuming
--------------------
Each sampler x seed is an Optuna study named ``<benchmark>-<sampler>-seed<k>`` in its own
SQLite file, ``<out>/studies/<study name>.db`` (one file per study: parallel workers never
contend for one database lock; open one with ``optuna-dashboard sqlite:///<file>``). The
files use SQLite's write-ahead log with ``synchronous=NORMAL`` and a 60 s busy timeout: a
killed process loses at most the trial it was running, and a trial costs ~40 ms of storage
instead of ~400 ms with the default rollback journal on a loaded disk (measured, 100
NAS-Bench-201 random-search trials: 4.6 s vs 38 s). A rerun with the same ``--out``:

* skips studies that hold ``trials`` COMPLETE trials (or more: only the first ``trials``
  are analysed);
* marks trials left RUNNING by a killed run as FAIL (they are never counted) and continues
  the study until it holds ``trials`` COMPLETE trials;
* refuses to mix settings: each study records its benchmark, mode, objective and lambda,
  and a rerun with other values is an error (use another ``--out``).

One ``compare`` process at a time may use an ``--out`` folder (``<out>/compare.lock``
holds its pid; a lock left by a dead process is taken over).

Seeds: seed ``k`` seeds every sampler of study ``k``. The predictor-based samplers start
with 10 random trials drawn by ``RandomSampler(seed=k)``, so NCP, NetAdapt, the neural
predictor and random search share their first 10 trials per seed (common random numbers
for the paired test).

Outputs (under ``--out``)
-------------------------
``summary.md`` (header with the settings, optimum, oracle fidelity, wall times; the table;
notes), ``summary.csv`` (sampler x budget), ``runs.csv`` (sampler x seed x budget),
``results.json`` (all of it plus every trial's values and scores), ``anytime.png`` (median
score per trial with the IQR band per sampler), ``pareto.png`` (two objectives: the front
of each sampler's median-hypervolume seed over the table's front), ``calls.json`` (wall
time of every call, so rewriting the reports keeps the time the studies took) and
``studies/``. With MLflow on, see :mod:`ncp_hpo.tracking` (logged live).

Parallelism: ``jobs > 1`` runs the sampler x seed studies in ``jobs`` spawned processes
(``ProcessPoolExecutor``, one torch thread each; a worker exits when the parent dies);
each finished trial ticks the tqdm bar through a queue.

Statistics (see :func:`summarize_runs`)
---------------------------------------
* **Score per trial.** Single objective: the best objective value found so far. Two
  objectives (``metric+flops`` without lambda): the hypervolume of the trials so far in
  normalised coordinates ``u = (m_max - m) / (m_max - m_min)``, ``v = (f - f_min) /
  (f_max - f_min)`` (``m``: main metric, ``f``: FLOPs, extremes over the benchmark table)
  with the fixed reference point ``(1, 1)``, i.e. the table's worst metric and largest
  FLOPs; a point outside that box adds nothing. The table's own front has a hypervolume
  below 1.
* **Best found at budgets** 10/25/50/100 (those <= trials, plus ``trials``): median and
  inter-quartile range (numpy's linear-interpolation 25th/75th percentiles) over seeds.
* **Regret** at the final budget: optimum minus score. The optimum is the best value of
  the table (NAS-Bench-201: 47.333 for ImageNet16-120 ``Acc``; with lambda the best
  scalarised table value; with two objectives the hypervolume of the table's front). In
  surrogate mode the oracle may score a code above every table code, so regret can be
  negative there.
* **Paired Wilcoxon signed-rank test** (:func:`paired_wilcoxon`, two-sided,
  ``scipy.stats.wilcoxon`` with ``zero_method="wilcox"``: zero differences are dropped and
  counted) of each sampler's final score against NCP's on the same seeds. When every
  difference is zero there is nothing to test: p is reported as 1 with the note "all
  ties". p-values are not corrected for multiple comparisons.
* **Wall time per trial**: median over all trials and seeds of the trial's duration
  (sampling happens inside the trial in Optuna; Ax adds its generation time).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo._numerics import deterministic_threads, environment
from ncp_hpo.exceptions import NCPError
from ncp_hpo.search.registry import DEFAULT_SAMPLERS, SAMPLERS, make_sampler

if TYPE_CHECKING:
    import optuna

    from ncp_hpo.benchmarks._objectives import BenchmarkObjective
    from ncp_hpo.tracking._comparison import LiveStudyRun, LiveTarget

__all__ = [
    "DEFAULT_BUDGETS",
    "CompareConfig",
    "CompareError",
    "ComparisonResult",
    "PairedTest",
    "RunRecord",
    "SamplerSummary",
    "Stat",
    "best_so_far",
    "hypervolume_2d",
    "hypervolume_history",
    "paired_wilcoxon",
    "pareto_front_2d",
    "run_comparison",
    "study_name",
    "summarize_runs",
    "summary_stat",
]


DEFAULT_BUDGETS: tuple[int, ...] = (10, 25, 50, 100)

REFERENCE_SAMPLER = "ncp"
"""The sampler every other one is tested against."""

HV_REFERENCE_POINT = (1.0, 1.0)
"""Hypervolume reference point in normalised (minimised) coordinates; see the module doc."""

_SETTINGS_ATTR = "compare:settings"
_GEN_ATTR = "compare:gen_s"
_FORMAT_VERSION = 1

# rough relative cost of one trial, to start the slow studies first
_COST = {
    "gp": 6.0,
    "ax": 4.0,
    "neural-predictor": 2.0,
    "ncp-guided": 2.0,
    "ncp": 1.0,
    "netadapt": 1.5,
}


class CompareError(NCPError, ValueError):
    """A comparison cannot run as asked (bad sampler list, settings mismatch, busy folder)."""


# =========================================================================================
# Configuration
# =========================================================================================
@dataclass(frozen=True)
class CompareConfig:
    """What ``ncp-hpo compare`` runs.

    Args:
        benchmark: a setting name (``"nas-bench-201"``, ``"seg"``, ``"cls-50-1000"`` ...).
        samplers: names from :data:`SAMPLERS`.
        trials: COMPLETE trials per study (the budget).
        seeds: number of seeds; studies use seeds ``0 .. seeds-1``.
        objective: ``"metric"`` or ``"metric+flops"``.
        lam: with ``"metric+flops"``, scalarise with this weight (one objective); ``None``
            keeps two objectives (hypervolume statistics).
        mode: ``"surrogate"``, ``"table"`` or ``"exact"``; ``None`` = the benchmark's
            default (exact for NAS-Bench-201, surrogate for NAS-Bench-MR).
        jobs: worker processes (spawned); 1 runs in this process.
        out: output folder (studies, tables, plots).
        data_dir: where the benchmark files are looked up first.
        budgets: trial counts at which best-found is reported (``trials`` is always added).
        mlflow: log to MLflow.
        mlflow_uri: tracking URI (``None``: MLflow's default, a local store).
        mlflow_experiment: MLflow experiment name.
        progress: show a tqdm progress bar.
    """

    benchmark: str
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    trials: int = 100
    seeds: int = 10
    objective: Literal["metric", "metric+flops"] = "metric"
    lam: float | None = None
    mode: Literal["surrogate", "table", "exact"] | None = None
    jobs: int = 1
    out: str | Path | None = None
    data_dir: str | Path | None = None
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    mlflow: bool = False
    mlflow_uri: str | None = None
    mlflow_experiment: str = "ncp-hpo-compare"
    progress: bool = True

    def __post_init__(self) -> None:
        samplers = tuple(s.strip() for s in self.samplers if s.strip())
        object.__setattr__(self, "samplers", samplers)
        unknown = [s for s in samplers if s not in SAMPLERS]
        if unknown:
            raise CompareError(
                f"unknown sampler {unknown[0]!r} in --samplers; choose from {', '.join(SAMPLERS)}"
            )
        if not samplers:
            raise CompareError("--samplers is empty; choose from " + ", ".join(SAMPLERS))
        dup = sorted({s for s in samplers if samplers.count(s) > 1})
        if dup:
            raise CompareError(f"sampler {dup[0]!r} appears twice in --samplers")
        for name, v, lo in (
            ("trials", self.trials, 1),
            ("seeds", self.seeds, 1),
            ("jobs", self.jobs, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise CompareError(f"--{name} must be an integer >= {lo}, got {v!r}")
        if self.objective not in ("metric", "metric+flops"):
            raise CompareError(
                f"--objective must be 'metric' or 'metric+flops', got {self.objective!r}"
            )
        if self.lam is not None:
            if not (math.isfinite(self.lam) and self.lam >= 0):
                raise CompareError(f"--lam must be a finite number >= 0, got {self.lam!r}")
            if self.objective == "metric":
                raise CompareError(
                    "--lam scalarises metric and FLOPs: use it with --objective metric+flops"
                )
        if self.mode not in (None, "surrogate", "table", "exact"):
            raise CompareError(f"--mode must be 'surrogate', 'table' or 'exact', got {self.mode!r}")
        if self.n_objectives == 2 and "cmaes" in samplers:
            raise CompareError(
                "cmaes is single-objective: drop it, or scalarise with --lam, "
                "or use --objective metric"
            )
        budgets = sorted({int(b) for b in self.budgets if 0 < int(b) < self.trials})
        object.__setattr__(self, "budgets", (*budgets, self.trials))

    @property
    def n_objectives(self) -> int:
        return 2 if self.objective == "metric+flops" and self.lam is None else 1

    @property
    def out_dir(self) -> Path:
        return Path(self.out if self.out is not None else f"ncp-compare-{self.benchmark}")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def settings(self, mode: str) -> dict[str, Any]:
        """What a study must have been run with to be resumed (mode resolved)."""
        return {
            "format": _FORMAT_VERSION,
            "benchmark": self.benchmark,
            "mode": mode,
            "objective": self.objective,
            "lam": self.lam,
        }


def study_name(benchmark: str, sampler: str, seed: int) -> str:
    """``<benchmark>-<sampler>-seed<k>``: the study (and SQLite file) of one sampler x seed."""
    return f"{benchmark}-{sampler}-seed{seed}"


# =========================================================================================
# Statistics (pure functions)
# =========================================================================================
@dataclass(frozen=True)
class Stat:
    """Median and inter-quartile range (25th/75th percentiles) of ``n`` values."""

    median: float
    q25: float
    q75: float
    mean: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self, digits: int = 2) -> str:
        if self.n == 0 or not math.isfinite(self.median):
            return "n/a"
        return f"{self.median:.{digits}f} [{self.q25:.{digits}f}, {self.q75:.{digits}f}]"


def summary_stat(values: Sequence[float] | np.ndarray) -> Stat:
    """:class:`Stat` of ``values`` (NaNs ignored; all-NaN gives NaNs and ``n=0``)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        nan = float("nan")
        return Stat(nan, nan, nan, nan, 0)
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    return Stat(float(med), float(q25), float(q75), float(x.mean()), len(x))


def best_so_far(values: Sequence[float] | np.ndarray, *, maximize: bool = True) -> np.ndarray:
    """Running best of ``values`` (NaN entries are skipped; NaN until the first value)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = np.where(np.isfinite(x), x, -np.inf if maximize else np.inf)
    out = np.maximum.accumulate(x) if maximize else np.minimum.accumulate(x)
    return np.where(np.isfinite(out), out, np.nan)


def pareto_front_2d(points: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``points`` (``n x 2``, both minimised), sorted by column 0.

    Duplicates are kept once.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(1)]
    if len(p) == 0:
        return p
    order = np.lexsort((p[:, 1], p[:, 0]))
    p = p[order]
    keep = []
    best1 = np.inf
    for row in p:
        if row[1] < best1:
            keep.append(row)
            best1 = row[1]
    return np.asarray(keep)


def hypervolume_2d(points: np.ndarray, reference: Sequence[float] = HV_REFERENCE_POINT) -> float:
    """Hypervolume dominated by ``points`` (``n x 2``, minimised) up to ``reference``.

    Points that do not strictly dominate the reference contribute nothing. Computed with
    Optuna's exact ``optuna._hypervolume.compute_hypervolume``.
    """
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(reference, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(1) & (p < ref).all(1)]
    if len(p) == 0:
        return 0.0
    return float(compute_hypervolume(p, ref, assume_pareto=False))


def hypervolume_history(
    points: np.ndarray, reference: Sequence[float] = HV_REFERENCE_POINT
) -> np.ndarray:
    """Hypervolume of the first ``t`` points for ``t = 1 .. n`` (``n``)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(p))
    front = np.empty((0, 2))
    for t in range(len(p)):
        front = pareto_front_2d(np.concatenate([front, p[t : t + 1]]))
        out[t] = hypervolume_2d(front, reference)
    return out


@dataclass(frozen=True)
class PairedTest:
    """A paired two-sided Wilcoxon signed-rank test of ``other`` against ``reference``.

    Attributes:
        p_value: the p-value; 1.0 when every difference is zero; ``None`` when not computed
            (fewer than two pairs, or the sampler is the reference itself).
        statistic: scipy's statistic (the smaller rank sum), ``None`` if not computed.
        n: pairs (seeds present in both).
        n_zero: pairs with a zero difference (dropped by ``zero_method="wilcox"``).
        median_diff: median of ``other - reference``.
        wins, ties, losses: pairs where ``other`` is higher, equal, lower.
        note: why the test was not run, or what was special about it.
    """

    p_value: float | None
    statistic: float | None
    n: int
    n_zero: int
    median_diff: float
    wins: int
    ties: int
    losses: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        if self.p_value is None:
            return f"— ({self.note})" if self.note else "—"
        text = f"{self.p_value:.3g}"
        return f"{text} ({self.note})" if self.note else text


def paired_wilcoxon(
    reference: Sequence[float] | np.ndarray,
    other: Sequence[float] | np.ndarray,
    *,
    atol: float = 1e-9,
) -> PairedTest:
    """Two-sided paired Wilcoxon signed-rank test of ``other`` vs ``reference``.

    Pairs where either value is NaN are dropped. Differences within ``atol`` of zero count
    as ties: they are set to exactly zero and dropped by scipy's ``zero_method="wilcox"``.
    With every difference zero no test is possible; the result has ``p_value=1.0`` and the
    note ``"all ties"``. With fewer than two pairs (or fewer than one non-zero difference),
    ``p_value`` is ``None``.
    """
    from scipy.stats import wilcoxon

    ref = np.asarray(reference, dtype=np.float64).ravel()
    oth = np.asarray(other, dtype=np.float64).ravel()
    if ref.shape != oth.shape:
        raise ValueError(f"paired samples differ in length: {len(ref)} vs {len(oth)}")
    ok = np.isfinite(ref) & np.isfinite(oth)
    d = oth[ok] - ref[ok]
    d = np.where(np.abs(d) <= atol, 0.0, d)
    n = len(d)
    n_zero = int((d == 0).sum())
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    med = float(np.median(d)) if n else float("nan")

    def test(p: float | None, stat: float | None, note: str) -> PairedTest:
        return PairedTest(p, stat, n, n_zero, med, wins, n_zero, losses, note)

    if n < 2:
        return test(None, None, f"{n} pair(s)")
    if n_zero == n:
        return test(1.0, None, "all ties")
    res = wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return test(
        float(res.pvalue), float(res.statistic), f"{n_zero} tie(s) dropped" if n_zero else ""
    )


# =========================================================================================
# Records and summaries
# =========================================================================================
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

    @property
    def n(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "seed": self.seed,
            "study_name": self.study_name,
            "n_complete": self.n,
            "n_failed": self.n_failed,
            "values": np.round(self.values, 6).tolist(),
            "scores": _nan_to_none(np.round(self.scores, 6).tolist()),
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
    flops_range: tuple[float, float]
    table_front: list[list[float]] = field(default_factory=list)  # raw (metric, flops)

    @property
    def n_objectives(self) -> int:
        return len(self.directions)

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """``n x 2`` (metric, flops) -> minimised normalised coordinates ``(u, v)``."""
        v = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        m_lo, m_hi = self.metric_range
        f_lo, f_hi = self.flops_range
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
            ref = [_score_at(ref_runs[k], b) for k in seeds]
            oth = [_score_at(next(r for r in rs if r.seed == k), b) for k in seeds]
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


def _score_at(run: RunRecord, budget: int) -> float:
    return float(run.scores[budget - 1]) if len(run.scores) >= budget else float("nan")


def _scores(values: np.ndarray, info: BenchmarkInfo) -> np.ndarray:
    if len(values) == 0:
        return np.zeros(0)
    if info.n_objectives == 1:
        return best_so_far(values[:, 0], maximize=info.directions[0] == "maximize")
    return hypervolume_history(info.normalise(values[:, :2]))


# =========================================================================================
# Samplers and storage
# =========================================================================================
def open_storage(path: str | Path) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage on the SQLite file ``path`` (WAL, synchronous=NORMAL, 60 s
    busy timeout; see the module docstring)."""
    import optuna
    from sqlalchemy import event

    url = f"sqlite:///{Path(path).resolve()}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(storage.engine, "connect", _pragmas)
    storage.engine.dispose()  # connections opened during set-up lack the pragmas
    return storage


def _study_path(out: Path, name: str) -> Path:
    return out / "studies" / f"{name}.db"


# per process: one objective per settings (a surrogate oracle loads once per worker)
_OBJECTIVES: dict[tuple[Any, ...], BenchmarkObjective] = {}


def _objective(
    benchmark: str,
    mode: str | None,
    objective: str,
    lam: float | None,
    data_dir: str | None,
) -> BenchmarkObjective:
    key = (benchmark, mode, objective, lam, data_dir)
    if key not in _OBJECTIVES:
        from ncp_hpo.benchmarks._objectives import BenchmarkObjective

        _OBJECTIVES[key] = BenchmarkObjective(
            benchmark,
            mode=mode,  # type: ignore[arg-type]
            objective=objective,  # type: ignore[arg-type]
            lam=lam,
            data_dir=data_dir,
        )
    return _OBJECTIVES[key]


@dataclass(frozen=True)
class _Task:
    benchmark: str
    sampler: str
    seed: int
    trials: int
    path: str
    name: str
    mode: str
    objective: str
    lam: float | None
    data_dir: str | None
    settings_json: str
    live: LiveTarget | None = None  # MLflow parent of the live child run, if tracking
    live_params_json: str = "{}"


@dataclass(frozen=True)
class _Outcome:
    name: str
    ran: int  # trials run in this call
    seconds: float
    error: str | None = None


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if "ax" in sys.modules:
        _quiet_ax()


def _quiet_ax() -> None:
    """Import Ax without its INFO lines, then keep its stderr handler at WARNING."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # Ax logs at INFO while it is imported
    try:
        from ax.utils.common.logger import set_stderr_log_level

        set_stderr_log_level(logging.WARNING)
    except Exception:  # pragma: no cover - logging only
        pass
    finally:
        logging.disable(previous)


_WORKER_QUEUE: Any = None


def _init_worker(queue: Any = None, parent_pid: int | None = None) -> None:
    """Worker set-up: one torch thread, quiet libraries, the progress queue, and a watchdog
    that ends the worker when the parent process is gone (killed runs leave no orphans)."""
    import threading

    import torch

    global _WORKER_QUEUE
    _WORKER_QUEUE = queue
    torch.set_num_threads(1)
    _quiet()
    if parent_pid is not None:

        def _watch() -> None:
            while True:
                time.sleep(1.0)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=_watch, daemon=True).start()


def _open_study(task: _Task, sampler: Any) -> optuna.Study:
    import optuna

    storage = open_storage(task.path)
    study = optuna.create_study(
        study_name=task.name,
        storage=storage,
        sampler=sampler,
        directions=_objective(  # type: ignore[arg-type]
            task.benchmark, task.mode, task.objective, task.lam, task.data_dir
        ).directions,
        load_if_exists=True,
    )
    if _SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(_SETTINGS_ATTR, json.loads(task.settings_json))
    return study


def _fail_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials (left by a killed run) as FAIL; return how many."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        with contextlib.suppress(Exception):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    return len(stale)


def _n_complete(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _run_task(task: _Task, queue: Any = None) -> _Outcome:
    """Run (or continue) one sampler x seed study to ``task.trials`` COMPLETE trials."""
    t0 = time.perf_counter()
    ran = 0
    if queue is None:
        queue = _WORKER_QUEUE
    live = None
    try:
        with deterministic_threads():
            obj = _objective(task.benchmark, task.mode, task.objective, task.lam, task.data_dir)
            live = _live_run(task, obj)
            ran = _run_study(task, obj, queue, live)
    except Exception as exc:  # reported by the parent; other studies go on
        if live is not None:
            live.close("FAILED")
        return _Outcome(task.name, ran, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    except BaseException:
        if live is not None:
            live.close("KILLED")
        raise
    if live is not None:
        live.close("FINISHED")
    return _Outcome(task.name, ran, time.perf_counter() - t0)


def _complete(study: optuna.Study) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _live_run(task: _Task, obj: BenchmarkObjective) -> LiveStudyRun | None:
    """The study's live MLflow child run (None without tracking, or with one warning)."""
    if task.live is None:
        return None
    from ncp_hpo.tracking._comparison import CompareTrackingWarning, LiveStudyRun

    try:
        return LiveStudyRun(
            task.live,
            study_name=task.name,
            params=json.loads(task.live_params_json),
            maximize=obj.directions[0] == "maximize",
        )
    except Exception as exc:  # tracking never costs the study
        warnings.warn(
            f"MLflow live logging unavailable for {task.name} ({type(exc).__name__}: {exc}); "
            "it is logged when the comparison ends",
            CompareTrackingWarning,
            stacklevel=2,
        )
        return None


def _run_study(task: _Task, obj: BenchmarkObjective, queue: Any, live: LiveStudyRun | None) -> int:
    """The study loop of :func:`_run_task` (one thread: see :mod:`ncp_hpo._numerics`)."""
    ran = 0
    if task.sampler == "ax":
        with warnings.catch_warnings():  # Ax/pandas deprecation chatter, per trial
            warnings.filterwarnings("ignore", module=r"ax(\.|$)")
            ran = _run_ax(task, obj, queue, live)
    else:
        study = _open_study(task, make_sampler(task.sampler, space=obj.space, seed=task.seed))
        _fail_stale(study)
        callbacks: list[Any] = [] if live is None else [live]
        if live is not None:
            live.replay(_complete(study))

        def _tick(_study: Any, trial: Any) -> None:
            from optuna.trial import TrialState

            if trial.state == TrialState.COMPLETE and queue is not None:
                queue.put(1)

        callbacks.append(_tick)
        for _ in range(3):  # failed trials are retried, a bounded number of times
            remaining = task.trials - _n_complete(study)
            if remaining <= 0:
                break
            before = _n_complete(study)
            study.optimize(obj, n_trials=remaining, callbacks=callbacks, catch=(Exception,))
            ran += _n_complete(study) - before
    return ran


def _run_ax(
    task: _Task, obj: BenchmarkObjective, queue: Any, live: LiveStudyRun | None = None
) -> int:
    """The Ax loop: Client + ``ncp_generation_strategy``; each candidate is one Optuna trial
    of the study (enqueued parameters), so it is evaluated and stored like the others."""
    _quiet_ax()
    import optuna
    from ax.api.client import Client
    from optuna.trial import TrialState

    from ncp_hpo.samplers import ncp_generation_strategy

    study = _open_study(task, optuna.samplers.RandomSampler(seed=task.seed))
    _fail_stale(study)
    space = obj.space
    names = ["metric", "flops"] if obj.n_objectives == 2 else ["metric"]
    client = Client(random_seed=task.seed)
    client.configure_experiment(name=task.name, parameters=space.ax_parameters())
    client.configure_optimization(objective="metric, -flops" if obj.n_objectives == 2 else "metric")
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    callbacks: list[Any] = [] if live is None else [live]
    if live is not None:
        live.replay(done)
    for t in done:  # resume: replay the finished trials into the experiment
        idx = client.attach_trial(parameters=dict(t.params))
        client.complete_trial(idx, raw_data=dict(zip(names, t.values, strict=True)))
    n_init = max(0, 10 - len(done))
    client.set_generation_strategy(ncp_generation_strategy(space, n_init=n_init, seed=task.seed))
    ran = 0
    misses = 0
    last_error = "no trial generated"
    while len(done) + ran < task.trials:
        if misses >= 3 * task.trials:
            raise RuntimeError(f"Ax stopped after {len(done) + ran} trials: {last_error}")
        t0 = time.perf_counter()
        try:
            batch = client.get_next_trials(max_trials=1)
        except Exception as exc:  # e.g. DataRequiredError right after the Sobol phase
            batch, last_error = {}, f"{type(exc).__name__}: {exc}"
        gen_s = time.perf_counter() - t0
        if not batch:
            misses += 1
            continue
        for idx, params in batch.items():
            study.enqueue_trial(dict(params), user_attrs={_GEN_ATTR: gen_s})
            study.optimize(obj, n_trials=1, catch=(Exception,), callbacks=callbacks)
            trial = study.get_trials(deepcopy=False)[-1]
            if trial.state == TrialState.COMPLETE and trial.values is not None:
                client.complete_trial(idx, raw_data=dict(zip(names, trial.values, strict=True)))
                ran += 1
                if queue is not None:
                    queue.put(1)
            else:
                client.mark_trial_failed(idx)
                misses += 1
                last_error = f"trial {trial.number} {trial.state.name}"
    return ran


# =========================================================================================
# Reading results back
# =========================================================================================
def read_run(path: Path, name: str, sampler: str, seed: int, trials: int) -> RunRecord | None:
    """The :class:`RunRecord` of study ``name`` in ``path`` (None if absent)."""
    import optuna
    from optuna.trial import TrialState

    if not path.is_file():
        return None
    storage = open_storage(path)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    trials_all = study.get_trials(deepcopy=False)
    done = sorted(
        (t for t in trials_all if t.state == TrialState.COMPLETE), key=lambda t: t.number
    )[:trials]
    n_failed = sum(t.state == TrialState.FAIL for t in trials_all)
    values = np.array([list(t.values) for t in done], dtype=np.float64).reshape(len(done), -1)
    walls, stamps = [], []
    for t in done:
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else float("nan")
        )
        walls.append(dur + float(t.user_attrs.get(_GEN_ATTR, 0.0)))
        stamps.append(int(t.datetime_complete.timestamp() * 1000) if t.datetime_complete else 0)
    storage.engine.dispose()
    return RunRecord(
        sampler=sampler,
        seed=seed,
        study_name=name,
        values=values,
        wall_s=np.asarray(walls, dtype=np.float64),
        codes=[str(t.user_attrs.get("code", "")) for t in done],
        sources=[str(t.user_attrs.get("source", "")) for t in done],
        metrics=[dict(t.user_attrs.get("metrics", {})) for t in done],
        n_failed=n_failed,
        timestamps_ms=stamps,
    )


def _study_status(path: Path, name: str) -> tuple[int, int, dict[str, Any] | None]:
    """(COMPLETE trials, RUNNING trials, stored settings) of a study; zeros if absent."""
    import optuna
    from optuna.trial import TrialState

    if not path.is_file():
        return 0, 0, None
    storage = open_storage(path)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0, 0, None
    finally:
        pass
    ts = study.get_trials(deepcopy=False)
    settings = study.user_attrs.get(_SETTINGS_ATTR)
    storage.engine.dispose()
    return (
        sum(t.state == TrialState.COMPLETE for t in ts),
        sum(t.state == TrialState.RUNNING for t in ts),
        settings,
    )


def benchmark_info(obj: BenchmarkObjective) -> BenchmarkInfo:
    """Optimum, ranges, table front and oracle fidelity of ``obj``'s benchmark."""
    table = obj.table
    m = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    f = np.asarray(table.metrics["flops"], dtype=np.float64)
    front_raw = pareto_front_2d(np.stack([-m, f], axis=1))
    info_front = [[-a, b] for a, b in front_raw.tolist()]
    fidelity = obj.oracle.fidelity.to_dict() if obj.oracle is not None else None
    exact = obj.mode in ("exact", "table")
    if obj.n_objectives == 2:
        tmp = BenchmarkInfo(
            table.name, obj.mode, obj.objective_names, obj.directions, table.main_metric,
            dict(table.units), None, "", fidelity,
            (float(m.min()), float(m.max())), (float(f.min()), float(f.max())),
        )  # fmt: skip
        optimum = hypervolume_2d(tmp.normalise(np.asarray(info_front)))
        note = "hypervolume of the table's Pareto front (normalised, reference (1, 1))"
    elif obj.lam is not None:
        optimum = float((m - obj.lam * (f - obj.flops_mean) / obj.flops_std).max())
        note = f"best scalarised table value ({table.main_metric} - {obj.lam:g}*z(flops))"
    else:
        optimum = float(m.max())
        note = f"best {table.main_metric} in the table"
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
        flops_range=(float(f.min()), float(f.max())),
        table_front=info_front,
    )


# =========================================================================================
# The runner
# =========================================================================================
@dataclass
class ComparisonResult:
    """What :func:`run_comparison` produced.

    Attributes:
        config: the configuration.
        info: the benchmark description (optimum, fidelity ...).
        runs: every sampler x seed record.
        summaries: sampler -> :class:`SamplerSummary`.
        files: output name -> path (``markdown``, ``csv``, ``runs_csv``, ``json``,
            ``anytime_png``, ``pareto_png`` for two objectives).
        elapsed_s: wall time of this call.
        studies: counts of ``skipped`` (already finished), ``resumed``, ``new`` studies and
            ``stale`` RUNNING trials marked FAIL.
        errors: study name -> error of studies that failed in this call.
        mlflow_run_id: the parent MLflow run (None without tracking).
        mlflow_url: a link to the parent run on MLflow's "Model training" pages.
    """

    config: CompareConfig
    info: BenchmarkInfo
    runs: list[RunRecord]
    summaries: dict[str, SamplerSummary]
    files: dict[str, Path] = field(default_factory=dict)
    elapsed_s: float = 0.0
    studies: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None
    run_seconds: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self.config)
        # folder names only: records are shared, absolute paths of this machine are not
        cfg["out"] = Path(self.config.out_dir).name
        cfg["data_dir"] = None if self.config.data_dir is None else Path(self.config.data_dir).name
        return {
            "format": _FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": cfg,
            "benchmark": self.info.to_dict(),
            "reference_point": list(HV_REFERENCE_POINT) if self.info.n_objectives == 2 else None,
            "score": _score_name(self.info),
            "summaries": {k: v.to_dict() for k, v in self.summaries.items()},
            "runs": [r.to_dict() for r in self.runs],
            "studies": self.studies,
            "errors": self.errors,
            "elapsed_s": self.elapsed_s,
            "calls": self.calls,
            "environment": _environment(),
        }


def _score_name(info: BenchmarkInfo) -> str:
    if info.n_objectives == 2:
        return "hypervolume (normalised, reference (1, 1))"
    name = info.objective_names[0]
    unit = info.units.get(name, "").split(" (")[0]  # "% (ImageNet16-120)" -> "%"
    return f"best {name} ({unit})" if unit else f"best {name}"


def _environment() -> dict[str, str]:
    env = environment()
    env.update(_git_provenance())
    return env


def _git_provenance() -> dict[str, str]:
    """The commit of the ``ncp_hpo`` checkout that ran (``+dirty`` when files under
    ``ncp_hpo/`` differ from it); empty outside a git checkout."""
    import subprocess

    pkg = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(pkg), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git": sha + ("+dirty" if dirty else "")} if sha else {}


class _OutLock:
    """``<out>/compare.lock`` holding this pid; a lock of a dead process is taken over."""

    def __init__(self, out: Path) -> None:
        self.path = out / "compare.lock"
        self.held = False

    def __enter__(self) -> _OutLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and pid != os.getpid() and _alive(pid):
                    raise CompareError(
                        f"another compare (pid {pid}) is using {self.path.parent}; "
                        "wait for it or use another --out"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise CompareError(f"could not lock {self.path}")  # pragma: no cover

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


@contextlib.contextmanager
def _progress(total: int, enabled: bool, desc: str) -> Iterator[Callable[[int], None]]:
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def run_comparison(config: CompareConfig) -> ComparisonResult:
    """Run (or resume) the comparison, analyse it, write the outputs, log to MLflow.

    Returns:
        A :class:`ComparisonResult`; ``files`` lists what was written under ``config.out``.

    Raises:
        CompareError: settings that differ from the studies already in ``out``, a busy
            ``out``, an unusable sampler.
        UnknownSettingError, DataNotFoundError: unknown or missing benchmark.
    """
    from ncp_hpo.benchmarks import get_setting

    t_start = time.perf_counter()
    get_setting(config.benchmark)  # unknown names fail here, with the list of known ones
    _quiet()
    data_dir = None if config.data_dir is None else str(Path(config.data_dir).resolve())
    # load (and, in surrogate mode, fit or read the cached oracle) once before any worker
    obj = _objective(config.benchmark, config.mode, config.objective, config.lam, data_dir)
    if "cmaes" in config.samplers:
        make_sampler("cmaes", space=obj.space, seed=0)  # fails early without 'cmaes'
    info = benchmark_info(obj)
    settings = config.settings(obj.mode)
    out = config.out_dir
    (out / "studies").mkdir(parents=True, exist_ok=True)

    with _OutLock(out):
        live = None
        if config.mlflow:  # the parent run is open (RUNNING) while the studies run
            from ncp_hpo.tracking._comparison import open_comparison

            live = open_comparison(
                config, info, uri=config.mlflow_uri, experiment=config.mlflow_experiment
            )
        try:
            return _run_locked(config, obj, info, settings, data_dir, live, t_start)
        except BaseException:
            if live is not None:
                from ncp_hpo.tracking._comparison import end_comparison

                end_comparison(live, "FAILED")
            raise


def _run_locked(
    config: CompareConfig,
    obj: BenchmarkObjective,
    info: BenchmarkInfo,
    settings: dict[str, Any],
    data_dir: str | None,
    live: LiveTarget | None,
    t_start: float,
) -> ComparisonResult:
    """The body of :func:`run_comparison` (``<out>/compare.lock`` is held)."""
    from ncp_hpo.tracking._comparison import child_params

    out = config.out_dir
    tasks: list[_Task] = []
    counts = {"skipped": 0, "resumed": 0, "new": 0, "stale": 0}
    remaining = 0
    for seed in config.seed_list:
        for s in config.samplers:
            name = study_name(config.benchmark, s, seed)
            path = _study_path(out, name)
            n_done, n_running, stored = _study_status(path, name)
            if stored is not None and stored != settings:
                diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
                raise CompareError(
                    f"{path} was run with other settings "
                    f"({', '.join(f'{k}: {a!r} now {b!r}' for k, (a, b) in diff.items())}); "
                    "use another --out"
                )
            counts["stale"] += n_running
            if n_done >= config.trials:
                counts["skipped"] += 1
                continue
            counts["resumed" if n_done or n_running else "new"] += 1
            remaining += config.trials - n_done
            tasks.append(
                _Task(
                    benchmark=config.benchmark,
                    sampler=s,
                    seed=seed,
                    trials=config.trials,
                    path=str(path),
                    name=name,
                    mode=obj.mode,
                    objective=config.objective,
                    lam=config.lam,
                    data_dir=data_dir,
                    settings_json=json.dumps(settings),
                    live=live,
                    live_params_json=json.dumps(
                        jsonable(child_params(s, seed, config, info)) if live else {}
                    ),
                )
            )
    tasks.sort(key=lambda t: -_COST.get(t.sampler, 1.0))
    errors: dict[str, str] = {}
    t_run = time.perf_counter()
    with _progress(remaining, config.progress, f"compare {config.benchmark}") as update:
        outcomes = _execute(tasks, config.jobs, update)
    run_seconds = time.perf_counter() - t_run
    for o in outcomes:
        if o.error:
            errors[o.name] = o.error

    runs: list[RunRecord] = []
    for seed in config.seed_list:
        for s in config.samplers:
            name = study_name(config.benchmark, s, seed)
            rec = read_run(_study_path(out, name), name, s, seed, config.trials)
            if rec is not None and rec.n:
                runs.append(rec)
    summaries = summarize_runs(
        runs, info, samplers=config.samplers, trials=config.trials, budgets=config.budgets
    )
    result = ComparisonResult(
        config=config,
        info=info,
        runs=runs,
        summaries=summaries,
        studies=counts,
        errors=errors,
        run_seconds=run_seconds,
    )
    result.elapsed_s = time.perf_counter() - t_start
    result.calls = _record_call(out, result, remaining)
    result.files = write_reports(result, out)
    if config.mlflow:
        from ncp_hpo.tracking._comparison import log_comparison

        result.mlflow_run_id = log_comparison(
            result, uri=config.mlflow_uri, experiment=config.mlflow_experiment
        )
        if live is not None and result.mlflow_run_id is not None:
            from ncp_hpo.tracking import ui_url

            result.mlflow_url = ui_url(live.uri, live.experiment_id, result.mlflow_run_id)
    return result


def _record_call(out: Path, result: ComparisonResult, trials_run: int) -> list[dict[str, Any]]:
    """Append this call to ``<out>/calls.json`` (the wall time of every call, so a rerun that
    only rewrites the reports keeps the time the studies took) and return all calls."""
    path = out / "calls.json"
    calls: list[dict[str, Any]] = []
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            calls = list(json.loads(path.read_text()))
    calls.append(
        {
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "elapsed_s": round(result.elapsed_s, 1),
            "run_seconds": round(result.run_seconds, 1),
            "jobs": result.config.jobs,
            "trials_to_run": trials_run,
            "studies": dict(result.studies),
            "samplers": list(result.config.samplers),
            "trials": result.config.trials,
            "seeds": result.config.seeds,
            "git": _git_provenance().get("git"),
        }
    )
    path.write_text(json.dumps(calls, indent=1) + "\n")
    return calls


def _execute(tasks: list[_Task], jobs: int, update: Callable[[int], None]) -> list[_Outcome]:
    """Run ``tasks`` in this process (``jobs == 1``) or in ``jobs`` spawned workers, which
    report each finished trial on a queue (for the progress bar) and exit if this process
    dies."""
    if not tasks:
        return []
    if jobs <= 1:
        return [_run_task(t, _CallbackQueue(update)) for t in tasks]
    import multiprocessing as mp
    import queue as queue_mod
    import threading
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    progress: Any = ctx.Queue()
    stop = threading.Event()

    def _drain() -> None:
        while not stop.is_set():
            try:
                update(progress.get(timeout=0.2))
            except queue_mod.Empty:
                continue
            except (EOFError, OSError, ValueError):  # queue closed
                return

    thread = threading.Thread(target=_drain, daemon=True)
    thread.start()
    try:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(tasks)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(progress, os.getpid()),
        ) as pool:
            futures = [pool.submit(_run_task, t) for t in tasks]
            outcomes = [f.result() for f in futures]
    finally:
        stop.set()
        thread.join(timeout=2)
        progress.close()
    return outcomes


class _CallbackQueue:
    """A queue-like adapter that calls ``update`` directly (in-process runs)."""

    def __init__(self, update: Callable[[int], None]) -> None:
        self._update = update

    def put(self, n: int) -> None:
        self._update(n)


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float):
        return None if not math.isfinite(x) else x
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    return x


def jsonable(x: Any) -> Any:
    """``x`` with NaN/inf replaced by None and numpy scalars/arrays made plain."""
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return _nan_to_none(x)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as CSV; the columns are every key of any row, in first-seen order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        if not rows:
            return path
        names = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


# =========================================================================================
# Reports: Markdown, CSV, JSON, PNG
# =========================================================================================
def _digits(info: BenchmarkInfo) -> int:
    return 4 if info.n_objectives == 2 else 2


def _wall_text(ms: float) -> str:
    if not math.isfinite(ms):
        return "n/a"
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def _fidelity_text(fid: Mapping[str, Any] | None) -> str:
    if not fid:
        return ""
    return (
        f"Spearman {fid.get('spearman', float('nan')):.3f}, "
        f"Kendall {fid.get('kendall', float('nan')):.3f}, "
        f"MAE {fid.get('mae', float('nan')):.3f} "
        f"({fid.get('folds', '?')}-fold CV over {fid.get('rows', '?')} table codes, "
        f"metric {fid.get('metric', '?')})"
    )


def markdown_report(result: ComparisonResult, *, title: str | None = None) -> str:
    """The Markdown summary: a header with the settings, the table, and the notes."""
    cfg, info = result.config, result.info
    d = _digits(info)
    budgets = list(cfg.budgets)
    final = cfg.trials
    seeds = cfg.seed_list
    obj_desc = ", ".join(
        f"`{n}` ({dr})" for n, dr in zip(info.objective_names, info.directions, strict=True)
    )
    lines = [
        f"# {title or f'Sampler comparison on {info.setting}'}",
        "",
        f"- Benchmark: `{info.setting}`, mode `{info.mode}`; objective {obj_desc}.",
        f"- Budget: {cfg.trials} trials per study; seeds {seeds[0]}..{seeds[-1]} "
        f"({len(seeds)}); samplers: {', '.join(cfg.samplers)}.",
        f"- Score: {_score_name(info)}; optimum {info.optimum:.{d + 1}f} ({info.optimum_note})."
        if info.optimum is not None
        else f"- Score: {_score_name(info)}.",
    ]
    if info.n_objectives == 2:
        (m_lo, m_hi), (f_lo, f_hi) = info.metric_range, info.flops_range
        lines.append(
            f"- Hypervolume: `u = ({m_hi:.4g} - {info.main_metric}) / {m_hi - m_lo:.4g}`, "
            f"`v = (flops - {f_lo:.4g}) / {f_hi - f_lo:.4g}` (table ranges), both minimised, "
            "reference point (1, 1)."
        )
    if info.fidelity:
        lines.append(f"- Surrogate oracle fidelity: {_fidelity_text(info.fidelity)}.")
    st = result.studies
    working = [c for c in result.calls if c.get("trials_to_run", 0) > 0]
    if working:
        jobs = sorted({int(c.get("jobs", 1)) for c in working})
        commits = sorted({str(c["git"]) for c in working if c.get("git")})
        lines.append(
            f"- Wall time of the calls that ran trials: "
            f"{sum(float(c['elapsed_s']) for c in working):.0f} s ({len(working)} call(s), "
            f"--jobs {'/'.join(map(str, jobs))}, {sum(int(c['trials_to_run']) for c in working)}"
            " trials"
            + (f", code at git {', '.join(commits)}" if commits else "")
            + "); sum of the trials' own wall times over all studies "
            f"{sum(float(np.nansum(r.wall_s)) for r in result.runs):.0f} s."
        )
    lines.append(
        f"- This call: {result.elapsed_s:.0f} s wall ({result.run_seconds:.0f} s running "
        f"studies, --jobs {cfg.jobs}); studies new {st.get('new', 0)}, resumed "
        f"{st.get('resumed', 0)}, already finished {st.get('skipped', 0)}; stale RUNNING "
        f"trials marked FAIL: {st.get('stale', 0)}."
    )
    env = _environment()
    env = {("report by git" if k == "git" else k): v for k, v in env.items()}
    lines.append(
        "- Environment: "
        + ", ".join(f"{k} {v}" for k, v in env.items())
        + f"; created {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."
    )
    lines += ["", ""]
    has_ref = REFERENCE_SAMPLER in result.summaries
    label = "HV" if info.n_objectives == 2 else "best"
    head = ["sampler", *[f"{label}@{b}" for b in budgets]]
    if info.optimum is not None:
        head.append(f"regret@{final}")
    head.append("wall/trial (ms)")
    surrogate = info.mode == "surrogate"
    if surrogate:
        head.append("table codes")
    if has_ref:
        head += [f"Wilcoxon p vs ncp @{final}", "W/T/L vs ncp"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for s, summ in result.summaries.items():
        row = [f"`{s}`", *[summ.budgets[b].format(d) for b in budgets]]
        if info.optimum is not None:
            row.append(summ.regret.format(d) if summ.regret is not None else "n/a")
        row.append(_wall_text(summ.wall_ms))
        if surrogate:
            row.append(f"{100 * summ.table_share:.0f}%" if math.isfinite(summ.table_share) else "")
        if has_ref:
            t = summ.tests.get(final)
            if s == REFERENCE_SAMPLER:
                row += ["(reference)", ""]
            elif t is None:
                row += ["—", ""]
            else:
                row += [t.format(), f"{t.wins}/{t.ties}/{t.losses}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Cells: median [25th, 75th percentile] over seeds. "
        + (
            "Wilcoxon: paired two-sided signed-rank test of each sampler's final score against "
            "`ncp` on the same seeds (scipy `wilcoxon`, zero differences dropped and counted as "
            'ties; "all ties": every seed gave the same score, no test, p = 1). '
            "W/T/L: seeds where the sampler beat / tied / lost to `ncp`. p-values are not "
            "corrected for multiple comparisons; with N non-tied seeds the smallest attainable "
            f"p is 2^(1-N) ({2.0 ** (1 - len(seeds)):.3g} for N = {len(seeds)})."
            if has_ref
            else "No `ncp` runs: no paired tests."
        ),
    ]
    verdict_line = verdict(result.summaries, result.info)
    if verdict_line:
        lines += ["", verdict_line]
    notes = []
    if surrogate:
        notes.append(
            "table codes: share of evaluated codes found in NAS-Bench-MR (measured values); the "
            "rest are the surrogate oracle's predictions."
        )
    if "cmaes" in cfg.samplers and info.setting == "nas-bench-201":
        notes.append(
            "`cmaes`: CMA-ES has no categorical support; on NAS-Bench-201's categorical edges "
            "Optuna samples every parameter with its independent RandomSampler (random search)."
        )
    if tuple(cfg.samplers) == DEFAULT_SAMPLERS:
        notes.append(
            "`gp` (Optuna GPSampler) is not in the default samplers: its cost per trial grows "
            "with the history and is several times NCP's on NAS-Bench-MR; add it with "
            "--samplers."
        )
    for s, summ in result.summaries.items():
        notes += [f"`{s}`: {n}" for n in summ.notes]
    for name, err in result.errors.items():
        notes.append(f"study `{name}` stopped with an error: {err}")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def verdict(
    summaries: Mapping[str, SamplerSummary], info: BenchmarkInfo, *, alpha: float = 0.05
) -> str:
    """One line naming the sampler with the best median at the final budget and the samplers
    significantly better or worse than NCP there (paired Wilcoxon, ``p < alpha``);
    empty without results."""
    final = max((max(s.budgets) for s in summaries.values() if s.budgets), default=None)
    if final is None:
        return ""
    medians = {
        name: s.budgets[final].median
        for name, s in summaries.items()
        if final in s.budgets and math.isfinite(s.budgets[final].median)
    }
    if not medians:
        return ""
    higher = info.n_objectives == 2 or info.directions[0] == "maximize"
    top = max(medians.values()) if higher else min(medians.values())
    leaders = [f"`{n}`" for n, v in medians.items() if v == top]
    label = "HV" if info.n_objectives == 2 else "best"
    text = f"**Verdict** ({label}@{final}, median over seeds): best {' = '.join(leaders)}"
    text += f" ({top:.{_digits(info)}f})."
    if REFERENCE_SAMPLER not in summaries:
        return text + " No `ncp` runs, so no paired tests."
    better: list[str] = []
    worse: list[str] = []
    for name, s in summaries.items():
        t = s.tests.get(final)
        if name == REFERENCE_SAMPLER or t is None or t.p_value is None or t.p_value >= alpha:
            continue
        ahead = t.wins > t.losses if higher else t.losses > t.wins
        (better if ahead else worse).append(f"`{name}` (p = {t.p_value:.2g})")
    text += f" Significantly better than `ncp` (p < {alpha:g}): {', '.join(better) or 'none'}."
    text += f" Significantly worse: {', '.join(worse) or 'none'}."
    return text


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
            score = _score_at(r, b)
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


def _plot_anytime(result: ComparisonResult, path: Path) -> Path:
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
    ax.set_ylabel(_score_name(info))
    ax.set_title(f"{info.setting} ({info.mode}): median and IQR over seeds")
    ax.grid(alpha=0.3)
    # outside the axes: the curves rise into every corner
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _plot_pareto(result: ComparisonResult, path: Path) -> Path:
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
        finals = np.array([r.scores[-1] for r in runs])
        run = runs[int(np.argsort(finals)[len(finals) // 2])]  # the median-hypervolume seed
        pts = run.values[:, :2]
        front = pareto_front_2d(np.stack([-pts[:, 0], pts[:, 1]], axis=1))
        if len(front) == 0:
            continue
        ax.step(front[:, 1], -front[:, 0], where="post", marker="o", ms=3, lw=1.2,
                label=f"{s} (seed {run.seed}, HV {run.scores[-1]:.3f})")  # fmt: skip
    ax.set_xlabel(f"FLOPs ({info.units.get('flops', '')})")
    ax.set_ylabel(f"{info.main_metric} ({info.units.get(info.main_metric, '')})")
    ax.set_title(f"{info.setting}: Pareto fronts (median-hypervolume seed per sampler)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def write_reports(result: ComparisonResult, out: Path) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv``, ``runs.csv``, ``results.json``,
    ``anytime.png`` (and ``pareto.png`` for two objectives) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["csv"] = write_csv(out / "summary.csv", summary_rows(result))
    files["runs_csv"] = write_csv(out / "runs.csv", run_rows(result))
    files["anytime_png"] = _plot_anytime(result, out / "anytime.png")
    if result.info.n_objectives == 2:
        files["pareto_png"] = _plot_pareto(result, out / "pareto.png")
    files["markdown"] = out / "summary.md"
    files["markdown"].write_text(markdown_report(result))
    files["json"] = out / "results.json"
    doc = result.to_dict()
    doc["files"] = {k: v.name for k, v in files.items()}
    files["json"].write_text(json.dumps(jsonable(doc), separators=(",", ":")))
    return files
