"""Zero-cost warm start: a predictor sampler's start-up codes ranked by a zero-cost proxy.

Without a warm start, the first ``n_startup_trials`` codes of a study are drawn at random.
With one, a seeded random pool of ``pool_size`` codes (within the space's budget, if any)
is scored by a zero-cost proxy of each code's untrained network
(:mod:`ncp_hpo.zerocost`; synflow by default) and the start-up trials take the pool's best
unseen codes, best first.

A multi-objective study on a space with exact FLOPs orders the same pool for the trade-off
(:meth:`ZeroCostWarmStart.tradeoff_pool`): the proxy estimates the accuracy of each code and
the space gives its exact cost, so the start-up trials take the pool's estimated Pareto
front (score up, FLOPs down), spread along its FLOPs, instead of the best scores alone,
which are large networks crowding one end of the front.

The pool depends only on the space, the pool size and the seed, so the same codes can be
enqueued in a baseline's study (:func:`warm_start_codes`): ``compare`` does so for its
``<sampler>+zc`` rows, the fair comparison of what the proxy alone buys.

On a search space inferred from the study (``NCPSampler()`` with no ``space``), a warm
start scores parameter dicts (``params_scorer=``): any cheap signal the user has of a
configuration before training it (a parameter count, a proxy of the network it builds).
The inferred space is known once the first trial has completed, so trial 0 is random and
the rest of the start-up trials come from the ranked pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo.search._tradeoff import log_flops

if TYPE_CHECKING:
    from ncp_hpo.spaces import CodeSpace

__all__ = [
    "ZeroCostWarmStart",
    "auto_warm_start",
    "resolve_warm_start",
    "spread_pool",
    "tradeoff_order",
    "warm_start_codes",
]

DEFAULT_POOL_SIZE = 1000
"""Codes scored per warm start."""


class ZeroCostWarmStart:
    """Start-up codes: the best of a random pool by a zero-cost score.

    Args:
        benchmark: score with that benchmark's table: shipped with the package
            (``"nas-bench-201"``'s synflow) or in the user cache (``ncp-hpo data proxies``
            builds it; :func:`ncp_hpo.zerocost.load_scores`).
        proxy: the proxy of that table (``"synflow"``).
        scorer: instead of ``benchmark``, any function from an ``n x d`` array of codes to
            ``n`` scores (higher is better; NaN ranks last).
        params_scorer: instead of either, a function from one configuration's parameters
            (the dict ``trial.params`` would hold) to its score (higher is better; NaN ranks
            last). The one kind that works on a search space inferred from the study.
        pool_size: random codes scored.

    Raises:
        ValueError: not exactly one of ``benchmark``, ``scorer`` and ``params_scorer``;
            ``pool_size`` < 1.
    """

    def __init__(
        self,
        *,
        benchmark: str | None = None,
        proxy: str = "synflow",
        scorer: Callable[[np.ndarray], Any] | None = None,
        params_scorer: Callable[[Mapping[str, Any]], float] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if sum(x is not None for x in (benchmark, scorer, params_scorer)) != 1:
            raise ValueError(
                "give exactly one of benchmark= (a score table), scorer= (codes -> scores) "
                "or params_scorer= (a parameter dict -> its score)"
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        self.benchmark = benchmark
        self.proxy = proxy
        self.pool_size = pool_size
        self._scorer = scorer
        self._params_scorer = params_scorer

    @property
    def name(self) -> str:
        """``"<proxy> (<benchmark>)"``, or ``"custom"`` for a scorer."""
        return "custom" if self.benchmark is None else f"{self.proxy} ({self.benchmark})"

    @property
    def scores_params(self) -> bool:
        """Whether it scores parameter dicts (``params_scorer``), so it works on any space."""
        return self._params_scorer is not None

    def scores(self, codes: np.ndarray, space: CodeSpace | None = None) -> np.ndarray:
        """The zero-cost score of each row of ``codes`` (``n x d``) -> ``n`` floats
        (``space`` decodes them to parameters for a ``params_scorer``)."""
        if self._params_scorer is not None:
            if space is None:
                raise ValueError("a params_scorer needs the space that decodes the codes")
            fn = self._params_scorer
            return np.array([float(fn(space.to_params(c))) for c in codes], dtype=np.float64)
        if self._scorer is None:
            assert self.benchmark is not None
            self._scorer = _table_lookup(self.benchmark, self.proxy)
        out = np.asarray(self._scorer(codes), dtype=np.float64).reshape(-1)
        if out.shape != (len(codes),):
            raise ValueError(f"the scorer gave {out.shape[0]} scores for {len(codes)} codes")
        return out

    def ranked_pool(self, space: CodeSpace, seed: int) -> np.ndarray:
        """The pool's distinct codes, best score first (``m x d``, ``m <= pool_size``)."""
        pool = np.unique(np.asarray(space.sample(self.pool_size, seed=seed)), axis=0)
        scores = self.scores(pool, space)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        return pool[np.argsort(-scores, kind="stable")]

    def tradeoff_pool(self, space: CodeSpace, seed: int) -> np.ndarray:
        """The same pool ordered for a multi-objective study (``m x d``): see
        :func:`tradeoff_order`, with each code's score and exact log-FLOPs.

        Raises:
            ValueError: ``space`` has no exact FLOPs.
        """
        if not space.has_exact_flops:
            raise ValueError(f"{type(space).__name__} has no exact FLOPs to trade off against")
        pool = np.unique(np.asarray(space.sample(self.pool_size, seed=seed)), axis=0)
        scores = self.scores(pool, space)
        return pool[tradeoff_order(scores, log_flops(space, pool))]

    def __repr__(self) -> str:
        return f"ZeroCostWarmStart({self.name}, pool_size={self.pool_size})"


