"""Compute budgets: the budget-restricted view of the multi-resolution space."""

from __future__ import annotations

import numpy as np
import pytest

from ncp_hpo.spaces import MultiResolutionSpace
from ncp_hpo.spaces.budget import Budget, BudgetedSpace, BudgetError
from ncp_hpo.spaces.cost import flops, params

SPACE = MultiResolutionSpace()


def _view(max_flops: float | None = None, max_params: float | None = None) -> BudgetedSpace:
    return SPACE.with_budget(
        max_flops=max_flops, max_params=max_params, input_size=16, num_classes=10
    )


def test_feasible_is_the_exact_cost_against_the_caps() -> None:
    view = _view(max_flops=20e6, max_params=2e6)
    codes = SPACE.sample(500, seed=0)
    f = flops(codes, input_size=(16, 16), task="cls", num_classes=10)
    p = params(codes, task="cls", num_classes=10)
    expected = (f <= 20e6) & (p <= 2e6)
    assert 0 < expected.sum() < len(codes)  # the caps cut the sample
    np.testing.assert_array_equal(view.feasible(codes), expected)
    viol = view.budget.violation(codes)
    np.testing.assert_allclose(viol, np.maximum(f / 20e6, p / 2e6) - 1.0)


@pytest.mark.parametrize("max_flops", [30e6, 4e6, 1e6])
def test_sample_draws_only_feasible_distinct_codes(max_flops: float) -> None:
    view = _view(max_flops=max_flops)
    codes = view.sample(64, seed=1)
    assert codes.shape == (64, 27) and codes.dtype == np.int64
    SPACE.validate(codes)
    assert view.feasible(codes).all()
    assert len({tuple(c) for c in codes}) > 50  # spread over the set, not one code
    np.testing.assert_array_equal(codes, view.sample(64, seed=1))  # seeded


def test_loose_budget_samples_uniformly_by_rejection() -> None:
    """Where many codes fit, ``sample`` is rejection sampling: the codes of the base
    sample that fit, in order."""
    view = _view(max_flops=60e6)  # about half the codes at 16x16
    base = SPACE.sample(8 * 16, seed=np.random.default_rng(3))
    expected = base[view.feasible(base)][:16]
    np.testing.assert_array_equal(view.sample(16, seed=np.random.default_rng(3)), expected)


def test_neighbors_are_the_feasible_moves() -> None:
    view = _view(max_flops=4e6)
    code = view.sample(1, seed=0)[0]
    all_moves = SPACE.neighbors(code)
    moves = view.neighbors(code)
    np.testing.assert_array_equal(moves, all_moves[view.feasible(all_moves)])
    assert 0 < len(moves) < len(all_moves)


def test_round_keeps_feasible_codes_and_shrinks_the_others() -> None:
    view = _view(max_flops=4e6)
    inside = view.sample(8, seed=0)
    np.testing.assert_array_equal(view.round(inside.astype(float) + 0.2), inside)
    big = SPACE.sample(32, seed=5)
    assert not view.feasible(big).any()
    shrunk = view.round(big)
    assert shrunk.shape == big.shape and view.feasible(shrunk).all()
    # shrinking moves every dimension towards the smallest code, never past it or up
    assert (shrunk <= big).all() and (shrunk >= SPACE.lower).all()
    single = view.round(big[0].astype(float))
    assert single.shape == (27,) and view.feasible(single[None])[0]


def test_a_budget_below_the_smallest_network_is_refused() -> None:
    with pytest.raises(BudgetError, match="below the smallest network"):
        _view(max_flops=1e3)
    with pytest.raises(BudgetError, match="max_params must be a positive number"):
        Budget(max_params=-1)


def test_the_view_delegates_the_code_format() -> None:
    view = _view(max_flops=4e6)
    code = view.sample(1, seed=0)[0]
    text = view.encode(code)
    np.testing.assert_array_equal(view.decode(text), code)
    assert view.to_params(code) == SPACE.to_params(code)
    assert view.dim == 27 and view.has_exact_flops
    assert "0.004 GFLOPs at 16x16" in repr(view)


def test_neighbors_of_a_code_far_over_the_budget_are_shrunk_into_it() -> None:
    view = _view(max_flops=4e6)
    start = SPACE.decode(
        "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"
    )
    assert not view.feasible(SPACE.neighbors(start)).any()
    moves = view.neighbors(start)
    assert len(moves) > 0 and view.feasible(moves).all()
    assert len({tuple(m) for m in moves}) == len(moves)
