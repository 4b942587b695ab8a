"""Statistics of a comparison (pure functions): median and IQR, best so far,
2-D Pareto front and hypervolume, the paired Wilcoxon test."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    pass

__all__ = [
    "HV_REFERENCE_POINT",
    "PairedTest",
    "Stat",
    "attainment_surface_2d",
    "best_so_far",
    "hypervolume_2d",
    "hypervolume_history",
    "paired_wilcoxon",
    "pareto_front_2d",
    "summary_stat",
]


HV_REFERENCE_POINT = (1.0, 1.0)
"""Hypervolume reference point in normalised (minimised) coordinates; see the module doc."""


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


def attainment_surface_2d(
    runs: Sequence[np.ndarray], level: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` attainment surface of several runs' points (each ``n_i x 2``, both
    minimised): the boundary of what at least ``ceil(level x runs)`` of the runs attained.

    In two dimensions it is exact and simple (Fonseca and Fleming, 1996): for every value
    ``x`` of the first coordinate, each run attains ``a_r(x)``, the least second coordinate
    among its points with first coordinate ``<= x``; the surface at ``x`` is the
    ``k``-th smallest ``a_r(x)`` (``k = ceil(level x runs)``; ``level`` 0.5: the median
    attainment surface). Returns ``(x, y)``: the first coordinates where the surface steps
    (sorted) and its value from there on (``inf`` where fewer than ``k`` runs attain
    anything), or two empty arrays.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be in (0, 1], got {level}")
    fronts = [pareto_front_2d(r) for r in runs]
    if not fronts:
        return np.empty(0), np.empty(0)
    xs = np.unique(np.concatenate([f[:, 0] for f in fronts if len(f)] or [np.empty(0)]))
    if len(xs) == 0:
        return xs, np.empty(0)
    attained = np.full((len(fronts), len(xs)), np.inf)
    for i, f in enumerate(fronts):
        if len(f):  # the front is sorted by x with y decreasing: the last point at <= x
            j = np.searchsorted(f[:, 0], xs, side="right") - 1
            attained[i, j >= 0] = f[j[j >= 0], 1]
    k = max(1, math.ceil(level * len(fronts)))
    y = np.sort(attained, axis=0)[k - 1]
    return xs, y


def hypervolume_2d(points: np.ndarray, reference: Sequence[float] = HV_REFERENCE_POINT) -> float:
    """Hypervolume dominated by ``points`` (``n x 2``, minimised) up to ``reference``.

    Points that do not strictly dominate the reference contribute nothing. Exact: the sum of
    the rectangles between the Pareto front (sorted by the first coordinate) and the
    reference point, ``sum_i (r0 - x_i) * (y_{i-1} - y_i)`` with ``y_{-1} = r1`` (the
    arithmetic of Optuna's 2-D hypervolume, without its private module).
    """
    ref = np.asarray(reference, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(1) & (p < ref).all(1)]
    if len(p) == 0:
        return 0.0
    front = pareto_front_2d(p)
    upper = np.concatenate([ref[1:], front[:-1, 1]])
    return float((ref[0] - front[:, 0]) @ (upper - front[:, 1]))


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
