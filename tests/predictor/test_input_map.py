"""NeuralPredictor(input_map=...): extra linear input features, folded into the first layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.spaces import NB201Space

SPACE = NB201Space()
COUNTS = SPACE.input_features


def _cells(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random cells and a target that depends on their operation counts."""
    x = SPACE.sample(n, seed=seed).astype(np.float64)
    counts = x @ COUNTS.T  # none, skip, conv1x1, conv3x3, pool
    return x, 2.0 * counts[:, 3] + counts[:, 2] - 1.5 * counts[:, 0]


def _fit(x: np.ndarray, y: np.ndarray, **kw: object) -> NeuralPredictor:
    p = NeuralPredictor(hidden=32, head_hidden=16, n_members=3, dropout=0.1, epochs=60, **kw)
    return p.fit(x, {"acc": y})


def test_nb201_input_features_are_the_operation_counts() -> None:
    assert COUNTS.shape == (5, 30)
    cell = SPACE.decode(
        "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    np.testing.assert_array_equal(COUNTS @ cell, [1, 1, 1, 3, 0])
    assert np.all(SPACE.sample(50, seed=0) @ COUNTS.T @ np.ones(5) == 6)  # one op per edge


def test_the_folded_network_equals_the_trained_one_on_codes() -> None:
    x, y = _cells(40, 0)
    p = _fit(x, y, input_map=COUNTS, seed=1)
    assert p.n_features_in_ == 30 and p.module_.w1.shape[1] == 30
    assert p.expanded_module_.w1.shape[1] == 35
    test = SPACE.sample(200, seed=5).astype(np.float64)
    folded = np.asarray(p.predict(test)).ravel()
    expanded = p.expanded_module_
    z = torch.from_numpy(np.concatenate([test, test @ COUNTS.T], 1)).float() - expanded.input_mean
    with torch.no_grad():
        out = expanded(z / expanded.input_std).mean(0)[:, 0]
        out = out * expanded.target_std[0] + expanded.target_mean[0]
    np.testing.assert_allclose(folded, out.numpy(), atol=1e-4)


def test_the_counts_help_a_small_predictor_rank_cells() -> None:
    """The target is a function of the counts: with 20 cells the counts rank better on
    average over seeds (the inductive bias the feature map is for)."""
    test = SPACE.sample(500, seed=99).astype(np.float64)
    truth = _cells(500, 99)[1]
    gain = []
    for seed in range(4):
        x, y = _cells(20, seed)
        with_map = np.asarray(_fit(x, y, input_map=COUNTS, seed=seed).predict(test)).ravel()
        plain = np.asarray(_fit(x, y, seed=seed).predict(test)).ravel()
        gain.append(np.corrcoef(with_map, truth)[0, 1] - np.corrcoef(plain, truth)[0, 1])
    assert np.mean(gain) > 0.02


def test_warm_start_continues_the_expanded_network() -> None:
    x, y = _cells(60, 2)
    p = _fit(x[:30], y[:30], input_map=COUNTS, seed=0)
    first = p.expanded_module_
    p.set_params(epochs=20)
    p.fit(x, {"acc": y}, warm_start=True)
    assert p.expanded_module_ is not first
    assert p.module_.w1.shape[1] == 30
    assert np.isfinite(np.asarray(p.predict(x))).all()


def test_save_load_keeps_the_folded_function(tmp_path) -> None:
    x, y = _cells(40, 3)
    p = _fit(x, y, input_map=COUNTS, seed=0)
    q = NeuralPredictor.load(p.save(tmp_path / "pred"))
    np.testing.assert_allclose(q.input_map, COUNTS)
    np.testing.assert_allclose(np.asarray(q.predict(x)), np.asarray(p.predict(x)), atol=1e-6)
    # the expanded network is not saved: a warm start after loading starts cold
    q.set_params(epochs=5)
    q.fit(x, {"acc": y}, warm_start=True)
    assert q.expanded_module_.w1.shape[1] == 35


@pytest.mark.parametrize(
    ("input_map", "message"),
    [
        (np.ones((5, 29)), r"shape \(f, 30\)"),
        (np.ones(30), r"shape \(f, 30\)"),
        (np.full((1, 30), np.nan), "finite"),
        ("counts", "numeric array"),
    ],
)
def test_bad_input_maps_are_refused_by_name(input_map: object, message: str) -> None:
    x, y = _cells(10, 0)
    with pytest.raises(ValueError, match=message):
        _fit(x, y, input_map=input_map)


def test_local_mode_gives_its_predictor_the_space_features() -> None:
    from ncp_hpo import NCPSampler
    from ncp_hpo.spaces import MultiResolutionSpace

    local = NCPSampler(space=SPACE, mode="local", seed=0)
    np.testing.assert_array_equal(local._source.predictor_params["input_map"], COUNTS)
    assert "input_map" not in NCPSampler(space=SPACE, mode="guided")._source.predictor_params
    assert "input_map" not in NCPSampler(space=SPACE, mode="paper")._source.predictor_params
    default = NCPSampler(space=SPACE)._source.predictor_params  # the default is the local mode
    np.testing.assert_array_equal(default["input_map"], COUNTS)
    multires = NCPSampler(space=MultiResolutionSpace(), mode="local")._source
    assert "input_map" not in multires.predictor_params  # no features: nothing changes there
    own = NCPSampler(space=SPACE, mode="local", predictor_params={"input_map": None})
    assert own._source.predictor_params["input_map"] is None  # the user's value wins
