"""Cross-task transfer: ``recalibrate`` and the prior's fine-tune in ``PredictorSource``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.stats import kendalltau

from ncp_hpo.predictor import NeuralPredictor, fine_tune, recalibrate
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


def test_a_fine_tune_after_recalibrate_keeps_the_ranking_a_plain_one_loses(
    prior: NeuralPredictor,
) -> None:
    """The target is the source's function in other units. 100 epochs on 6 codes from the
    re-scaled prior keep its ranking of unseen codes; the same fine-tune without the
    re-scaling chases the offset through the whole network and ranks them at chance."""
    x, y = _task(seed=3, n=300)
    target = 20.0 + 0.05 * y
    seen, rest = slice(0, 6), slice(6, None)
    taus = []
    for rescale in (True, False):
        p = copy.deepcopy(prior)
        if rescale:
            recalibrate(p, x[seen], target[seen])
        before = p.predict(x[rest])
        tuned = fine_tune(p, x[seen], target[seen], epochs=100, seed=0)
        np.testing.assert_array_equal(p.predict(x[rest]), before)  # fine_tune copies
        pred = tuned.predict(x[rest], as_dict=True)["acc"]
        taus.append(kendalltau(pred, target[rest]).statistic)
    assert taus[0] > 0.6 and taus[0] > taus[1] + 0.3, taus


def _run_source(source: PredictorSource, x: np.ndarray, y: np.ndarray, n: int) -> list:
    """The score model after each of trials 2..n, as a sequential study sees them."""
    return [source.model(_history(x[:k], y[:k]), seed=0) for k in range(2, n + 1)]


def test_a_prior_that_ranks_the_task_is_kept_in_the_tasks_units(
    prior: NeuralPredictor,
) -> None:
    x, y = _task(seed=5, n=300)
    target = 20.0 + 0.05 * y
    source = PredictorSource(prior=prior)
    models = _run_source(source, x, target, 12)
    assert source.transfer is not None
    n, tau_prior, tau_tuned = source.transfer.evidence()
    assert n == 10  # trials 3..12, each scored before it was learned from
    assert tau_prior >= tau_tuned  # (on 5 noisy trials the fine-tune may lead for a while)
    final = models[-1].scores(x[12:])[:, 0]
    raw = prior.predict(x[12:], as_dict=True)["acc"]
    np.testing.assert_allclose(np.corrcoef(final, raw)[0, 1], 1.0, atol=1e-6)  # affine
    assert np.median(np.abs(final - target[12:])) < 0.5 * np.std(target[12:])
    np.testing.assert_array_equal(source.prior.predict(x[:5]), prior.predict(x[:5]))  # type: ignore[union-attr]


def test_a_prior_that_ranks_the_task_backwards_gives_way_to_the_fine_tune(
    prior: NeuralPredictor,
) -> None:
    x, y = _task(seed=6, n=300)
    target = -y  # the new task prefers what the source task does not
    source = PredictorSource(prior=prior)
    models = _run_source(source, x, target, 20)
    assert source.transfer is not None
    n, tau_prior, tau_tuned = source.transfer.evidence()
    assert n == 18 and tau_prior < 0 < tau_tuned
    assert source.transfer.takeover_n is not None and 7 <= source.transfer.takeover_n <= 20
    assert source.transfer.using_fine_tune
    early = models[4].scores(x[20:])[:, 0]  # 6 trials, 4 scored: still the (flat) prior
    raw = prior.predict(x[20:], as_dict=True)["acc"]
    assert np.corrcoef(early, raw)[0, 1] > 0.999
    final = models[-1].scores(x[20:])[:, 0]
    assert kendalltau(final, target[20:]).statistic > 0.3


def test_a_widened_prior_predicts_as_before_and_learns_the_new_inputs(prior) -> None:
    from ncp_hpo.predictor import widen_inputs

    codes, _ = _task(seed=3, n=60)
    wide = widen_inputs(prior, mean=[5.0], std=[3.0])
    assert wide.n_features_in_ == codes.shape[1] + 1 and prior.n_features_in_ == codes.shape[1]
    for extra in (0.0, 7.0):  # the new input is ignored whatever its value
        x = np.hstack([codes, np.full((len(codes), 1), extra)])
        np.testing.assert_allclose(wide.predict(x), prior.predict(codes), rtol=1e-5, atol=1e-5)
    # a fine-tune on a task that depends on the new input learns it
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 11, size=len(codes)).astype(np.float64)
    x = np.hstack([codes, lr[:, None]])
    target = prior.predict(codes)[:, 0] - 2.0 * np.abs(lr - 5.0)
    tuned = fine_tune(wide, x, target, epochs=150, seed=0)
    gain = np.corrcoef(tuned.predict(x)[:, 0], target)[0, 1]
    assert gain > np.corrcoef(wide.predict(x)[:, 0], target)[0, 1] + 0.05
    with pytest.raises(ValueError, match="std > 0"):
        widen_inputs(prior, mean=[0.0], std=[0.0])
