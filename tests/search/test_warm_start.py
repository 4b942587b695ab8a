"""The zero-cost warm start of NCP's start-up trials (``ncp_hpo.search.ZeroCostWarmStart``)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from ncp_hpo import NCPSampler
from ncp_hpo.search import ZeroCostWarmStart, warm_start_codes
from ncp_hpo.search._warm_start import auto_warm_start
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _codes(study: optuna.Study, space: NB201Space) -> np.ndarray:
    return np.array([space.from_params(t.params) for t in study.trials])


def _flops_scorer(space: NB201Space):  # the exact cost: a zero-cost signal with no network
    return lambda codes: np.array([space.flops(c) for c in codes])


def test_start_up_trials_are_the_pools_best_in_order(nb201) -> None:
    space = nb201.space
    warm = ZeroCostWarmStart(scorer=_flops_scorer(space), pool_size=200)
    study = optuna.create_study(
        direction="maximize", sampler=NCPSampler(space=space, seed=3, warm_start=warm)
    )
    study.optimize(lambda t: nb201.query(space.suggest(t))["Acc"], n_trials=10)
    got = _codes(study, space)
    np.testing.assert_array_equal(got, warm_start_codes(warm, space, 10, seed=3))
    flops = [space.flops(c) for c in got]
    assert flops == sorted(flops, reverse=True)  # best score first
    pool = space.sample(200, seed=3)
    assert min(flops) >= np.sort([space.flops(c) for c in pool])[-10]  # the pool's top 10


def test_a_warm_start_raises_the_best_of_the_first_ten(nb201) -> None:
    """Ranked by FLOPs (Spearman 0.69 with the accuracy), the first 10 trials beat 10 random
    ones on every one of 5 seeds."""
    space = nb201.space
    warm = ZeroCostWarmStart(scorer=_flops_scorer(space), pool_size=500)
    for seed in range(5):
        best = []
        for ws in (warm, None):
            study = optuna.create_study(
                direction="maximize", sampler=NCPSampler(space=space, seed=seed, warm_start=ws)
            )
            study.optimize(lambda t: nb201.query(space.suggest(t))["Acc"], n_trials=10)
            best.append(study.best_value)
        assert best[0] > best[1], (seed, best)


def test_auto_is_synflow_on_nas_bench_201_only_and_paper_mode_stays_random(nb201) -> None:
    from ncp_hpo.zerocost._bundled import bundled_table

    space = nb201.space
    warm = auto_warm_start(space)
    assert warm is not None and warm.name == "synflow (nas-bench-201)"
    codes = space.sample(20, seed=0)
    table = bundled_table("nas-bench-201", "synflow")
    assert table is not None
    np.testing.assert_array_equal(warm.scores(codes), table.lookup(codes))
    assert NCPSampler(space=space).warm_start is not None
    assert NCPSampler(space=space, mode="paper").warm_start is None
    assert NCPSampler(space=space, warm_start=None).warm_start is None
    assert auto_warm_start(MultiResolutionSpace()) is None  # the multi-resolution space: none
    assert NCPSampler().warm_start is None  # no space given: inferred per study, no proxy
    # the default's first 10 trials are the synflow pool's best, in order
    study = optuna.create_study(direction="maximize", sampler=NCPSampler(space=space, seed=7))
    study.optimize(lambda t: nb201.query(space.suggest(t))["Acc"], n_trials=10)
    np.testing.assert_array_equal(_codes(study, space), warm_start_codes(warm, space, 10, seed=7))


def test_bad_warm_start_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="exactly one of benchmark"):
        ZeroCostWarmStart()
    with pytest.raises(ValueError, match="exactly one of benchmark"):
        ZeroCostWarmStart(benchmark="nas-bench-201", scorer=lambda c: c.sum(1))
    with pytest.raises(ValueError, match="pool_size must be an int >= 1"):
        ZeroCostWarmStart(scorer=lambda c: c.sum(1), pool_size=0)
    with pytest.raises(TypeError, match="warm_start must be 'auto', None or a ZeroCostWarmStart"):
        NCPSampler(space=NB201Space(), warm_start="synflow")  # type: ignore[arg-type]
    bad = ZeroCostWarmStart(scorer=lambda c: np.zeros(3), pool_size=10)
    with pytest.raises(ValueError, match="the scorer gave 3 scores for"):
        bad.ranked_pool(NB201Space(), 0)


def test_a_multi_objective_study_starts_on_the_estimated_front_spread_along_flops(nb201) -> None:
    """A two-objective study's start-up trials are the pool in trade-off order: the
    non-dominated codes of (synflow up, exact FLOPs down), spread along the FLOPs, not the
    proxy's top codes (which all sit at the large-network end of the front)."""
    space = nb201.space
    warm = auto_warm_start(space)
    assert warm is not None
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=NCPSampler(space=space, seed=7)
    )
    study.optimize(
        lambda t: (nb201.query(c := space.suggest(t))["Acc"], float(space.flops(c))), n_trials=10
    )
    started = _codes(study, space)
    np.testing.assert_array_equal(
        started, warm_start_codes(warm, space, 10, seed=7, n_objectives=2)
    )
    top = warm_start_codes(warm, space, 10, seed=7)
    assert len({c.tobytes() for c in started} & {c.tobytes() for c in top}) <= 2
    pool = np.unique(np.asarray(space.sample(warm.pool_size, seed=7)), axis=0)
    score, flops = warm.scores(pool), np.asarray(space.flops(pool), dtype=float)
    for c in started:  # no pool code has a higher score at no more FLOPs
        s, f = warm.scores(c[None])[0], float(space.flops(c))
        assert not np.any((score > s) & (flops <= f)), c
    got = np.asarray(space.flops(started), dtype=float)
    assert got.min() <= np.percentile(flops, 5)  # both ends of the FLOPs range
    assert got.max() >= np.percentile(flops, 90)


