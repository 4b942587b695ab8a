"""Ax generation nodes (``ncp_hpo.samplers._ax``) driven by real ``ax.api.client.Client`` loops.

Objectives are benchmark tables: NAS-Bench-201 is complete, so every proposal is looked up
exactly. NAS-Bench-MR (``seg``) holds 2,507 of ~1e23 codes, so its test uses a
*table-restricted* stand-in: a code in the table scores its measured mIoU, any other code
scores ``-FLOPs`` in G (exact, from the cost model). That only drives the loop; it says
nothing about search quality.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ax")

from ax.api.client import Client
from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
from ax.exceptions.core import UserInputError

from ncp_hpo.benchmarks import BenchmarkTable
from ncp_hpo.samplers import (
    FALLBACK_KEY,
    NCPNode,
    NetAdaptNode,
    ProposerNode,
    count_fallback_trials,
    ncp_generation_strategy,
)
from ncp_hpo.search import code_key
from ncp_hpo.search._history import pareto_mask
from ncp_hpo.spaces import CodeSpace, MultiResolutionSpace, NB201Space

# small online predictor fits keep the file quick
FAST: dict[str, Any] = {"predictor_params": {"epochs": 50}}

# Ax 1.3.1 itself warns on every call (pandas in-place deprecations, MOO thresholds).
pytestmark = [
    pytest.mark.filterwarnings(r"ignore::Warning:ax\."),
    pytest.mark.usefixtures("quiet_single_threaded_ax"),
]


def _client(
    space: CodeSpace,
    gs: Any,
    *,
    objective: str = "acc",
    constraints: list[str] | None = None,
    random_seed: int | None = 0,
    parameters: list[Any] | None = None,
) -> Client:
    client = Client(random_seed=random_seed)
    client.configure_experiment(name="ncp_test", parameters=parameters or space.ax_parameters())
    client.configure_optimization(objective=objective, outcome_constraints=constraints)
    client.set_generation_strategy(gs)
    return client


def _run(
    client: Client, evaluate: Callable[[dict[str, Any]], dict[str, float]], n: int, batch: int = 2
) -> list[dict[str, Any]]:
    """Ask-tell until ``n`` trials completed (a call may return fewer trials than asked)."""
    params: list[dict[str, Any]] = []
    while len(params) < n:
        trials = client.get_next_trials(max_trials=min(batch, n - len(params)))
        assert trials, "the strategy generated nothing"
        for index, p in trials.items():
            client.complete_trial(trial_index=index, raw_data=evaluate(p))
            params.append(p)
    return params


def _nb201_eval(table: BenchmarkTable) -> Callable[[dict[str, Any]], dict[str, float]]:
    def evaluate(p: dict[str, Any]) -> dict[str, float]:
        row = table.query(table.space.from_params(p))
        assert row is not None  # NAS-Bench-201 is complete
        return {"acc": row["Acc"], "flops": row["flops"]}

    return evaluate


def _assert_valid(client: Client, space: CodeSpace) -> None:
    exp = client._experiment
    for trial in exp.trials.values():
        p = trial.arms[0].parameters
        space.from_params(p)  # raises InvalidCodeError otherwise
        assert exp.search_space.check_membership(p), p


def _sequence(client: Client) -> list[dict[str, Any]]:
    return _sequence_of(client._experiment)


def _sequence_of(exp: Any) -> list[dict[str, Any]]:
    return [dict(exp.trials[i].arms[0].parameters) for i in sorted(exp.trials)]


# -- end-to-end Client loops ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("node", "name", "extra"),
    [
        ("netadapt", "NetAdapt", {}),
        ("neural-predictor", "NeuralPredictor", {"pool_size": 2000}),
        ("ncp", "NCP", {}),
    ],
)
def test_nb201_loop_beats_its_sobol_phase(
    nb201: BenchmarkTable, node: str, name: str, extra: dict[str, Any]
) -> None:
    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=5, node=node, **FAST, **extra)  # type: ignore[arg-type]
    client = _client(space, gs)
    _run(client, _nb201_eval(nb201), 20)
    _assert_valid(client, space)
    counts = count_fallback_trials(client._experiment)
    assert counts["Sobol"] == 5
    assert counts.get(name, 0) >= 14
    assert counts[FALLBACK_KEY] <= 1  # measured: 0 for all three nodes, seeds 0-5
    codes = [space.from_params(p) for p in _sequence(client)]
    assert len({code_key(c) for c in codes}) == 20  # no trial repeats a code
    acc = np.array([nb201.query(c)["Acc"] for c in codes])  # type: ignore[index]
    # seeds 0-5, all nodes: node-phase mean 39-44 vs Sobol-phase mean 27-38
    assert acc[5:].mean() > acc[:5].mean()
    assert acc.max() > acc[:5].max()


@pytest.mark.parametrize(
    ("mode", "proposer"),
    [("paper", "NCPProposer"), ("guided", "GuidedNCPProposer"), ("local", "LocalNCPProposer")],
)
def test_the_ncp_node_runs_every_mode_on_nb201(
    nb201: BenchmarkTable, mode: str, proposer: str
) -> None:
    """Every mode of ``NCPSampler`` is a mode of the Ax node too: a short Client loop."""
    space = nb201.space
    extra = {"iterations": 10} if mode == "paper" else {}
    gs = ncp_generation_strategy(space, n_init=4, seed=0, mode=mode, **FAST, **extra)
    client = _client(space, gs)
    _run(client, _nb201_eval(nb201), 8)
    node = gs._nodes[1]
    assert isinstance(node, NCPNode) and node.mode == mode
    assert type(node.proposer).__name__ == proposer
    assert count_fallback_trials(client) == {"Sobol": 4, "NCP": 4, FALLBACK_KEY: 0}
    assert node.n_random == 0  # every node trial came from the proposer's candidates
    _assert_valid(client, space)
    assert len({code_key(space.from_params(p)) for p in _sequence(client)}) == 8


def test_multi_objective_pareto_frontier(nb201: BenchmarkTable) -> None:
    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=4, node="neural-predictor", pool_size=1000, **FAST)
    # thresholds on both objectives (on one only, Ax returns an empty frontier: API-NOTES §3)
    client = _client(space, gs, objective="acc, -flops", constraints=["acc >= 0", "flops <= 300"])
    _run(client, _nb201_eval(nb201), 8, batch=3)
    _assert_valid(client, space)
    node = gs.nodes_by_name["NeuralPredictor"]
    assert isinstance(node, ProposerNode)
    h = node.history
    assert h is not None and h.directions == ("maximize", "minimize")
    assert (h.scores[:, 1] < 0).all()  # -flops: signed so that higher is better
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torch copy-construct warning inside Ax
        front = client.get_pareto_frontier(use_model_predictions=False)
    assert front
    # every Ax frontier trial is non-dominated among the observed values
    exp = client._experiment
    df = exp.lookup_data().df.pivot_table(index="trial_index", columns="metric_name", values="mean")
    signed = np.stack([df["acc"].to_numpy(), -df["flops"].to_numpy()], axis=1)
    ours = set(df.index[pareto_mask(signed)])
    assert {p[2] for p in front} <= ours


def test_multires_seg_loop_with_constraint(seg: BenchmarkTable) -> None:
    space = MultiResolutionSpace()
    assert seg.space == space

    def evaluate(p: dict[str, Any]) -> dict[str, float]:
        code = space.from_params(p)
        row = seg.query(code)
        # table-restricted stand-in (see module docstring): measured mIoU, else -FLOPs in G
        value = row["mIoU"] if row is not None else -float(space.flops(code)) / 1e9
        return {"miou": value, "params": float(space.params(code)) / 1e6}

    gs = ncp_generation_strategy(space, n_init=3, node="ncp", lam=0.1, seed=0, **FAST)
    client = _client(space, gs, objective="miou", constraints=["params <= 20"])
    _run(client, evaluate, 8)
    _assert_valid(client, space)
    counts = count_fallback_trials(client._experiment)
    assert counts["Sobol"] == 3 and counts["NCP"] == 5 and counts[FALLBACK_KEY] == 0
    h = gs.nodes_by_name["NCP"].history  # type: ignore[attr-defined]
    assert h.constraint_names == ("params <= 20",) and h.constraints.shape == (h.n, 1)
    params_m = [float(space.params(c)) / 1e6 for c in h.codes]
    np.testing.assert_allclose(h.constraints[:, 0], np.array(params_m) - 20)


# -- the node's view of the experiment ----------------------------------------------------------
def test_history_from_experiment_and_candidates(nb201: BenchmarkTable) -> None:
    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=6, node="netadapt", seed=0, **FAST)
    client = _client(space, gs, objective="acc, -flops", constraints=["lat <= 1"])
    trials = client.get_next_trials(max_trials=6)
    assert len(trials) == 6
    idx = sorted(trials)
    evaluate = _nb201_eval(nb201)
    for k, i in enumerate(idx[:3]):
        client.complete_trial(i, raw_data={**evaluate(trials[i]), "lat": float(k)})
    client.complete_trial(idx[3], raw_data={"acc": 50.0})  # no flops: unusable
    client.mark_trial_failed(idx[4])  # idx[5] stays RUNNING
    exp = client._experiment
    node = gs.nodes_by_name["NetAdapt"]
    assert isinstance(node, ProposerNode)
    node.update_generator_state(exp, exp.lookup_data())
    h = node.history
    assert h is not None
    assert h.n == 3
    first = evaluate(trials[idx[0]])
    np.testing.assert_allclose(h.scores[0], [first["acc"], -first["flops"]])
    np.testing.assert_allclose(h.constraints[:, 0], [-1.0, 0.0, 1.0])
    assert list(h.feasible) == [True, True, False]
    assert len(h.pending) == 1 and code_key(h.pending[0]) == code_key(
        space.from_params(trials[idx[5]])
    )
    taken = {code_key(space.from_params(p)) for p in trials.values()}
    a = node.get_next_candidate(pending_parameters=[])
    b = node.get_next_candidate(pending_parameters=[a])
    keys = {code_key(space.from_params(p)) for p in (a, b)}
    assert len(keys) == 2 and not keys & taken  # failed and unusable trials are taken too
    assert all(exp.search_space.check_membership(p) for p in (a, b))


def test_extra_parameters_are_filled_and_missing_ones_refused(nb201: BenchmarkTable) -> None:
    space = nb201.space
    extra = [
        RangeParameterConfig(name="lr", bounds=(1e-4, 1e-1), parameter_type="float", scaling="log"),
        ChoiceParameterConfig(name="opt", values=["sgd"], parameter_type="str"),
    ]
    gs = ncp_generation_strategy(space, n_init=2, node="netadapt", **FAST)
    client = _client(space, gs, parameters=space.ax_parameters() + extra)
    _run(client, lambda p: {"acc": _nb201_eval(nb201)(p)["acc"]}, 5)
    _assert_valid(client, space)
    seq = _sequence(client)
    assert all(p["opt"] == "sgd" and 1e-4 <= p["lr"] <= 1e-1 for p in seq)
    # an experiment lacking the code parameters is refused with a hint
    gs = ncp_generation_strategy(space, n_init=0, node="netadapt", **FAST)
    client = _client(space, gs, parameters=space.ax_parameters()[:3])
    with pytest.raises(UserInputError, match="ax_parameters"):
        client.get_next_trials(max_trials=1)


# -- seeding ------------------------------------------------------------------------------------
def _short_run(seed: int | None, random_seed: int, n: int, nb201: BenchmarkTable) -> list[Any]:
    gs = ncp_generation_strategy(nb201.space, n_init=3, node="netadapt", seed=seed, **FAST)
    client = _client(nb201.space, gs, random_seed=random_seed)
    _run(client, _nb201_eval(nb201), n)
    return _sequence(client)


def test_seeding(nb201: BenchmarkTable) -> None:
    # an explicit seed fixes Sobol and the node whatever the Client's seed
    seeded = _short_run(7, 1, 5, nb201)
    assert seeded == _short_run(7, 2, 5, nb201)
    assert seeded[3:] != _short_run(8, 1, 5, nb201)[3:]
    # no seed: the node follows the Client's random_seed
    followed = _short_run(None, 3, 5, nb201)
    assert followed == _short_run(None, 3, 5, nb201)
    assert followed[3:] != _short_run(None, 4, 5, nb201)[3:]


def test_node_rng_survives_client_reseeding(nb201: BenchmarkTable) -> None:
    """The Client re-seeds numpy/torch/random at every call; a node drawing from the global
    RNG would repeat its (random, pre-predictor) proposals and hit Ax's Sobol fallback."""
    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=0, node="netadapt", **FAST)
    client = _client(space, gs, random_seed=0)
    _run(client, _nb201_eval(nb201), 5, batch=1)
    counts = count_fallback_trials(client._experiment)
    assert counts == {FALLBACK_KEY: 0, "NetAdapt": 5}
    assert len({code_key(space.from_params(p)) for p in _sequence(client)}) == 5


