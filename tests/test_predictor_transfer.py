"""Cross-task transfer: ``recalibrate`` and the prior's fine-tune in ``PredictorSource``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.stats import kendalltau

from ncp_hpo.predictor import NeuralPredictor, recalibrate
from ncp_hpo.search import HistoryBuilder, PredictorSource
from ncp_hpo.spaces import NB201Space


def _task(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=(n, 6)).astype(np.float64)  # codes are integers
    return x, x @ [1.0, -2.0, 0.5, 0.0, 1.5, -0.5] + np.sin(x[:, 0])


@pytest.fixture(scope="module")
def prior() -> NeuralPredictor:
    x, y = _task()
    return NeuralPredictor(epochs=60, seed=0).fit(x, {"acc": y, "flops": x.sum(1)})


def test_recalibrate_is_an_increasing_affine_map_of_the_output(prior: NeuralPredictor) -> None:
    p = copy.deepcopy(prior)
    x, _ = _task(seed=1, n=50)
    old = p.predict(x, as_dict=True)
    new_task = 70.0 + 0.2 * old["acc"]  # other units, same ranking
    a, b = recalibrate(p, x[:10], new_task[:10])
    assert a == pytest.approx(0.2, rel=1e-4) and b == pytest.approx(70.0, rel=1e-4)
    new = p.predict(x, as_dict=True)
    np.testing.assert_allclose(new["acc"], new_task, rtol=1e-5)
    np.testing.assert_array_equal(new["flops"], old["flops"])  # other outputs untouched


def test_recalibrate_flattens_a_backwards_prior_and_needs_finite_values(
    prior: NeuralPredictor,
) -> None:
    p = copy.deepcopy(prior)
    x, _ = _task(seed=2, n=20)
    old = p.predict(x, as_dict=True)["acc"]
    a, _ = recalibrate(p, x, -old)  # the new task ranks the codes the other way
    assert 0 < a <= 1e-3 * 1.0001  # kept rank order, almost no slope: not inverted
    assert np.ptp(p.predict(x, as_dict=True)["acc"]) < 1e-2 * np.ptp(old)
    one = copy.deepcopy(prior)
    assert recalibrate(one, x[:1], [5.0]) == (1.0, pytest.approx(5.0 - old[0], rel=1e-5))
    with pytest.raises(ValueError, match="one finite value per code; got 2 values for 3"):
        recalibrate(copy.deepcopy(prior), x[:3], [1.0, 2.0])
    with pytest.raises(ValueError, match="one finite value per code"):
        recalibrate(copy.deepcopy(prior), x[:2], [1.0, float("nan")])


def test_recalibrate_also_rescales_the_expanded_network_of_an_input_map() -> None:
    space = NB201Space()
    rng = np.random.default_rng(0)
    codes = space.sample(80, seed=rng)
    y = codes @ rng.normal(size=codes.shape[1])
    p = NeuralPredictor(epochs=5, seed=0, input_map=space.input_features).fit(codes, {"acc": y})
    old_std = [m.target_std[0].item() for m in (p.module_, p.expanded_module_)]
    a, _ = recalibrate(p, codes[:20], 3.0 * p.predict(codes[:20]).ravel() - 1.0)
    assert a == pytest.approx(3.0, rel=1e-4)
    # a warm start continues the expanded network, so it is re-scaled too
    for m, sd in zip((p.module_, p.expanded_module_), old_std, strict=True):
        assert m.target_std[0].item() == pytest.approx(3.0 * sd, rel=1e-4)


def _history(codes: np.ndarray, values: np.ndarray) -> object:
    rows = HistoryBuilder(dim=codes.shape[1], directions=["maximize"])
    for c, v in zip(codes, values, strict=True):
        rows.complete(c, [v], {})
    return rows.build()


def test_fine_tuned_prior_keeps_its_ranking_on_a_task_in_other_units(
    prior: NeuralPredictor,
) -> None:
    """The target is the source's function in other units: the fine-tuned prior must still
    rank unseen codes as the prior does (an uncalibrated fine-tune on 6 codes chases the
    offset through the whole network)."""
    x, y = _task(seed=3, n=300)
    target = 20.0 + 0.05 * y
    seen, rest = slice(0, 6), slice(6, None)
    source = PredictorSource(prior=prior)
    model = source.model(_history(x[seen], target[seen]), seed=0)
    assert model is not None
    tuned = model.scores(x[rest])[:, 0]
    tau = kendalltau(tuned, target[rest]).statistic
    # the same 100 epochs without the re-scaling (the earlier fine-tune) rank at chance
    plain = copy.deepcopy(prior).set_params(seed=0, epochs=100)
    t = plain.predict(x[seen], as_dict=True)
    t["acc"] = target[seen]
    plain.fit(x[seen], t, warm_start=True)
    plain_tau = kendalltau(plain.predict(x[rest], as_dict=True)["acc"], target[rest]).statistic
    assert tau > 0.6 and tau > plain_tau + 0.3, (tau, plain_tau)
    # the predictions are in the target's units
    assert np.median(np.abs(tuned - target[rest])) < 0.5 * np.std(target[rest])
    # the prior itself is not modified
    np.testing.assert_array_equal(
        source.prior.predict(x[:5]),
        prior.predict(x[:5]),  # type: ignore[union-attr]
    )


def test_each_fine_tune_restarts_from_the_prior(prior: NeuralPredictor) -> None:
    x, y = _task(seed=4, n=40)
    chained = PredictorSource(prior=prior)
    chained.model(_history(x[:5], y[:5]), seed=0)
    a = chained.model(_history(x[:6], y[:6]), seed=0)
    b = PredictorSource(prior=prior).model(_history(x[:6], y[:6]), seed=0)
    assert a is not None and b is not None and a.version == 2
    np.testing.assert_array_equal(a.scores(x), b.scores(x))
