"""The search engine both adapters share: history assembly, proposal and claiming a code.

The Optuna samplers (:mod:`ncp_hpo.samplers`) and the Ax nodes read trials from their
framework and hand plain rows to :class:`HistoryBuilder`; :class:`SearchEngine` turns a
:class:`~ncp_hpo.search._history.History` into ranked candidate codes (predictor from a
:class:`~ncp_hpo.search._surrogate.PredictorSource`, ranking by a
:class:`~ncp_hpo.search._proposers.Proposer`) and picks the first one not taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ncp_hpo.search._history import History, code_key
from ncp_hpo.search._proposers import Proposer
from ncp_hpo.search._surrogate import PredictorSource, ScoreModel

if TYPE_CHECKING:
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.spaces import CodeSpace

__all__ = ["REPEATED", "HistoryBuilder", "LazyRNG", "SearchEngine", "check_prior"]

REPEATED = -2
"""The rank :meth:`SearchEngine.first_unseen` gives a code that repeats an evaluated one."""


class LazyRNG:
    """numpy Generator created on first use, so deep copies never share a stream."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._rng: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def reseed(self) -> None:
        self._rng = np.random.default_rng()


def check_prior(prior: NeuralPredictor | None, space: CodeSpace) -> None:
    """Raise ``ValueError`` unless ``prior`` is ``None`` or fitted on ``space``'s codes
    (``TypeError`` when it is not a predictor at all)."""
    from ncp_hpo.search._surrogate import check_prior_type

    check_prior_type(prior)
    if prior is None:
        return
    if not prior.is_fitted:
        raise ValueError("prior must be a fitted NeuralPredictor (call fit or load first)")
    if prior.n_features_in_ != space.dim:
        raise ValueError(
            f"prior was fitted on codes of {prior.n_features_in_} dimensions but the space "
            f"{type(space).__name__} has {space.dim}"
        )


class HistoryBuilder:
    """Collects a study's trials row by row and builds the :class:`History`.

    Args:
        dim: code length ``d``.
        directions: ``"maximize"``/``"minimize"`` per objective.
        constraint_names: fixed constraint columns; ``None`` collects the names from the
            rows (sorted), a missing value counting as satisfied.
    """

    def __init__(
        self,
        *,
        dim: int,
        directions: Sequence[str],
        constraint_names: Sequence[str] | None = None,
    ) -> None:
        self.dim = dim
        self.directions = tuple(directions)
        self._names = None if constraint_names is None else tuple(constraint_names)
        self._codes: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._constraints: list[Mapping[str, float]] = []
        self._pending: list[np.ndarray] = []
        self._rejected: list[np.ndarray] = []

    def complete(
        self, code: np.ndarray, scores: Sequence[float], constraints: Mapping[str, float]
    ) -> None:
        """A usable trial: ``scores`` signed so that higher is better (``k``)."""
        self._codes.append(code)
        self._scores.append(np.asarray(scores, dtype=np.float64))
        self._constraints.append(constraints)

    def pending(self, code: np.ndarray) -> None:
        """A running trial (or a proposal not yet evaluated)."""
        self._pending.append(code)

    def rejected(self, code: np.ndarray) -> None:
        """A pruned, failed or NaN trial: not learned from, but never proposed again."""
        self._rejected.append(code)

    def build(self) -> History:
        names = self._names
        if names is None:
            names = tuple(sorted({k for c in self._constraints for k in c}))
        # a missing or non-finite constraint value counts as satisfied (Optuna's None)
        rows = [[c.get(k, 0.0) for k in names] for c in self._constraints]
        table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
        table = np.nan_to_num(table, nan=0.0)
        d = self.dim
        return History(
            codes=np.asarray(self._codes, dtype=np.int64).reshape(-1, d),
            scores=np.asarray(self._scores, dtype=np.float64).reshape(-1, len(self.directions)),
            pending=np.asarray(self._pending, dtype=np.int64).reshape(-1, d),
            rejected=np.asarray(self._rejected, dtype=np.int64).reshape(-1, d),
            directions=self.directions,
            constraints=table,
            constraint_names=names,
        )


class SearchEngine:
    """A proposer plus where its predictor comes from, over one code space.

    Args:
        proposer: the proposal rule; its ``space`` is the engine's space.
        source: the predictor source.
    """

    def __init__(self, *, proposer: Proposer, source: PredictorSource) -> None:
        if not isinstance(proposer, Proposer):
            raise TypeError(f"proposer must be a Proposer, got {type(proposer).__name__}")
        if not isinstance(source, PredictorSource):
            raise TypeError(f"source must be a PredictorSource, got {type(source).__name__}")
        check_prior(source.prior, proposer.space)
        self.proposer = proposer
        self.source = source
        self.space: CodeSpace = proposer.space

    def model(self, history: History, rng: np.random.Generator) -> ScoreModel | None:
        """The (re)fitted score model for ``history``; one seed is drawn from ``rng``."""
        return self.source.model(history, seed=int(rng.integers(2**31 - 1)))

    def candidates(
        self, history: History, model: ScoreModel | None, rng: np.random.Generator
    ) -> np.ndarray:
        """Ranked candidate codes, ``m x d`` (none without a model; may hold seen codes)."""
        if model is None:
            return np.empty((0, self.space.dim), dtype=np.int64)
        return self.proposer.propose(history, model, rng)

    def first_unseen(
        self,
        candidates: np.ndarray,
        seen: set[bytes],
        rng: np.random.Generator,
        *,
        tries: int = 100,
    ) -> tuple[np.ndarray, int]:
        """First candidate the space allows and not in ``seen``, else a random unseen code
        (rank ``-1``), else, when even ``tries`` random draws were all taken, a random code
        that repeats one (rank :data:`REPEATED`; the caller warns, once per study)."""
        cands = np.asarray(candidates, dtype=np.int64).reshape(-1, self.space.dim)
        ok = self.space.admissible(cands) if len(cands) else np.ones(0, dtype=bool)
        for rank, c in enumerate(cands):
            if ok[rank] and code_key(c) not in seen:
                return c, rank
        for _ in range(tries):
            c = self.space.sample(1, seed=rng)[0]
            if code_key(c) not in seen:
                return c, -1
        return self.space.sample(1, seed=rng)[0], REPEATED
