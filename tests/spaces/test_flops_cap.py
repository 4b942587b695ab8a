"""``cap_flops``: any space with closed-form FLOPs restricted to a FLOPs cap (NAS-Bench-201)."""

from __future__ import annotations

import numpy as np
import pytest

from ncp_hpo.exceptions import BudgetError
from ncp_hpo.search._warm_start import auto_warm_start
from ncp_hpo.spaces import NB201Space
from ncp_hpo.spaces.budget import BudgetedSpace, FlopsCap, cap_flops


def test_nb201_view_samples_moves_and_rounds_within_the_cap() -> None:
    base = NB201Space()
    space = cap_flops(base, 20.0, scale=1e-6, unit="MFLOPs")
    assert isinstance(space, BudgetedSpace) and space.restricted
    assert repr(space) == "BudgetedSpace(<= 20 MFLOPs)"
    codes = space.sample(300, seed=0)
    assert space.feasible(codes).all() and len(np.unique(codes, axis=0)) > 100
    assert (base.flops(codes) / 1e6 <= 20.0).all()
    nbrs = space.neighbors(codes[0])
    assert len(nbrs) and space.feasible(nbrs).all()
    rng = np.random.default_rng(1)
    assert space.feasible(space.round(rng.random((50, 30)))).all()
    assert space.feasible(space.default_start()[None]).all()
    # everything else is the base space's: names, parameters, string form, op-count features
    assert space.names == base.names and space.encode(codes[0]) == base.encode(codes[0])
    np.testing.assert_array_equal(space.input_features, base.input_features)
    assert space.to_params(codes[0]) == base.to_params(codes[0])
    # the zero-cost warm start applies to the view, drawing its pool within the cap
    warm = auto_warm_start(space)
    assert warm is not None and space.feasible(warm.ranked_pool(space, 0)[:10]).all()


def test_cap_below_the_smallest_cell_or_not_positive_is_refused() -> None:
    with pytest.raises(BudgetError, match=r"below the smallest code of the space \(7.7888"):
        cap_flops(NB201Space(), 5.0, scale=1e-6, unit="MFLOPs")
    with pytest.raises(BudgetError, match="must be a positive number"):
        FlopsCap(NB201Space(), -1.0)