# -- Ax's fallback, persistence and argument checks ---------------------------------------------
class _Stuck(NetAdaptNode):
    """Always proposes trial 0's parameters: Ax re-draws 5 times, then falls back to Sobol."""

    def get_next_candidate(self, pending_parameters: list[Any]) -> Any:
        return dict(self._first)

    def update_generator_state(self, experiment: Any, data: Any) -> None:
        super().update_generator_state(experiment, data)
        self._first = experiment.trials[0].arms[0].parameters


def test_count_fallback_trials_sees_ax_sobol_fallback(nb201: BenchmarkTable) -> None:
    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=2, node=_Stuck(space, **FAST))  # type: ignore[arg-type]
    client = _client(space, gs)
    _run(client, _nb201_eval(nb201), 3, batch=1)
    assert count_fallback_trials(client._experiment) == {"Sobol": 2, FALLBACK_KEY: 1}
    _assert_valid(client, space)


def test_save_and_resume(nb201: BenchmarkTable, tmp_path: Path) -> None:
    from ax.storage.json_store.load import load_experiment
    from ax.storage.json_store.save import save_experiment

    space = nb201.space

    def make() -> Any:
        return ncp_generation_strategy(space, n_init=3, node="netadapt", seed=0, **FAST)

    client = _client(space, make())
    _run(client, _nb201_eval(nb201), 4)
    with pytest.raises(Exception, match=r"ENCODER_REGISTRY|not registered"):  # Ax 1.3.1
        client.save_to_json_file(str(tmp_path / "snapshot.json"))
    save_experiment(client._experiment, str(tmp_path / "exp.json"))
    resumed = Client(random_seed=1)
    resumed.set_experiment(load_experiment(str(tmp_path / "exp.json")))
    resumed.set_generation_strategy(make())
    _run(resumed, _nb201_eval(nb201), 2)
    counts = count_fallback_trials(resumed._experiment)
    assert counts["Sobol"] == 3 and counts["NetAdapt"] >= 3 and counts[FALLBACK_KEY] == 0
    _assert_valid(resumed, space)


