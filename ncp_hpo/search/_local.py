"""NCP with local refinement around the incumbents (``NCPSampler(mode="local")``).

Propagation proposes (the guided mode's cached pool: propagated codes, their trajectories
and neighbourhoods, random codes, ranked by the ensemble's upper confidence bound); most
proposals then take a predictor-ranked one-unit step from the best codes found so far --
the discrete counterpart of NCP's gradient step, and NetAdapt's greedy step generalised to
an ensemble and several incumbents. A fixed share of proposals (``explore``) skips the
local step and takes the pool's UCB ranking, so the search keeps leaving the basin of the
incumbent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from ncp_hpo.search._history import History, code_key, code_keys
from ncp_hpo.search._proposers import GuidedNCPProposer, objective_weights
from ncp_hpo.search._settings import PredictorDefaults
from ncp_hpo.search._surrogate import ScoreModel

__all__ = ["LocalNCPProposer"]


@dataclass
class LocalNCPProposer(GuidedNCPProposer):
    """Guided NCP plus a predictor-ranked local step around the incumbents.

    On each proposal, with probability ``1 - explore`` (a draw from the proposal's RNG),
    the candidates are greedy walks from the ``n_walks`` best trials: a trial's one-unit
    neighbours (``space.neighbors``) ranked by the predicted mean plus ``local_kappa`` x
    ensemble spread (standardised by the history's scores, minus the FLOPs term when
    ``lam > 0``), then a step to the best-ranked unvisited neighbour, up to ``max_steps``
    steps; a walk stops at the first neighbourhood holding an unseen code (nothing after it
    could be proposed first). The walks' neighbourhoods are taken in turn (first of each,
    second of each, ...). Otherwise, or when every walked code is seen, the guided mode's
    UCB ranking of the propagated pool follows. The base sampler takes the first unseen
    candidate.

    Between predictor refits, a kernel on the predictor's residuals corrects its predicted
    mean (:meth:`_fit_residuals`), refreshed on every proposal.

    Args:
        explore: share of proposals ranked by the pool's UCB alone (``0 <= explore <= 1``).
        local_kappa: weight of the ensemble spread inside the neighbourhoods.
        max_steps: greedy steps walked from each start.
        n_walks: incumbents a walk starts from, best first.
        walk_niche: with ``> 0``, each start at least this many moves from the better ones.
        residual: correct the predicted mean with the residual kernel.
        residual_length: the kernel's length scale, in one-unit moves.
        residual_noise: the kernel's nugget, relative to its unit prior variance.
        residual_top: candidates of a ranking that are re-ranked after the correction.
        residual_max: latest trials the kernel is fitted on.

    Its predictor is the guided mode's, which also learns from the space's
    ``input_features`` (NAS-Bench-201's operation counts; none on the multi-resolution
    space).
    """

    predictor_defaults: ClassVar[PredictorDefaults] = replace(
        GuidedNCPProposer.predictor_defaults, input_features=True
    )

    explore: float = 0.25
    local_kappa: float = 0.0
    max_steps: int = 4
    n_walks: int = 2
    walk_niche: int = 0
    residual: bool = True
    residual_length: float = 1.0
    residual_noise: float = 0.1
    residual_top: int = 256
    residual_max: int = 100
    _resid: np.ndarray | None = field(default=None, init=False, repr=False)
    _per_move: int = field(default=0, init=False, repr=False)
    _cache_key: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _cache: _ScoreRows = field(default_factory=lambda: _ScoreRows(), init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()  # the guided mode's checks (space, lam, kappa, iterations ...)
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {self.explore}")
        if self.max_steps < 1 or self.n_walks < 1:
            raise ValueError(
                f"max_steps and n_walks must be >= 1, got {self.max_steps}, {self.n_walks}"
            )
        if not (self.residual_length > 0 and self.residual_noise > 0):
            raise ValueError(
                "residual_length and residual_noise must be > 0, got "
                f"{self.residual_length}, {self.residual_noise}"
            )
        if self.residual_top < 1 or self.residual_max < 2:
            raise ValueError(
                f"residual_top must be >= 1 and residual_max >= 2, got {self.residual_top}, "
                f"{self.residual_max}"
            )

    def propose(self, history: History, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
        self._fit_residuals(history, model)
        walks = np.empty((0, self.space.dim), dtype=np.int64)
        if history.n > 0 and rng.random() >= self.explore:
            w = objective_weights(len(model.outputs), rng)
            seen = history.seen()
            found = [self._walk(s, history, model, w, seen) for s in self._walk_starts(history)]
            walks = _round_robin([f[0] for f in found])
            if any(f[1] for f in found):  # an unseen code: the pool ranking is not needed
                self.info = {"local": True, "weights": w.tolist()}
                return walks
        ranked = super().propose(history, model, rng)  # builds the pool after a refit
        self.info["local"] = len(walks) > 0
        return np.concatenate([walks, ranked])

    def _ucb(self, cand: dict[str, np.ndarray], history: History, w: np.ndarray) -> np.ndarray:
        """The guided ranking; with ``residual``, the ``residual_top`` best candidates are
        re-ranked after the kernel correction of their predicted mean (:meth:`_correction`)."""
        util = super()._ucb(cand, history, w)
        if not self.residual or history.n < 2 or self._resid is None:
            return util
        top = np.argsort(-util, kind="stable")[: self.residual_top]
        sub = {k: v[top] for k, v in cand.items()}
        sub["mean"] = sub["mean"] + self._correction(sub["codes"], history)
        out = util.copy()
        out[top] = super()._ucb(sub, history, w)
        return out

    def _fit_residuals(self, history: History, model: ScoreModel) -> None:
        """Kernel weights of the stale predictor's residuals on the history (``n x k``).

        ``r = y - mean(x)`` per objective, kernel ``exp(-moves / residual_length)`` between
        codes (moves: differing dimensions over those one move changes), ``alpha = (K +
        residual_noise I)^-1 r``; the correction of a code ``c`` is ``k(c, X) alpha``.
        Refreshed on every proposal, so the ranking learns from trials the predictor has
        not been refitted on yet; only the latest ``residual_max`` trials enter (the cost
        stays flat as the study grows)."""
        self._resid = None
        if not self.residual or history.n < 2:
            return
        x = history.codes[-self.residual_max :]  # the latest trials (rows follow trial order)
        mean = self._score_cached(x, model)["mean"]  # n x k
        r = history.scores[-self.residual_max :, : mean.shape[1]] - mean
        kern = np.exp(-self._moves(x, x) / self.residual_length)
        self._resid = np.linalg.solve(kern + self.residual_noise * np.eye(len(x)), r)

    def _correction(self, codes: np.ndarray, history: History) -> np.ndarray:
        """``n x k``: the residual kernel's correction of the predicted mean of ``codes``."""
        assert self._resid is not None
        x = history.codes[-self.residual_max :]
        return np.exp(-self._moves(codes, x) / self.residual_length) @ self._resid

    def _moves(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``n x m``: differing dimensions between rows of ``a`` and ``b``, in moves."""
        if self._per_move == 0:
            c = b[0]
            self._per_move = max(1, int(np.count_nonzero(self.space.neighbors(c)[0] != c)))
        return _differing(a, b) / self._per_move

    def _score_cached(self, codes: np.ndarray, model: ScoreModel) -> dict[str, np.ndarray]:
        """:meth:`_score` of ``codes`` (``n x d``), each code's row computed once per fit
        (walks and the residual kernel revisit the same codes between refits).

        The rows live in one array per field (:class:`_ScoreRows`), emptied when the model
        changes (another predictor, or a refit: ``model.version``)."""
        key = (id(model.predictor), model.version)
        if key != self._cache_key:
            self._cache, self._cache_key = _ScoreRows(), key
        keys = code_keys(codes)
        missing = self._cache.missing(keys)
        if missing:
            self._cache.add([keys[i] for i in missing], self._score(codes[missing], model))
        out = self._cache.rows(keys)
        out["codes"] = codes
        return out

    def _walk_starts(self, history: History) -> np.ndarray:
        """The best ``n_walks`` incumbents, each at least ``walk_niche`` moves from every
        better one kept (``walk_niche = 0``: the plain top ``n_walks``)."""
        ranked = history.incumbents(max_count=history.n if self.walk_niche else self.n_walks)
        kept = [ranked[0]]
        for c in ranked[1:]:
            if len(kept) >= self.n_walks:
                break
            if self._moves_to(c[None], np.asarray(kept))[0] >= self.walk_niche:
                kept.append(c)
        return np.asarray(kept)

    def _walk(
        self,
        start: np.ndarray,
        history: History,
        model: ScoreModel,
        w: np.ndarray,
        seen: set[bytes],
    ) -> tuple[np.ndarray, bool]:
        """The neighbourhoods (``m x d``) a greedy walk from ``start`` passes, each ranked
        best first, in walking order, and whether one holds a code not in ``seen``. The
        walk steps to the best unvisited neighbour and stops after the first neighbourhood
        with an unseen code (nothing after it could be proposed first)."""
        out: list[np.ndarray] = []
        current, visited = start, {code_key(start)}
        for _ in range(self.max_steps):
            nbrs = self.space.neighbors(current)  # distinct codes (a space guarantee)
            util = self._local_utility(nbrs, history, model, w)
            order = np.argsort(-util, kind="stable")
            out.append(nbrs[order])
            keys = [code_key(nbrs[i]) for i in order]
            if any(k not in seen for k in keys):
                return np.concatenate(out), True
            nxt = next(
                (nbrs[i] for i, k in zip(order, keys, strict=True) if k not in visited), None
            )
            if nxt is None:
                break
            current = nxt
            visited.add(code_key(current))
        return np.concatenate(out), False

    def _local_utility(
        self, codes: np.ndarray, history: History, model: ScoreModel, w: np.ndarray
    ) -> np.ndarray:
        """``n``: the guided ranking of ``codes`` with ``local_kappa`` as the spread weight."""
        kappa, self.kappa = self.kappa, self.local_kappa
        try:
            return self._ucb(self._score_cached(codes, model), history, w)
        finally:
            self.kappa = kappa


def _round_robin(lists: list[np.ndarray]) -> np.ndarray:
    """Rows of ``lists`` taken in turn (first of each, second of each, ...), ``sum m_i x d``."""
    longest = max(len(x) for x in lists)
    rows = [x[i] for i in range(longest) for x in lists if i < len(x)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, lists[0].shape[1])


def _differing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``n x m`` int: dimensions in which rows of ``a`` and ``b`` differ.

    0/1 codes (one-hot spaces) by a matrix product, ``|a| + |b| - 2 a.b``: exact (integer
    sums far below 2**53), and far cheaper than comparing ``n x m x d`` elements, which
    other codes still do."""
    if a.size and b.size and min(a.min(), b.min()) >= 0 and max(a.max(), b.max()) <= 1:
        af, bf = a.astype(np.float64), b.astype(np.float64)
        dot = af @ bf.T
        return (af.sum(1)[:, None] + bf.sum(1)[None, :] - 2.0 * dot).astype(np.int64)
    return (a[:, None, :] != b[None, :, :]).sum(-1)


class _ScoreRows:
    """Rows of :meth:`GuidedNCPProposer._score` (every field but ``codes``) by code key,
    stored as one growing array per field."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self._n = 0  # rows stored (a code scored twice holds two, its index the later)
        self._blocks: dict[str, list[np.ndarray]] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def missing(self, keys: list[bytes]) -> list[int]:
        """Positions in ``keys`` of codes without a row (a code twice: both positions, and
        :meth:`add` keeps the later row, as a dictionary update would)."""
        return [i for i, k in enumerate(keys) if k not in self.index]

    def add(self, keys: list[bytes], scored: dict[str, np.ndarray]) -> None:
        """Rows of ``scored`` (one per key, in order) for the new ``keys``."""
        for j, k in enumerate(keys):
            self.index[k] = self._n + j
        self._n += len(keys)
        for f, v in scored.items():
            if f != "codes":
                self._blocks.setdefault(f, []).append(v)
        self._arrays = {}

    def rows(self, keys: list[bytes]) -> dict[str, np.ndarray]:
        """The stored rows of ``keys`` (each must have one), field by field."""
        if not self._arrays:
            self._arrays = {f: np.concatenate(b) for f, b in self._blocks.items()}
        idx = np.fromiter((self.index[k] for k in keys), dtype=np.intp, count=len(keys))
        return {f: a[idx] for f, a in self._arrays.items()}
