"""The study history a proposer sees: plain arrays, independent of Optuna and Ax."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

__all__ = ["History", "code_key", "code_keys", "pareto_mask", "unique_rows"]


@dataclass(frozen=True)
class History:
    """The study's usable history, rebuilt from the storage for every proposal.

    Attributes:
        codes: ``n x d`` int codes of COMPLETE trials with finite values.
        scores: ``n x k`` objective values signed so that higher is better.
        pending: ``p x d`` codes of RUNNING trials (including proposals not yet suggested).
        directions: ``"maximize"``/``"minimize"`` per objective (length ``k``).
        constraints: ``n x c`` constraint values (feasible when all <= 0), ``c`` may be 0.
        constraint_names: the ``c`` constraint names.
        rejected: ``r x d`` codes of pruned/failed/NaN trials: not learned from, but seen.
    """

    codes: np.ndarray
    scores: np.ndarray
    pending: np.ndarray
    directions: tuple[str, ...]
    constraints: np.ndarray | None = None
    constraint_names: tuple[str, ...] = ()
    rejected: np.ndarray | None = None
    _seen: frozenset[bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.constraints is None:
            object.__setattr__(self, "constraints", np.zeros((len(self.codes), 0)))

    @property
    def violation(self) -> np.ndarray:
        """``n`` total positive constraint violation (0 when feasible)."""
        assert self.constraints is not None
        return np.clip(self.constraints, 0.0, None).sum(axis=1)

    @property
    def feasible(self) -> np.ndarray:
        """``n`` bool: every constraint value <= 0."""
        return self.violation <= 0

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])

    def seen(self) -> set[bytes]:
        """Keys of every evaluated, pending, pruned or failed code (see :func:`code_key`);
        a fresh set each call, built once per history (the arrays are not to be mutated)."""
        if self._seen is None:
            rows = [self.codes, self.pending]
            if self.rejected is not None:
                rows.append(self.rejected)
            keys = frozenset(k for part in rows for k in code_keys(part))
            object.__setattr__(self, "_seen", keys)
        assert self._seen is not None
        return set(self._seen)

    def incumbents(self, max_count: int = 8) -> np.ndarray:
        """Best codes: the best trial (single objective) or the Pareto set (multi).

        Feasible trials first; with none feasible, the least-violating ones.
        Returns ``m x d`` (``m <= max_count``), best first.
        """
        if self.n == 0:
            return self.codes[:0]
        pool = np.flatnonzero(self.feasible)
        if pool.size == 0:
            order = np.argsort(self.violation, kind="stable")
            return self.codes[order[:max_count]]
        s = self.scores[pool]
        if s.shape[1] == 1:
            order = pool[np.argsort(-s[:, 0], kind="stable")]
            return self.codes[order[:max_count]]
        front = pool[pareto_mask(s)]
        # rank the front by the mean of per-objective ranks (spreads picks along it)
        fs = self.scores[front]
        ranks = np.argsort(np.argsort(-fs, axis=0), axis=0).mean(axis=1)
        return self.codes[front[np.argsort(ranks, kind="stable")][:max_count]]


def code_key(code: np.ndarray) -> bytes:
    """Hashable key of one code."""
    return np.ascontiguousarray(code, dtype=np.int64).tobytes()


def code_keys(codes: np.ndarray) -> list[bytes]:
    """:func:`code_key` of every row of ``codes`` (``n x d``), in one pass."""
    rows = np.ascontiguousarray(codes, dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] == 0:
        return [code_key(c) for c in rows]
    keys = rows.view(np.dtype((np.void, 8 * rows.shape[1]))).ravel().tolist()
    return cast("list[bytes]", keys)


def unique_rows(a: np.ndarray) -> np.ndarray:
    """Unique rows of ``a`` in first-seen order.

    Integer codes (all of them in practice) by their byte keys in one dictionary pass --
    each row's first index, in increasing order, as ``np.unique(..., return_index=True)``
    sorted would give, without its lexicographic sort; other dtypes through ``np.unique``."""
    if len(a) == 0:
        return a
    if a.ndim == 2 and a.shape[1] > 0 and np.issubdtype(a.dtype, np.integer):
        first: dict[bytes, int] = {}
        for i, k in enumerate(code_keys(a)):
            first.setdefault(k, i)
        return a[np.fromiter(first.values(), dtype=np.intp, count=len(first))]
    _, idx = np.unique(a, axis=0, return_index=True)
    return a[np.sort(idx)]


def pareto_mask(scores: np.ndarray) -> np.ndarray:
    """``n`` bool: rows of ``scores`` (higher better) not dominated by any other row."""
    ge = (scores[:, None, :] >= scores[None, :, :]).all(-1)
    gt = (scores[:, None, :] > scores[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)
    return np.asarray(~dominated)