def test_argument_checks() -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="unknown node"):
        ncp_generation_strategy(space, node="bo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ready ProposerNode"):
        ncp_generation_strategy(node=NCPNode(space), lam=0.5)
    with pytest.raises(ValueError, match="n_init"):
        ncp_generation_strategy(space, n_init=-1)
    with pytest.raises(ValueError, match="max_pending"):
        NetAdaptNode(space, max_pending=0)
    with pytest.raises(TypeError, match="Proposer"):
        ProposerNode(space)  # type: ignore[arg-type]
    assert ncp_generation_strategy(space, n_init=0).name == "NCP"


def test_max_pending_limits_node_trials_awaiting_data(nb201: BenchmarkTable) -> None:
    from ax.exceptions.generation_strategy import MaxParallelismReachedException

    space = nb201.space
    gs = ncp_generation_strategy(space, n_init=2, node="netadapt", max_pending=2, **FAST)
    client = _client(space, gs)
    _run(client, _nb201_eval(nb201), 2)
    got = {**client.get_next_trials(max_trials=5), **client.get_next_trials(max_trials=5)}
    assert len(got) == 2  # the first call after Sobol returns 1 trial (Ax), then 1 more
    with pytest.raises(MaxParallelismReachedException):
        client.get_next_trials(max_trials=5)
    for index, p in got.items():
        client.complete_trial(index, raw_data=_nb201_eval(nb201)(p))
    assert len(client.get_next_trials(max_trials=5)) == 2


