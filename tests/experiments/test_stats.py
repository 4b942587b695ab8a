"""compare's statistics: the 2-D attainment surface."""

from __future__ import annotations

import numpy as np
import pytest

from ncp_hpo.experiments.compare._stats import attainment_surface_2d, pareto_front_2d


def test_attainment_surfaces_by_hand() -> None:
    r1 = np.array([[1, 5], [2, 3], [4, 1]])
    r2 = np.array([[2, 4], [3, 2], [3, 9]])  # (3, 9) is dominated
    r3 = np.array([[1, 6], [5, 0.5]])
    x, median = attainment_surface_2d([r1, r2, r3])
    assert x.tolist() == [1, 2, 3, 4, 5]
    assert median.tolist() == [6, 4, 3, 2, 1]  # the 2nd best run's attainment at each x
    _, best = attainment_surface_2d([r1, r2, r3], level=1 / 3)
    assert best.tolist() == [5, 3, 2, 1, 0.5]
    _, every = attainment_surface_2d([r1, r2, r3], level=1.0)
    assert every.tolist() == [np.inf, 6, 6, 6, 2]  # r2 attains nothing at x = 1


def test_one_run_is_its_own_front_and_bad_level_is_refused() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((40, 2))
    x, y = attainment_surface_2d([pts])
    front = pareto_front_2d(pts)
    assert np.array_equal(x, front[:, 0]) and np.array_equal(y, front[:, 1])
    assert [a.size for a in attainment_surface_2d([])] == [0, 0]
    with pytest.raises(ValueError, match="level"):
        attainment_surface_2d([pts], level=0.0)
