"""The one place that touches other libraries' private names (no public equivalent exists).

Each helper wraps one private name of Optuna 5.0 or Ax 1.3.1; ``tests/samplers/
test_private_apis.py`` pins every one of them, so an upgrade that moves a name fails there
first. Ax is imported only inside the Ax helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = [
    "ax_client_experiment",
    "ax_generation_node_name",
    "ax_generator_key",
    "ax_objective_groups",
    "ax_set_pausing_criteria",
    "optuna_independent_sampling_template",
    "optuna_set_trial_system_attr",
    "optuna_study_id",
    "optuna_trial_id",
]


def optuna_independent_sampling_template() -> str:
    """The message every built-in Optuna sampler logs when it samples a parameter
    independently (fields: ``param_name``, ``trial_number``, ``independent_sampler_name``,
    ``sampler_name``, ``fallback_reason``)."""
    from optuna.samplers._base import _INDEPENDENT_SAMPLING_WARNING_TEMPLATE

    return str(_INDEPENDENT_SAMPLING_WARNING_TEMPLATE)


def optuna_set_trial_system_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Write a system attribute of a running trial from a sampler, as Optuna's own
    samplers do (a sampler gets a ``FrozenTrial``, which has no public setter)."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def optuna_study_id(study: Study) -> int:
    """The storage's id of ``study``. Optuna's ``IntersectionSearchSpace`` (TPE, CMA-ES,
    NSGA-II, GP) binds a sampler to the first study id it sees, so a sampler replayed in
    another storage must meet the same id there (:mod:`ncp_hpo.samplers._replay`)."""
    return int(study._study_id)


def optuna_trial_id(trial: FrozenTrial) -> int:
    """The storage's id of ``trial`` (unique within its storage; ``number`` is only unique
    within its study). :mod:`ncp_hpo.samplers._trial_rows` keys its memo on it."""
    return int(trial._trial_id)


def ax_generator_key(generator_run: Any) -> str | None:
    """The generator key of an Ax ``GeneratorRun`` (``"Fallback_Sobol"`` for trials the
    deduplication fallback generated)."""
    key = getattr(generator_run, "_generator_key", None)
    return key if isinstance(key, str) else None


def ax_generation_node_name(generator_run: Any) -> str | None:
    """The name of the generation node that produced an Ax ``GeneratorRun``."""
    node = getattr(generator_run, "_generation_node_name", None)
    return str(node) if node else None


def ax_objective_groups(objective: Any) -> list[list[tuple[str, float]]] | None:
    """Ax's own split of an objective expression into sub-objectives: per sub-objective
    its ``(metric name, weight)`` terms; ``None`` when the objective has no such split."""
    parsed = getattr(objective, "_parsed", None)
    if isinstance(parsed, tuple) and len(parsed) == 2:
        return [list(sub) for sub in parsed[1]]
    return None


def ax_set_pausing_criteria(node: Any, criteria: Sequence[Any]) -> None:
    """Give an ``ExternalGenerationNode`` pausing criteria (its ``__init__`` does not
    forward them; this is the attribute ``GenerationNode.__init__`` stores them in)."""
    node._pausing_criteria = list(criteria)


def ax_client_experiment(client: Any) -> Any:
    """The ``Experiment`` of an ``ax.api.Client`` (Ax 1.3.1 has no public accessor; its
    own analysis code reads this attribute), or ``None`` before it is configured."""
    return getattr(client, "_maybe_experiment", None)
