"""Pruner wrapper of ``ncp-hpo study`` (outside the CLI module, which must not import Optuna)."""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

__all__ = ["LastEpochGuard"]


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
