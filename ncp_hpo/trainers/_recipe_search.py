"""The training recipe as searchable parameters: the learning rate and weight decay that
``TrainingObjective(search_recipe=True)`` (``ncp-hpo study --search-recipe``) suggests
beside the architecture code.

Ranges, log scale, centred on the recipe in use (the task's, or the one the options set):

=================  ====================================================================
``lr``             from 1/10 to 10 times the recipe's learning rate
``weight_decay``   from 1/100 to 100 times the recipe's weight decay (1e-4 where it is 0)
=================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import FloatDistribution
    from optuna.trial import BaseTrial

__all__ = ["RECIPE_PARAMS", "recipe_distributions", "suggest_recipe"]

RECIPE_PARAMS = ("lr", "weight_decay")
"""The names of the recipe's searched parameters (as Optuna parameters and as the keyword
arguments of :func:`~ncp_hpo.trainers.train_code`)."""

_LR_SPAN = 10.0  # lr in [lr / 10, lr * 10]
_WD_SPAN = 100.0  # weight decay in [wd / 100, wd * 100]
_WD_WHEN_ZERO = 1e-4


def recipe_distributions(task: str, options: Mapping[str, Any]) -> dict[str, FloatDistribution]:
    """The log-scaled ranges of ``lr`` and ``weight_decay`` for ``task``, centred on the
    values ``options`` (the objective's training options) or the task's recipe set."""
    from optuna.distributions import FloatDistribution

    from ncp_hpo.trainers._api import TASKS

    recipe = TASKS[task].recipe
    lr = float(options.get("lr") or recipe.lr)
    wd = float(options.get("weight_decay") or recipe.weight_decay or _WD_WHEN_ZERO)
    return {
        "lr": FloatDistribution(lr / _LR_SPAN, lr * _LR_SPAN, log=True),
        "weight_decay": FloatDistribution(wd / _WD_SPAN, wd * _WD_SPAN, log=True),
    }


def suggest_recipe(
    trial: BaseTrial, distributions: Mapping[str, FloatDistribution]
) -> dict[str, float]:
    """Suggest each recipe parameter on ``trial`` -> ``{"lr": ..., "weight_decay": ...}``."""
    return {
        name: trial.suggest_float(name, d.low, d.high, log=d.log)
        for name, d in distributions.items()
    }
