"""ParamSpace (any Optuna search space as integer codes) and ProductSpace (spaces joined)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces import NB201Space, ParamSpace, ProductSpace

MIXED = {
    "layers": IntDistribution(1, 4),
    "width": IntDistribution(8, 1024, log=True),
    "batch": IntDistribution(16, 512, step=16),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.05),
    "momentum": FloatDistribution(0.5, 0.99),
    "act": CategoricalDistribution(["relu", "tanh", None]),
    "fixed": CategoricalDistribution(["only"]),
}


def test_layout_names_and_grids() -> None:
    space = ParamSpace(MIXED)
    assert space.names == (
        "layers", "width", "batch", "lr", "dropout", "momentum",
        "act=relu", "act=tanh", "act=None",
    )  # fmt: skip
    # layers keeps its 4 values, batch its 32, dropout its 11, the continuous floats have
    # 64 grid values; width (1,017 values) 64 log-spaced ones, fewer where they round alike
    n_width = int(space.upper[1]) + 1
    np.testing.assert_array_equal(space.upper[[0, 2, 3, 4, 5]], [3, 31, 63, 10, 63])
    widths = [
        space.to_params(np.array([0, k, 0, 0, 0, 0, 1, 0, 0]))["width"] for k in range(n_width)
    ]
    assert 50 <= n_width <= 64 and widths[0] == 8 and widths[-1] == 1024
    assert all(b > a for a, b in itertools.pairwise(widths))
    assert space.round_every == 10  # one-hot categoricals snap like NB201's edges
    assert space.input_features is None  # no two categoricals share their choices


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_codes_decode_to_values_optuna_accepts_and_encode_back(seed: int) -> None:
    space = ParamSpace(MIXED)
    for code in space.sample(8, seed=seed):
        params = space.to_params(code)
        assert list(params) == list(MIXED) and params["fixed"] == "only"
        for name, dist in MIXED.items():  # Optuna keeps a relative sample only if this holds
            assert dist._contains(dist.to_internal_repr(params[name])), (name, params[name])
        np.testing.assert_array_equal(space.from_params(params), code)


def test_log_grids_are_even_in_the_logarithm_and_include_the_bounds() -> None:
    space = ParamSpace({"lr": FloatDistribution(1e-5, 1e-1, log=True), "x": IntDistribution(0, 9)})
    lrs = [space.to_params(np.array([k, 0]))["lr"] for k in range(64)]
    assert lrs[0] == 1e-5 and lrs[-1] == 1e-1
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(1e4) / 63)


def test_off_grid_values_take_the_nearest_grid_value() -> None:
    space = ParamSpace(MIXED)
    base = space.to_params(space.default_start())
    code = space.from_params({**base, "lr": 1.01e-3, "width": 33})
    near = space.to_params(code)
    assert abs(np.log(near["lr"] / 1.01e-3)) <= np.log(1e4) / 63 / 2 + 1e-12
    assert abs(near["width"] - 33) <= 3


def test_neighbours_move_one_parameter_at_several_scales() -> None:
    space = ParamSpace(
        {
            "lr": FloatDistribution(1e-4, 1.0, log=True),
            "act": CategoricalDistribution(["a", "b", "c"]),
        }
    )
    code = space.from_params({"lr": space.to_params(space.default_start())["lr"], "act": "b"})
    nbrs = space.neighbors(code)
    assert len({r.tobytes() for r in nbrs}) == len(nbrs)  # distinct
    moved = nbrs[:, 0] - code[0]
    # 64 values: +-1, 2, 4, 8, 16 from the middle index 31 (32 would leave the grid going up)
    assert sorted(moved[moved != 0].tolist()) == [-16, -8, -4, -2, -1, 1, 2, 4, 8, 16]
    acts = {space.to_params(r)["act"] for r in nbrs if r[0] == code[0]}
    assert acts == {"a", "c"}
    space.validate(nbrs)


def test_round_snaps_every_parameter() -> None:
    space = ParamSpace(MIXED)
    x = np.array([2.6, -3.0, 99.0, 10.2, 4.4, 63.9, 0.2, 0.9, 0.5])
    np.testing.assert_array_equal(space.round(x), [3, 0, 31, 10, 4, 63, 0, 1, 0])


def test_shared_choice_lists_give_count_features() -> None:
    ops = ["conv", "pool", "skip"]
    space = ParamSpace({f"op{i}": CategoricalDistribution(ops) for i in range(3)})
    feats = space.input_features
    assert feats is not None and feats.shape == (3, 9)
    code = space.from_params({"op0": "conv", "op1": "conv", "op2": "skip"})
    np.testing.assert_array_equal(feats @ code, [2, 0, 1])


def test_bad_input_names_what_is_wrong() -> None:
    space = ParamSpace(MIXED)
    with pytest.raises(
        InvalidCodeError, match=r"'act' got 'gelu'; allowed: \['relu', 'tanh', None\]"
    ):
        space.from_params({**space.to_params(space.default_start()), "act": "gelu"})
    with pytest.raises(InvalidCodeError, match=r"\['lr'\] are missing"):
        space.from_params(
            {k: v for k, v in space.to_params(space.default_start()).items() if k != "lr"}
        )
    with pytest.raises(InvalidCodeError, match=r"'lr': index 64 is off its grid 0\.\.63"):
        space.validate(np.array([0, 0, 0, 64, 0, 0, 1, 0, 0]))
    with pytest.raises(InvalidCodeError, match="'act' needs exactly one choice"):
        space.validate(np.array([0, 0, 0, 0, 0, 0, 1, 1, 0]))
    with pytest.raises(ValueError, match="single value"):
        ParamSpace({"x": IntDistribution(3, 3)})
    with pytest.raises(ValueError, match="levels must be an int >= 2"):
        ParamSpace(MIXED, levels=1)
    with pytest.raises(TypeError, match="Ax choice parameters"):
        space.ax_parameters()  # None is not an Ax choice value


def test_ax_parameters_keep_types_scales_and_steps() -> None:
    space = ParamSpace({k: v for k, v in MIXED.items() if k != "act"})
    by_name = {p.name: p for p in space.ax_parameters()}
    assert by_name["width"].scaling == "log" and by_name["width"].parameter_type == "int"
    assert by_name["batch"].step_size == 16.0
    assert by_name["lr"].bounds == (1e-5, 1e-1) and by_name["lr"].parameter_type == "float"
    assert by_name["fixed"].values == ["only"]


def test_product_space_joins_codes_and_keeps_exact_flops() -> None:
    nb = NB201Space()
    lr = ParamSpace({"lr": FloatDistribution(1e-3, 1.0, log=True)})
    space = ProductSpace([nb, lr])
    assert space.dim == 31 and space.has_exact_flops
    codes = space.sample(5, seed=0)
    np.testing.assert_array_equal(space.flops(codes), nb.flops(codes[:, :30]))
    params = space.to_params(codes[0])
    assert set(params) == {*nb.optuna_distributions(), "lr"}
    np.testing.assert_array_equal(space.from_params(params), codes[0])
    nbrs = space.neighbors(codes[0])
    assert len(nbrs) == 24 + len(lr.neighbors(codes[0, 30:]))  # 24 cell moves + lr moves
    assert ((nbrs != codes[0]).any(axis=1)).all()
    with pytest.raises(ValueError, match="appear in two parts"):
        ProductSpace([lr, lr])
