"""The zero-cost table shipped with the package is what the code computes."""

from __future__ import annotations

import numpy as np

from ncp_hpo.spaces import NB201Space
from ncp_hpo.zerocost import PROXY_VERSION, proxy_score
from ncp_hpo.zerocost._bundled import BUNDLED_VERSION, bundled_scores, bundled_table


def test_shipped_nas_bench_201_synflow_matches_a_recomputed_sample() -> None:
    shipped = bundled_scores("nas-bench-201", "synflow")
    assert shipped is not None and BUNDLED_VERSION == PROXY_VERSION
    codes, scores = shipped
    np.testing.assert_array_equal(codes, NB201Space().enumerate_all())
    rng = np.random.default_rng(2026)
    for i in rng.choice(len(codes), 6, replace=False):
        assert proxy_score("nas-bench-201", codes[i]) == scores[i]
    table = bundled_table("nas-bench-201", "synflow")
    assert table is not None and table.path is not None and table.path.name.endswith(".npy")
    np.testing.assert_array_equal(table.lookup(codes), scores)
    assert bundled_scores("seg", "synflow") is None


def test_synflow_is_zero_exactly_for_cells_without_a_path() -> None:
    """Synflow is 0 exactly where no input-to-output path avoids a ``none`` edge."""
    shipped = bundled_scores("nas-bench-201", "synflow")
    assert shipped is not None
    codes, scores = shipped
    space = NB201Space()
    on = np.array([space.to_indices(c) for c in codes]) != 0  # edge k carries an operation
    e1_0, e2_0, e2_1, e3_0, e3_1, e3_2 = on.T  # the order of ncp_hpo.spaces.nb201.EDGES
    path = e3_0 | (e1_0 & (e3_1 | (e2_1 & e3_2))) | (e2_0 & e3_2)
    np.testing.assert_array_equal(scores == 0, ~path)
    assert 0 < (~path).sum() < len(codes) and np.isfinite(scores).all()