def test_benchmark_replications_follow_their_seed(nb201: BenchmarkTable) -> None:
    """``ax.benchmark`` deep-copies the strategy per replication and runs it under
    ``with_rng_seed(seed)``: the lazily seeded node must repeat per seed, differ across seeds."""
    from dataclasses import dataclass, field

    import torch
    from ax.benchmark.benchmark import benchmark_replication
    from ax.benchmark.benchmark_method import BenchmarkMethod
    from ax.benchmark.benchmark_problem import BenchmarkProblem, get_soo_opt_config
    from ax.benchmark.benchmark_test_function import BenchmarkTestFunction

    space = nb201.space

    @dataclass(kw_only=True)
    class Table(BenchmarkTestFunction):
        outcome_names: list[str] = field(default_factory=lambda: ["acc"])

        def evaluate_true(self, params: Any) -> torch.Tensor:
            row = nb201.query(space.from_params(params))
            assert row is not None
            return torch.tensor([[row["Acc"]]], dtype=torch.double)

    cfg, metrics = get_soo_opt_config(outcome_names=["acc"], lower_is_better=False)
    problem = BenchmarkProblem(
        name="nb201",
        optimization_config=cfg,
        opt_config_metrics=metrics,
        num_trials=8,
        test_function=Table(),
        optimal_value=float(nb201.main.max()),
        baseline_value=30.0,
        search_space=_client(space, ncp_generation_strategy(space))._experiment.search_space,
    )
    gs = ncp_generation_strategy(space, n_init=4, node="netadapt", **FAST)
    method = BenchmarkMethod(name="netadapt", generation_strategy=gs)
    runs = [benchmark_replication(problem=problem, method=method, seed=s) for s in (0, 1, 0)]
    seqs = [_sequence_of(r.experiment) for r in runs]
    assert seqs[0] == seqs[2] and seqs[0][4:] != seqs[1][4:]
    for r in runs:
        assert count_fallback_trials(r.experiment) == {"Sobol": 4, "NetAdapt": 4, FALLBACK_KEY: 0}
