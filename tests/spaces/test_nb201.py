from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces import CodeSpace
from ncp_hpo.spaces.nb201 import EDGE_NAMES, EDGES, NB201_DIM_NAMES, NUM_CELLS, OPS, NB201Space

SPACE = NB201Space()
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_layout() -> None:
    assert isinstance(SPACE, CodeSpace) and SPACE.dim == 30 and NUM_CELLS == 15625
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
    assert EDGE_NAMES == ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")
    assert NB201_DIM_NAMES[:6] == (
        "e1_0.none",
        "e1_0.skip_connect",
        "e1_0.nor_conv_1x1",
        "e1_0.nor_conv_3x3",
        "e1_0.avg_pool_3x3",
        "e2_0.none",
    )
    assert SPACE.lower.dtype == np.float64 and np.all(SPACE.lower == 0) and np.all(SPACE.upper == 1)
    assert SPACE == NB201Space() and hash(SPACE) == hash(NB201Space())


def test_decode_is_edge_major_in_string_order() -> None:
    code = SPACE.decode(RESNET)
    assert code.shape == (30,) and code.dtype == np.int64
    np.testing.assert_array_equal(SPACE.to_indices(code), [3, 0, 3, 1, 0, 1])
    assert code[5 * 0 + 3] == 1 and code[5 * 3 + 1] == 1 and code.sum() == 6
    assert SPACE.encode(code) == RESNET
    assert SPACE.describe(code)[3] == ("e3_0", "node 3 <- node 0", "skip_connect")


def test_enumerate_all_and_string_round_trip_for_every_cell() -> None:
    cells = SPACE.enumerate_all()
    assert cells.shape == (15625, 30) and cells.dtype == np.int64
    assert len({c.tobytes() for c in cells}) == 15625
    SPACE.validate(cells)
    strings = SPACE.encode(cells)
    assert isinstance(strings, list) and len(set(strings)) == 15625
    back = np.stack([SPACE.decode(s) for s in strings])
    np.testing.assert_array_equal(back, cells)


def test_sample_is_valid_and_seeded() -> None:
    a = SPACE.sample(2000, seed=1)
    assert a.shape == (2000, 30) and a.dtype == np.int64
    SPACE.validate(a)
    np.testing.assert_array_equal(a, SPACE.sample(2000, seed=1))
    assert not np.array_equal(a, SPACE.sample(2000, seed=2))
    assert set(np.unique(SPACE.to_indices(a))) == set(range(5))
    assert SPACE.sample(0).shape == (0, 30)
    with pytest.raises(ValueError, match="non-negative"):
        SPACE.sample(-1)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda c: c.__setitem__(slice(10, 15), 0), "edge e2_1 (node 2 <- node 1) has no op"),
        (lambda c: c.__setitem__(19, 1), "edge e3_0 (node 3 <- node 0) has 2 ops selected"),
        (lambda c: c.__setitem__(2, 2), "edge e1_0 slot nor_conv_1x1 (index 2) = 2"),
    ],
)
def test_validate_names_edge_and_problem(mutate: object, fragment: str) -> None:
    code = SPACE.decode(RESNET)
    mutate(code)  # type: ignore[operator]
    with pytest.raises(InvalidCodeError) as err:
        SPACE.validate(code)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_validate_batch_names_the_row_and_lists_ops() -> None:
    codes = SPACE.sample(3, seed=0)
    codes[2, 25:30] = [0, 1, 0, 0, 1]
    with pytest.raises(InvalidCodeError, match=r"code\[2\]: edge e3_2 .*\(skip_connect, avg_pool"):
        SPACE.validate(codes)


def test_validate_types_and_shapes() -> None:
    code = SPACE.decode(RESNET)
    np.testing.assert_array_equal(SPACE.validate(code.astype(float)), code)
    np.testing.assert_array_equal(SPACE.validate(code.astype(bool)), code)
    np.testing.assert_array_equal(SPACE.validate(torch.tensor(code)), code)
    half = code.astype(float)
    half[0] = 0.5
    with pytest.raises(InvalidCodeError, match=r"0\.5 is not 0 or 1; use round"):
        SPACE.validate(half)
    with pytest.raises(InvalidCodeError, match=r"shape \(30,\) or \(n, 30\)"):
        SPACE.validate(code[:29])
    with pytest.raises(InvalidCodeError, match="decode"):
        SPACE.validate(RESNET)
    with pytest.raises(InvalidCodeError, match="0/1 values"):
        SPACE.validate(np.array(["1"] * 30))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("|none~0|+|none~0|none~1|", "2 '+'-separated node groups; expected 3"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 group '|none~0|' needs 2 inputs"),
        (
            "|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|",
            "unknown operation 'conv' on edge e3_2",
        ),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must be 'op~0'"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must look like |op~i|"),
    ],
)
def test_decode_errors(text: str, fragment: str) -> None:
    with pytest.raises(InvalidCodeError) as err:
        SPACE.decode(text)
    assert fragment in str(err.value)