def tradeoff_order(scores: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of ``n`` candidates in start-up order for a two-objective trade-off.

    Successive non-dominated fronts of (``scores`` up, ``cost`` down; NaN scores last); within
    a front, its best score first, then greedily the candidate farthest in ``cost`` from those
    already taken (ties: the better score), so every prefix spreads along the cost axis.

    Args:
        scores: ``n`` estimates of the objective to maximise (a zero-cost proxy).
        cost: ``n`` costs to minimise, in any monotone unit (log-FLOPs).

    Returns:
        a permutation of ``range(n)`` (int64).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    cost = np.asarray(cost, dtype=np.float64).reshape(-1)
    if scores.shape != cost.shape:
        raise ValueError(f"{len(scores)} scores for {len(cost)} costs")
    finite = np.isfinite(scores)
    left = np.flatnonzero(finite)
    order: list[np.ndarray] = []
    while len(left):
        front = left[_front_2d(scores[left], cost[left])]
        order.append(front[_spread(scores[front], cost[front])])
        left = np.setdiff1d(left, front, assume_unique=True)
    order.append(np.flatnonzero(~finite))  # unscored codes last
    return np.concatenate(order).astype(np.int64)


def _front_2d(scores: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Positions of the non-dominated points (score up, cost down) of ``n`` points."""
    by_cost = np.lexsort((-scores, cost))  # cheapest first, the best score first among equals
    best = np.maximum.accumulate(scores[by_cost])
    keep = np.ones(len(by_cost), dtype=bool)
    keep[1:] = scores[by_cost][1:] > best[:-1]
    return np.sort(by_cost[keep])


def _spread(scores: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Order of one front's points: the best score first, then the farthest in cost."""
    first = int(np.argmax(scores))
    order = [first]
    gap = np.abs(cost - cost[first])
    gap[first] = -np.inf
    for _ in range(len(scores) - 1):
        nxt = int(np.lexsort((-scores, -gap))[0])  # the widest gap, then the better score
        order.append(nxt)
        gap = np.minimum(gap, np.abs(cost - cost[nxt]))
        gap[order] = -np.inf
    return np.asarray(order, dtype=np.int64)


def spread_pool(space: CodeSpace, seed: int, pool_size: int = DEFAULT_POOL_SIZE) -> np.ndarray:
    """A seeded pool of random codes ordered to spread along their exact FLOPs (``m x d``):
    a random code first, then each next the farthest in log-FLOPs from those taken (ties at
    random). The start-up of a multi-objective study with no zero-cost signal: the FLOPs
    objective's whole range is covered in the first trials (its cheap end is rare in a random
    sample of a large space).

    Raises:
        ValueError: ``space`` has no exact FLOPs.
    """
    if not space.has_exact_flops:
        raise ValueError(f"{type(space).__name__} has no exact FLOPs to spread along")
    rng = np.random.default_rng(seed)
    pool = np.unique(np.asarray(space.sample(pool_size, seed=rng)), axis=0)
    return pool[_spread(rng.random(len(pool)), log_flops(space, pool))]


def warm_start_codes(
    warm_start: ZeroCostWarmStart,
    space: CodeSpace,
    n: int,
    *,
    seed: int,
    n_objectives: int = 1,
) -> np.ndarray:
    """The first ``n`` start-up codes a sampler with ``warm_start`` and ``seed`` proposes on an
    empty study of ``n_objectives`` objectives (``n x d``): what a baseline's study is given
    to enqueue. Several objectives take :meth:`ZeroCostWarmStart.tradeoff_pool`.

    Raises:
        ValueError: several objectives on a space without exact FLOPs (NCP starts those at
            random).
    """
    if n_objectives > 1:
        return warm_start.tradeoff_pool(space, seed)[:n]
    return warm_start.ranked_pool(space, seed)[:n]


def _table_lookup(benchmark: str, proxy: str) -> Callable[[np.ndarray], Any]:
    """The score lookup of ``benchmark``'s ``proxy`` table: the one shipped with the package
    (NAS-Bench-201's synflow), else the user cache's (``ncp-hpo data proxies``)."""
    from ncp_hpo.zerocost import load_scores
    from ncp_hpo.zerocost._bundled import bundled_table

    table = bundled_table(benchmark, proxy)
    return (table if table is not None else load_scores(benchmark, proxy)).lookup


def auto_warm_start(space: CodeSpace) -> ZeroCostWarmStart | None:
    """The default warm start on ``space``: NAS-Bench-201's synflow scores (shipped with the
    package) on :class:`~ncp_hpo.spaces.NB201Space` (or a budgeted view of it: the ranked
    pool is then drawn within the budget), else ``None``. The multi-resolution
    space's networks and their scores differ by task (and synflow ranks the seg table worse
    than the parameter count does: ``benchmarks/results/zerocost-proxies.md``), so it has no
    default."""
    from ncp_hpo.spaces import NB201Space

    # a budget-restricted NAS-Bench-201 space too: its pool is drawn within the budget
    if not isinstance(getattr(space, "base", space), NB201Space):
        return None
    return ZeroCostWarmStart(benchmark="nas-bench-201", proxy="synflow")


def resolve_warm_start(
    warm_start: ZeroCostWarmStart | Literal["auto"] | None, *, mode: str, space: CodeSpace | None
) -> ZeroCostWarmStart | None:
    """An NCP sampler's warm start: ``"auto"`` is :func:`auto_warm_start` except in paper
    mode (Algorithm 1 as published starts at random); other values are kept."""
    if warm_start != "auto":
        if warm_start is not None and not isinstance(warm_start, ZeroCostWarmStart):
            raise TypeError(
                f"warm_start must be 'auto', None or a ZeroCostWarmStart, got {warm_start!r}"
            )
        return warm_start
    return None if mode == "paper" or space is None else auto_warm_start(space)
