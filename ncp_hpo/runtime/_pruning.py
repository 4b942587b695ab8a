"""Pruning of real-training studies: the pruner a study gets (:func:`choose_pruner`,
:func:`make_pruner`) and the guard that never prunes after the final epoch."""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from ncp_hpo.search import PREDICTOR_SAMPLERS

__all__ = ["LastEpochGuard", "choose_pruner", "make_pruner"]


class LastEpochGuard(BasePruner):
    """Wraps a pruner so that a trial is never pruned once its final epoch is reported.

    The trainers report after every epoch (the last one included); pruning a trial whose
    training already finished would throw away a fully measured result.
    """

    def __init__(self, pruner: BasePruner, final_step: int) -> None:
        self.pruner = pruner
        self.final_step = final_step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and step >= self.final_step:
            return False
        return bool(self.pruner.prune(study, trial))


def choose_pruner(name: str, sampler: str) -> str:
    """``auto``: no pruning for the predictor samplers (they learn only from completed
    trials), else median; any other name as given."""
    if name != "auto":
        return name
    return "none" if sampler in PREDICTOR_SAMPLERS else "median"


def make_pruner(name: str, epochs: int) -> BasePruner:
    """The Optuna pruner ``name`` (``median``, ``hyperband``, ``none``) for ``epochs``
    reported steps; median pruning never prunes after the final epoch."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        # Samplers special-case HyperbandPruner (TPE filters trials by bracket), so it is
        # not wrapped; its brackets end at max_resource = epochs.
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return LastEpochGuard(optuna.pruners.MedianPruner(n_startup_trials=5), epochs)
