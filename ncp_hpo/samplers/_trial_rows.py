"""What the history takes from each finished trial, worked out once per trial.

The sampler rebuilds its history from the storage on every proposal (other workers'
trials count at once). A finished trial (COMPLETE, PRUNED, FAIL) never changes -- Optuna
refuses updates to it, and its storages replace a trial's object rather than edit it --
so its row (the decoded code, the signed values, the constraints) is a pure function of
the ``FrozenTrial`` object. :class:`TrialRows` keeps each finished trial's row beside the
object it came from and reuses it while the storage hands out that same object; running
and waiting trials are worked out afresh every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from optuna.trial import TrialState

from ncp_hpo.samplers._private_apis import optuna_trial_id

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["COMPLETE", "PENDING", "REJECTED", "SKIP", "TrialRow", "TrialRows", "trial_row"]

SKIP, PENDING, REJECTED, COMPLETE = 0, 1, 2, 3


class TrialRow(NamedTuple):
    """One trial's part of the history: ``kind`` (``SKIP``: no code over the space,
    ``PENDING``, ``REJECTED``: pruned/failed/NaN, or ``COMPLETE``), its ``(code,
    code_key)`` entry, and (``COMPLETE``) its signed values and constraints."""

    kind: int
    entry: tuple[np.ndarray, bytes] | None
    scores: Any = None  # k signed values (COMPLETE)
    constraints: Any = None  # the trial's constraints (COMPLETE)


def trial_row(
    t: FrozenTrial,
    entry_of: Callable[[FrozenTrial], tuple[np.ndarray, bytes] | None],
    sign: np.ndarray,
) -> TrialRow:
    """The row of trial ``t`` (``entry_of``: its code over the space; ``sign``: +1 per
    maximised objective, -1 per minimised one)."""
    entry = entry_of(t)
    if entry is None:
        return TrialRow(SKIP, None)
    if t.state == TrialState.RUNNING:
        return TrialRow(PENDING, entry)
    values = np.asarray(t.values if t.values is not None else [], dtype=np.float64)
    if (
        t.state != TrialState.COMPLETE
        or values.shape != sign.shape
        or not np.isfinite(values).all()
    ):
        return TrialRow(REJECTED, entry)  # pruned/failed/NaN: no usable signal, but seen
    return TrialRow(COMPLETE, entry, values * sign, t.constraints)


class TrialRows:
    """:func:`trial_row` memoised for finished trials, by trial id and object identity.

    One entry per trial id (the latest object seen), holding a reference to its trial
    object, so an entry is only reused for the very object it was computed from (a trial
    of another study or storage with the same id is worked out afresh and replaces it).
    ``sign`` is fixed per instance (one per space state and study directions).
    """

    def __init__(
        self,
        entry_of: Callable[[FrozenTrial], tuple[np.ndarray, bytes] | None],
        sign: np.ndarray,
    ) -> None:
        self._entry_of = entry_of
        self._sign = sign
        self._rows: dict[int, tuple[FrozenTrial, TrialRow]] = {}

    def __call__(self, trial: FrozenTrial) -> TrialRow:
        if not trial.state.is_finished():
            return trial_row(trial, self._entry_of, self._sign)
        key = optuna_trial_id(trial)
        hit = self._rows.get(key)
        if hit is not None and hit[0] is trial:
            return hit[1]
        row = trial_row(trial, self._entry_of, self._sign)
        self._rows[key] = (trial, row)
        return row

    def __len__(self) -> int:
        return len(self._rows)
