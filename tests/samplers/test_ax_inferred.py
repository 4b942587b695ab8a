"""The Ax nodes on an Ax experiment's own parameters (no code space): int and float ranges,
log scale, choices; driven by a real ``ax.api.client.Client`` loop."""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("ax")

from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

from ncp_hpo.samplers import (
    NCPNode,
    NetAdaptNode,
    count_fallback_trials,
    ncp_generation_strategy,
)
from ncp_hpo.spaces import NB201Space, ParamSpace

FAST: dict[str, Any] = {"predictor_params": {"epochs": 50}}
pytestmark = [
    pytest.mark.filterwarnings(r"ignore::Warning:ax\."),
    pytest.mark.usefixtures("quiet_single_threaded_ax"),
]

PARAMETERS = [
    RangeParameterConfig(name="layers", bounds=(1, 6), parameter_type="int"),
    RangeParameterConfig(name="width", bounds=(8, 512), parameter_type="int", scaling="log"),
    RangeParameterConfig(name="lr", bounds=(1e-5, 1e-1), parameter_type="float", scaling="log"),
    ChoiceParameterConfig(name="act", values=["relu", "tanh", "gelu"], parameter_type="str"),
]


def score(p: dict[str, Any]) -> float:
    return (
        -((p["layers"] - 3) ** 2) / 4
        - (math.log2(p["width"]) - 6) ** 2 / 4
        - (math.log10(p["lr"]) + 3) ** 2
        + (p["act"] == "gelu")
    )


def _run(gs: Any, n: int, *, seed: int = 0) -> Client:
    client = Client(random_seed=seed)
    client.configure_experiment(name="any_space", parameters=PARAMETERS)
    client.configure_optimization(objective="score")
    client.set_generation_strategy(gs)
    done = 0
    while done < n:
        for index, p in client.get_next_trials(max_trials=1).items():
            client.complete_trial(trial_index=index, raw_data={"score": score(p)})
            done += 1
    return client


@pytest.mark.parametrize("mode", ["local", "guided", "paper"])
def test_every_ncp_mode_searches_the_experiments_own_parameters(mode: str) -> None:
    extra = {"iterations": 20} if mode == "paper" else {}
    gs = ncp_generation_strategy(n_init=5, seed=0, mode=mode, **FAST, **extra)
    client = _run(gs, 14)
    counts = count_fallback_trials(client)
    assert counts == {"Sobol": 5, "NCP": 9, "Fallback_Sobol": 0}
    exp = client._experiment
    node = gs._nodes[1]
    assert isinstance(node.space, ParamSpace) and node.space.dim == 6  # 3 ranges + 3 choices
    for trial in exp.trials.values():
        p = trial.arms[0].parameters
        assert exp.search_space.check_membership(p), p
        assert isinstance(p["layers"], int) and isinstance(p["width"], int)
    if mode == "local":  # the default mode improves on the Sobol start
        values = [score(t.arms[0].parameters) for t in exp.trials.values()]
        assert max(values[5:]) > max(values[:5])


@pytest.mark.parametrize("node", ["netadapt", "neural-predictor"])
def test_the_baseline_nodes_search_it_too(node: str) -> None:
    extra = {"pool_size": 500} if node == "neural-predictor" else {}
    client = _run(ncp_generation_strategy(n_init=4, seed=0, node=node, **FAST, **extra), 8)  # type: ignore[arg-type]
    assert count_fallback_trials(client)["Fallback_Sobol"] == 0


def test_a_node_without_a_space_has_none_until_it_sees_the_experiment() -> None:
    node = NCPNode(**FAST)
    assert node.infers_space
    with pytest.raises(Exception, match="infers its space from the experiment"):
        _ = node.space
    with pytest.raises(ValueError, match=r"lam=0\.5 weights exact FLOPs"):
        NCPNode(lam=0.5)
    with pytest.raises(ValueError, match="refit_every must be >= 1"):  # not at the first update
        NetAdaptNode(refit_every=0)
    with pytest.raises(ValueError, match="differs from the node's space"):
        ncp_generation_strategy(NB201Space(), node=node)
