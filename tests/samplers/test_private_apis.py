"""Pins every private name of Optuna and Ax that ``ncp_hpo.samplers._private_apis`` wraps:
an upgrade that renames or reshapes one fails here, not deep inside a study."""

from __future__ import annotations

import optuna
import pytest

from ncp_hpo.samplers import _private_apis as private

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_optuna_independent_sampling_template_has_the_fields() -> None:
    text = private.optuna_independent_sampling_template().format(
        param_name="x",
        trial_number=3,
        independent_sampler_name="RandomSampler",
        sampler_name="NCPSampler",
        fallback_reason="because",
    )
    assert "x" in text and "3" in text and "RandomSampler" in text and "because" in text


def test_optuna_trial_system_attr_is_written_through_the_storage() -> None:
    study = optuna.create_study()
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    private.optuna_set_trial_system_attr(study, frozen, "ncp:test", [1, 2])
    assert study.trials[0].system_attrs["ncp:test"] == [1, 2]


def test_optuna_study_id_is_the_storage_id() -> None:
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="a")
    study = optuna.create_study(storage=storage, study_name="b")
    assert private.optuna_study_id(study) == storage.get_study_id_from_name("b") == 1


def test_optuna_trial_id_is_the_storage_id() -> None:
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="a").ask()
    study = optuna.create_study(storage=storage, study_name="b")
    study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.number == 0
    assert private.optuna_trial_id(frozen) == storage.get_trial_id_from_study_id_trial_number(
        private.optuna_study_id(study), 0
    )


def test_ax_private_names() -> None:
    pytest.importorskip("ax")
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig
    from ax.core.generator_run import GeneratorRun
    from ax.core.objective import Objective
    from ax.generation_strategy.external_generation_node import ExternalGenerationNode

    run = GeneratorRun(arms=[], generator_key="Fallback_Sobol", generation_node_name="NCP")
    assert private.ax_generator_key(run) == "Fallback_Sobol"
    assert private.ax_generation_node_name(run) == "NCP"

    client = Client()
    assert private.ax_client_experiment(client) is None
    client.configure_experiment(
        parameters=[RangeParameterConfig(name="x", parameter_type="float", bounds=(0, 1))]
    )
    client.configure_optimization(objective="a, -b")
    experiment = private.ax_client_experiment(client)
    assert experiment is client._experiment
    objective = experiment.optimization_config.objective
    assert private.ax_objective_groups(objective) == [[("a", 1.0)], [("b", -1.0)]]
    scalar = Objective(expression="2*a + b", metric_name_to_signature={"a": "a", "b": "b"})
    assert private.ax_objective_groups(scalar) == [[("a", 2.0), ("b", 1.0)]]

    class Node(ExternalGenerationNode):
        def update_generator_state(self, experiment, data):  # type: ignore[no-untyped-def]
            pass

        def get_next_candidate(self, pending_parameters):  # type: ignore[no-untyped-def]
            return {}

    node = Node(name="n")
    marker = object()
    private.ax_set_pausing_criteria(node, [marker])
    assert list(node.pausing_criteria) == [marker]