def test_round_takes_argmax_per_edge_batched() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 30))
    r = SPACE.round(x)
    assert r.shape == (50, 30) and r.dtype == np.int64
    np.testing.assert_array_equal(SPACE.to_indices(r), x.reshape(50, 6, 5).argmax(-1))
    cells = SPACE.sample(20, seed=3)
    np.testing.assert_array_equal(SPACE.round(cells), cells)
    np.testing.assert_array_equal(SPACE.round(torch.tensor(x[0])), r[0])
    np.testing.assert_array_equal(SPACE.to_indices(SPACE.round(np.zeros(30))), np.zeros(6))
    with pytest.raises(InvalidCodeError, match="NaN"):
        SPACE.round(np.full(30, np.nan))
    with pytest.raises(InvalidCodeError, match="round expects"):
        SPACE.round(np.zeros((2, 3, 30)))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(30)),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    )
)
def test_round_property(x: np.ndarray) -> None:
    r = SPACE.round(x)
    SPACE.validate(r)  # always a valid cell
    np.testing.assert_array_equal(SPACE.round(r), r)  # idempotent
    blocks = x.reshape(-1, 6, 5)
    chosen = (blocks * r.reshape(-1, 6, 5)).sum(-1)
    np.testing.assert_array_equal(chosen, blocks.max(-1))  # picks a maximum of each edge
    first_max = (blocks == blocks.max(-1, keepdims=True)).argmax(-1)
    np.testing.assert_array_equal(SPACE.to_indices(r), first_max)  # ties: earliest op


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=6, max_size=6))
def test_indices_string_params_round_trip(idx: list[int]) -> None:
    code = NB201Space.from_indices(np.array(idx))
    assert SPACE.validate(code).sum() == 6
    assert SPACE.decode(SPACE.encode(code)).tolist() == code.tolist()  # type: ignore[arg-type]
    params = SPACE.to_params(code)
    assert list(params) == list(EDGE_NAMES) and all(isinstance(v, str) for v in params.values())
    np.testing.assert_array_equal(SPACE.from_params(params), code)


def test_params_errors() -> None:
    params = SPACE.to_params(SPACE.decode(RESNET))
    with pytest.raises(InvalidCodeError, match="missing NB201 edges: e2_1"):
        SPACE.from_params({k: v for k, v in params.items() if k != "e2_1"})
    with pytest.raises(InvalidCodeError, match="edge e1_0 = 'conv' is not an operation"):
        SPACE.from_params(params | {"e1_0": "conv"})
    with pytest.raises(InvalidCodeError, match="one code"):
        SPACE.to_params(SPACE.sample(2, seed=0))
    with pytest.raises(InvalidCodeError, match="out of range"):
        NB201Space.from_indices([0, 0, 0, 0, 0, 5])


def test_suggest_with_optuna_study() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        code = SPACE.suggest(trial)
        SPACE.validate(code)
        assert trial.params == SPACE.to_params(code)
        seen.add(SPACE.encode(code))
        study.tell(trial, float(code[3::5].sum()))
    assert len(seen) > 15
    dists = SPACE.optuna_distributions()
    assert list(dists) == list(EDGE_NAMES)
    assert all(d.choices == OPS for d in dists.values())  # type: ignore[attr-defined]
    assert study.trials[0].distributions == dists


def test_ax_parameters() -> None:
    from ax.api.configs import ChoiceParameterConfig

    params = SPACE.ax_parameters()
    assert [p.name for p in params] == list(EDGE_NAMES)
    for p in params:
        assert isinstance(p, ChoiceParameterConfig)
        assert p.values == list(OPS) and p.parameter_type == "str" and p.is_ordered is False


def test_neighbors_change_one_edge() -> None:
    code = SPACE.decode(RESNET)
    nb = SPACE.neighbors(code)
    assert nb.shape == (24, 30) and len({r.tobytes() for r in nb}) == 24
    diff = SPACE.to_indices(nb) != SPACE.to_indices(code)
    assert np.all(diff.sum(1) == 1)
    with pytest.raises(InvalidCodeError, match="one code"):
        SPACE.neighbors(SPACE.sample(2, seed=0))


def test_costs() -> None:
    none = SPACE.from_indices([0] * 6)
    conv1 = SPACE.from_indices([2, 0, 0, 0, 0, 0])
    conv3 = SPACE.from_indices([3] * 6)
    free = SPACE.from_indices([1, 4, 1, 4, 1, 4])
    assert SPACE.flops(none) == SPACE.flops(free) == 7_788_800
    assert SPACE.flops(conv1) - SPACE.flops(none) == 3_932_160
    assert SPACE.flops(conv3) == SPACE.flops(SPACE.enumerate_all()).max()
    assert SPACE.params(none) == 79_156 and SPACE.params(conv3) == 79_156 + 6 * 243_040
    x = torch.tensor(SPACE.sample(4, seed=0), dtype=torch.float64, requires_grad=True)
    f = SPACE.flops_torch(x)
    np.testing.assert_allclose(f.detach().numpy(), SPACE.flops(x.detach().numpy().astype(int)))
    f.sum().backward()
    grad = x.grad.numpy().reshape(4, 6, 5)  # type: ignore[union-attr]
    np.testing.assert_allclose(grad[0, 0], [0, 0, 3_932_160, 35_389_440, 0])
    assert SPACE.has_exact_flops


def test_parameters_rise_with_flops_on_every_cell() -> None:
    """Every cell's parameter count is a strictly increasing function of its FLOPs (both
    are set by the numbers of 3x3 and 1x1 convolutions), so accuracy against parameters and
    accuracy against FLOPs have one Pareto set of cells (``objective="metric+params"``)."""
    space = NB201Space()
    codes = space.enumerate_all()
    flops, params = space.flops(codes), space.params(codes)
    order = np.lexsort((params, flops))
    df, dp = np.diff(flops[order]), np.diff(params[order])
    assert np.all(dp[df == 0] == 0) and np.all(dp[df > 0] > 0)
    assert len(np.unique(flops)) == len(np.unique(params)) == 28
