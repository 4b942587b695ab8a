"""The search engine shared by the adapters (``ncp_hpo.search``): public names, proposer
validation, the one FLOPs trade-off, history assembly, and the space hooks it relies on."""

from __future__ import annotations

import numpy as np
import pytest

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers import NCPSampler, NetAdaptSampler, NeuralPredictorSampler
from ncp_hpo.search import (
    GuidedNCPProposer,
    HistoryBuilder,
    NCPProposer,
    NetAdaptProposer,
    NeuralPredictorProposer,
    PredictorSource,
    SearchEngine,
)
from ncp_hpo.search._tradeoff import check_lam, flops_penalty, log_flops, uses_flops
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space

MR = MultiResolutionSpace()
NB = NB201Space()


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: NCPProposer(MR, iterations=0), "iterations must be an int >= 1"),
        (lambda: NCPProposer(MR, lr=0.0), "lr must be a finite number > 0"),
        (lambda: NCPProposer(MR, strategy="greedy"), "strategy must be one of"),
        (lambda: NCPProposer(MR, n_random_starts=-1), "n_random_starts must be an int >= 0"),
        (lambda: GuidedNCPProposer(MR, kappa=-1.0), "kappa must be a finite number >= 0"),
        (lambda: GuidedNCPProposer(MR, hops=0), "hops must be an int >= 1"),
        (lambda: NetAdaptProposer(MR, max_steps=0), "max_steps must be an int >= 1"),
        (lambda: NeuralPredictorProposer(MR, pool_size=0), "pool_size must be an int >= 1"),
        (lambda: NeuralPredictorProposer(MR, top_k=1.5), "top_k must be an int >= 1"),
        (lambda: NCPProposer(MR, lam=-0.1), "lam must be a finite number >= 0"),
        (lambda: NCPProposer(MR, lam=float("nan")), "lam must be a finite number >= 0"),
        (lambda: NCPProposer(MR, lam="0.1"), "lam must be a number >= 0"),
    ],
)
def test_proposers_refuse_bad_arguments(factory, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_proposer_needs_a_code_space() -> None:
    with pytest.raises(TypeError, match="space must be a CodeSpace, got str"):
        NCPProposer("nb201")  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [NCPSampler, NetAdaptSampler, NeuralPredictorSampler])
def test_every_sampler_checks_lam_the_same_way(cls) -> None:
    with pytest.raises(ValueError, match="lam must be a finite number >= 0, got -1"):
        cls(space=NB, lam=-1)


def test_lambda_utility() -> None:
    assert check_lam(1) == 1.0 and isinstance(check_lam(1), float)
    assert uses_flops(0.5, MR) and not uses_flops(0.0, MR)
    codes = MR.sample(5, seed=0)
    lf = log_flops(MR, codes)
    np.testing.assert_allclose(lf, np.log(MR.flops(codes)))
    pen = flops_penalty(2.0, lf, lf)
    np.testing.assert_allclose(pen, 2.0 * (lf - lf.mean()) / lf.std())
    assert pen[np.argmax(lf)] > 0 > pen[np.argmin(lf)]  # more FLOPs, lower utility


def test_history_builder_collects_constraints_by_name() -> None:
    rows = HistoryBuilder(dim=2, directions=["maximize", "minimize"])
    rows.complete(np.array([1, 2]), [0.5, -3.0], {"b": 1.0})
    rows.complete(np.array([3, 4]), [0.7, -1.0], {"a": -2.0, "b": float("nan")})
    rows.pending(np.array([5, 6]))
    rows.rejected(np.array([7, 8]))
    h = rows.build()
    assert h.n == 2 and h.directions == ("maximize", "minimize")
    assert h.constraint_names == ("a", "b")
    # missing or NaN constraint values count as satisfied (0)
    np.testing.assert_array_equal(h.constraints, [[0.0, 1.0], [-2.0, 0.0]])
    assert h.feasible.tolist() == [False, True]
    assert len(h.seen()) == 4 and h.pending.shape == (1, 2) and h.rejected.shape == (1, 2)


def test_engine_checks_the_prior_against_the_space() -> None:
    x = NB.sample(20, seed=0).astype(float)
    prior = NeuralPredictor(epochs=2, seed=0).fit(x, {"acc": x.sum(1)})
    with pytest.raises(ValueError, match="fitted on codes of 30 dimensions but the space"):
        SearchEngine(proposer=NCPProposer(MR), source=PredictorSource(prior=prior))


def test_engine_first_unseen_skips_seen_and_inadmissible_codes() -> None:
    budget = MR.with_budget(max_flops=4e6, input_size=16, num_classes=10)
    engine = SearchEngine(proposer=NetAdaptProposer(budget), source=PredictorSource())
    rng = np.random.default_rng(0)
    inside = budget.sample(2, seed=1)
    over = MR.upper.astype(np.int64)  # the largest network: over any small budget
    assert not budget.admissible(over[None])[0]
    seen = {np.ascontiguousarray(inside[0], dtype=np.int64).tobytes()}
    code, rank = engine.first_unseen(np.stack([over, inside[0], inside[1]]), seen, rng)
    assert rank == 2 and (code == inside[1]).all()


def test_space_hooks() -> None:
    np.testing.assert_array_equal(MR.paper_start(), np.where(MR.is_width, 64, 2))
    np.testing.assert_array_equal(MR.default_start(), MR.paper_start())
    np.testing.assert_array_equal(MR.grid_step(), MR.step)
    assert MR.round_every is None and not MR.restricted
    assert NB.paper_start() is None and NB.round_every == 10
    assert NB.encode(NB.default_start()).startswith("|nor_conv_3x3~0|")
    np.testing.assert_array_equal(NB.grid_step(), np.ones(NB.dim))
    budget = MR.with_budget(max_flops=4e6, input_size=16, num_classes=10)
    assert budget.restricted and budget.round_every is None
    np.testing.assert_array_equal(budget.grid_step(), MR.grid_step())
    codes = MR.sample(50, seed=3)
    np.testing.assert_array_equal(budget.admissible(codes), budget.feasible(codes))
    assert MR.admissible(codes).all()


def test_a_proposer_node_is_built_from_public_names() -> None:
    pytest.importorskip("ax")
    from ncp_hpo.samplers import ProposerNode

    node = ProposerNode(
        GuidedNCPProposer(NB, kappa=1.0), source=PredictorSource(refit_every=2), name="G"
    )
    assert node.space is NB and node.source.refit_every == 2 and node.name == "G"