def test_the_trade_off_start_raises_the_first_ten_trials_hypervolume(nb201) -> None:
    """On 5 seeds the 10 trade-off start-up trials cover more of the accuracy-FLOPs plane
    than 10 random ones (normalised hypervolume, as compare scores a study)."""
    from ncp_hpo.experiments.compare._records import tradeoff_hypervolume

    space, warm = nb201.space, auto_warm_start(nb201.space)
    assert warm is not None
    for seed in range(5):
        hv = []
        for codes in (
            warm_start_codes(warm, space, 10, seed=seed, n_objectives=2),
            space.sample(10, seed=seed),
        ):
            values = np.array([[(r := nb201.query(c))["Acc"], r["flops"]] for c in codes])
            hv.append(tradeoff_hypervolume(values, nb201))
        assert hv[0] > hv[1], (seed, hv)


def test_trade_off_order_peels_fronts_and_spreads_each() -> None:
    from ncp_hpo.search._warm_start import tradeoff_order

    #              0    1    2    3    4    5      6
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 4.5, np.nan])
    cost = np.array([10.0, 6.0, 4.0, 2.0, 1.0, 10.0, 0.5])
    # front 1: 0 (best), 1, 2, 3, 4 (each cheaper and worse); 5 is dominated by 0;
    # the NaN score ranks last although it is the cheapest
    order = tradeoff_order(score, cost).tolist()
    assert order[:5] == [0, 4, 1, 2, 3]  # best first, then the widest cost gap, ...
    assert order[5:] == [5, 6]
    assert sorted(order) == list(range(7))
    with pytest.raises(ValueError, match="3 scores for 2 costs"):
        tradeoff_order(np.zeros(3), np.zeros(2))
    assert tradeoff_order(np.zeros(0), np.zeros(0)).tolist() == []


def test_a_multi_objective_study_without_exact_flops_starts_at_random() -> None:
    """A params_scorer on an inferred space: no exact FLOPs to trade off, so a two-objective
    study's start-up is random, and warm_start_codes refuses the trade-off order."""
    from ncp_hpo.spaces import ParamSpace

    warm = ZeroCostWarmStart(params_scorer=lambda p: float(p["x"]))
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=NCPSampler(seed=0, warm_start=warm)
    )
    study.optimize(lambda t: (t.suggest_int("x", 0, 99), t.suggest_int("y", 0, 99)), n_trials=6)
    xs = [t.params["x"] for t in study.trials]
    assert sorted(xs, reverse=True) != xs or len(set(xs)) < 6  # not the pool's best in order
    space = ParamSpace({"x": optuna.distributions.IntDistribution(0, 99)})
    with pytest.raises(ValueError, match="has no exact FLOPs"):
        warm_start_codes(warm, space, 5, seed=0, n_objectives=2)


def test_spread_pool_covers_the_flops_range_first() -> None:
    """The spread start: a random code, then each next the farthest in log-FLOPs, so the
    first ten reach both ends of the pool's FLOPs range and fill the gaps between."""
    from ncp_hpo.search._warm_start import spread_pool

    space = MultiResolutionSpace()
    codes = spread_pool(space, seed=3, pool_size=300)
    np.testing.assert_array_equal(codes, spread_pool(space, seed=3, pool_size=300))  # seeded
    pool_flops = np.log(np.asarray(space.flops(codes), dtype=float))
    first = pool_flops[:10]
    assert first.min() == pool_flops.min() and first.max() == pool_flops.max()
    assert pool_flops[1] in (pool_flops.min(), pool_flops.max())  # the farthest from the first
    gaps = np.diff(np.sort(pool_flops[:10]))
    # 10 codes spread over the range: no gap above 2x an even spacing's
    assert gaps.max() <= 2 * (pool_flops.max() - pool_flops.min()) / 9
    with pytest.raises(ValueError, match="has no exact FLOPs"):
        from ncp_hpo.spaces import ParamSpace

        spread_pool(ParamSpace({"x": optuna.distributions.IntDistribution(0, 9)}), seed=0)


def test_a_multi_objective_study_without_a_proxy_starts_spread_along_flops() -> None:
    """The multi-resolution space has no zero-cost table: NCP's default starts a
    two-objective study with the spread codes; warm_start=None and paper mode stay random,
    and a one-objective study is not affected."""
    from ncp_hpo.search._warm_start import spread_pool

    space = MultiResolutionSpace()

    def objective(t: optuna.Trial) -> tuple[float, float]:
        code = space.suggest(t)
        return float(np.sum(code)), float(space.flops(code))

    def first_codes(sampler: NCPSampler, directions: list[str]) -> np.ndarray:
        study = optuna.create_study(directions=directions, sampler=sampler)
        study.optimize(objective if len(directions) == 2 else lambda t: objective(t)[0], 10)
        return np.array([space.from_params(t.params) for t in study.trials])

    spread = spread_pool(space, seed=5)[:10]
    mo = ["maximize", "minimize"]
    np.testing.assert_array_equal(first_codes(NCPSampler(space=space, seed=5), mo), spread)
    for sampler in (
        NCPSampler(space=space, seed=5, warm_start=None),
        NCPSampler(space=space, seed=5, mode="paper"),
    ):
        assert not np.array_equal(first_codes(sampler, mo), spread)
    assert not np.array_equal(first_codes(NCPSampler(space=space, seed=5), ["maximize"]), spread)
