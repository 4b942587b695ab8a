"""Optuna's intersection search space, updated incrementally per study.

``optuna.search_space.intersection_search_space`` compares every finished trial's
distributions on every call, so a study of ``n`` trials pays ``O(n)`` distribution
comparisons per trial. Optuna's ``IntersectionSearchSpace`` (what its own samplers use)
keeps the intersection over the trials already folded in and reads only the newer ones
(and those unfinished when last read); :class:`IntersectionCache` holds one per study
object, so the result is the same space in the same (sorted) order.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from optuna.search_space import IntersectionSearchSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

__all__ = ["IntersectionCache"]


class IntersectionCache:
    """The intersection search space over COMPLETE and PRUNED trials, cached per study.

    Keyed by the ``Study`` object (weakly: a study that is gone drops its entry); another
    ``Study`` object of the same stored study (``load_study`` in a worker) starts afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spaces: weakref.WeakKeyDictionary[Study, IntersectionSearchSpace] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, study: Study) -> dict[str, BaseDistribution]:
        with self._lock:  # n_jobs threads share one sampler, and so one study's entry
            space = self._spaces.get(study)
            if space is None:
                space = self._spaces[study] = IntersectionSearchSpace(include_pruned=True)
            return space.calculate(study)
