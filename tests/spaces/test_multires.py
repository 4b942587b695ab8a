from __future__ import annotations

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces import DIM_NAMES, MultiResolutionSpace, NetworkCode

SPACE = MultiResolutionSpace()
PAPER_INIT = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"


def test_names_and_bounds() -> None:
    assert len(DIM_NAMES) == 27
    assert DIM_NAMES[:5] == ("i1", "i2", "b1", "n1_1", "c1_1")
    assert DIM_NAMES[17:22] == ("b4", "n4_1", "n4_2", "n4_3", "n4_4")
    assert DIM_NAMES[-1] == "o1"
    widths = [n for n in DIM_NAMES if n[0] in "ico"]
    assert len(widths) == 13
    for name, lo, hi, step in zip(DIM_NAMES, SPACE.lower, SPACE.upper, SPACE.step, strict=True):
        if name[0] in "ico":
            assert (lo, hi, step) == (8, 128, 8)
        else:
            assert (lo, hi, step) == (1, 4, 1)


def test_paper_initial_code() -> None:
    code = SPACE.decode(PAPER_INIT)
    net = NetworkCode.from_vector(code)
    assert net.stem == (64, 64)
    assert [s.blocks for s in net.stages] == [2, 2, 2, 2]
    assert net.stages[3].channels == (64, 64, 64, 64)
    assert str(net) == PAPER_INIT
    assert NetworkCode.from_string(PAPER_INIT) == net


def test_sample_is_valid_and_seeded() -> None:
    a = SPACE.sample(500, seed=3)
    assert a.shape == (500, 27) and a.dtype == np.int64
    SPACE.validate(a)
    np.testing.assert_array_equal(a, SPACE.sample(500, seed=3))
    assert not np.array_equal(a, SPACE.sample(500, seed=4))
    # every grid value is reachable
    assert set(np.unique(a[:, 0])) == set(range(8, 129, 8))
    assert set(np.unique(a[:, 2])) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("index", "value", "fragment"),
    [
        (4, 200, "c1_1 (stage1.channels[0], index 4) = 200 is above the maximum 128"),
        (2, 0, "b1 (stage1.blocks, index 2) = 0 is below the minimum 1"),
        (0, 12, "i1 (stem.channels[0], index 0) = 12 is not a multiple of 8"),
        (26, 136, "o1 (head.channels, index 26) = 136 is above the maximum 128"),
        (19, 5, "n4_2 (stage4.units[1], index 19) = 5 is above the maximum 4"),
    ],
)
def test_validate_names_the_dimension(index: int, value: int, fragment: str) -> None:
    code = SPACE.decode(PAPER_INIT)
    code[index] = value
    with pytest.raises(InvalidCodeError, match="allowed:") as err:
        SPACE.validate(code)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_validate_shapes_and_types() -> None:
    code = SPACE.decode(PAPER_INIT)
    with pytest.raises(InvalidCodeError, match=r"shape \(27,\) or \(n, 27\)"):
        SPACE.validate(code[:26])
    with pytest.raises(InvalidCodeError, match="shape"):
        SPACE.validate(np.zeros((2, 3, 27)))
    bad = code.astype(float)
    bad[5] = 2.5
    with pytest.raises(InvalidCodeError, match=r"b2 .* 2\.5 is not an integer"):
        SPACE.validate(bad)
    with pytest.raises(InvalidCodeError, match="not an integer"):
        SPACE.validate(np.full(27, np.nan))
    with pytest.raises(InvalidCodeError, match="decode"):
        SPACE.validate(PAPER_INIT)
    with pytest.raises(InvalidCodeError, match="dtype bool"):
        SPACE.validate(np.ones(27, dtype=bool))
    # a batch names the row
    batch = np.stack([code, code])
    batch[1, 8] = 129
    with pytest.raises(InvalidCodeError, match=r"code\[1\]: c2_1"):
        SPACE.validate(batch)
    # integral floats are fine
    np.testing.assert_array_equal(SPACE.validate(code.astype(float)), code)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "malformed"),
        ("64_64-2_1_2_64", "2 '-'-separated groups; expected 6"),
        ("64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64", "stem group"),
        ("64_64-2_1_2_64-2_3_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64", "must be 2"),
        ("64_64-2_1_2_64-2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64", "needs 6"),
        ("64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64_8", "head"),
        ("64_64-2_1_2_65-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64", "c1_1"),
        ("a_b", "malformed"),
    ],
)
def test_decode_errors(text: str, fragment: str) -> None:
    with pytest.raises(InvalidCodeError, match=fragment):
        SPACE.decode(text)


def test_round_trips_with_benchmark_files(shared_data_dir) -> None:
    from ncp_hpo.benchmarks import load_benchmark

    table = load_benchmark("seg", data_dir=shared_data_dir)
    strings = SPACE.encode(table.codes)
    assert len(strings) == 2507
    np.testing.assert_array_equal(np.stack([SPACE.decode(s) for s in strings]), table.codes)
    lines = (shared_data_dir / "search_list.txt").read_text().split()
    assert len(lines) >= 2507
    decoded = [SPACE.decode(line) for line in lines]
    assert [SPACE.encode(c) for c in decoded] == lines
    assert {tuple(c) for c in table.codes} <= {tuple(c) for c in decoded}


def test_network_setting_round_trip_with_raw_records(shared_data_dir) -> None:
    from ncp_hpo.benchmarks import get_setting, safe_load_pickle

    records = safe_load_pickle(
        shared_data_dir / "seg" / "trainval.pkl", sha256=get_setting("seg").sha256
    )
    for rec in records:
        code = np.asarray(rec["embedding"])
        setting = SPACE.to_network_setting(code)
        assert setting["input_channel"] == rec["input_channel"]
        assert setting["last_channel"] == rec["last_channel"]
        assert setting["inverted_residual_setting"] == rec["inverted_residual_setting"]
        np.testing.assert_array_equal(SPACE.from_network_setting(rec), code)


def test_from_network_setting_rejects_unequal_blocks() -> None:
    setting = SPACE.to_network_setting(SPACE.decode(PAPER_INIT))
    setting["inverted_residual_setting"][1] = [1, [3], [64]]
    with pytest.raises(InvalidCodeError, match="stage1 blocks differ"):
        SPACE.from_network_setting(setting)


def test_optuna_suggest_and_distributions() -> None:
    dists = SPACE.optuna_distributions()
    assert list(dists) == list(DIM_NAMES)
    assert dists["c3_2"] == optuna.distributions.IntDistribution(8, 128, step=8)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    code = SPACE.suggest(trial)
    SPACE.validate(code)
    assert trial.params == SPACE.to_params(code)
    assert all(type(v) is int for v in SPACE.to_params(code).values())
    fixed = optuna.trial.FixedTrial(SPACE.to_params(SPACE.decode(PAPER_INIT)))
    assert SPACE.encode(SPACE.suggest(fixed)) == PAPER_INIT


def test_from_params_missing() -> None:
    params = SPACE.to_params(SPACE.decode(PAPER_INIT))
    del params["c4_3"]
    with pytest.raises(InvalidCodeError, match="missing code dimensions: c4_3"):
        SPACE.from_params(params)


def test_ax_parameters() -> None:
    params = SPACE.ax_parameters()
    assert [p.name for p in params] == list(DIM_NAMES)
    by_name = {p.name: p for p in params}
    assert by_name["c1_1"].step_size == 8 and by_name["c1_1"].bounds == (8, 128)
    assert by_name["b1"].step_size is None and by_name["b1"].bounds == (1, 4)


def test_describe_rows() -> None:
    rows = SPACE.describe(SPACE.decode(PAPER_INIT))
    assert rows[4] == ("c1_1", "stage1.channels[0]", 64)
    assert rows[-1] == ("o1", "head.channels", 64)


# -- property tests -----------------------------------------------------------------------
reals = arrays(np.float64, (27,), elements=st.floats(-1e4, 1e4, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(reals)
def test_round_gives_valid_nearest_code(x: np.ndarray) -> None:
    code = SPACE.round(x)
    SPACE.validate(code)
    clipped = np.clip(x, SPACE.lower, SPACE.upper)
    # nearest grid point: distance at most half a step in every dimension
    assert np.all(np.abs(code - clipped) <= SPACE.step / 2 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_encode_decode_round_trip(seed: int) -> None:
    code = SPACE.sample(1, seed=seed)[0]
    assert np.array_equal(SPACE.decode(SPACE.encode(code)), code)
    np.testing.assert_array_equal(SPACE.round(code.astype(float)), code)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789_-x ", max_size=90))
def test_decode_fuzz_never_crashes_unexpectedly(text: str) -> None:
    try:
        code = SPACE.decode(text)
    except InvalidCodeError:
        return
    assert SPACE.encode(code) == text.strip()


@settings(max_examples=300, deadline=None)
@given(arrays(np.int64, (27,), elements=st.integers(-300, 300)))
def test_validate_accepts_exactly_the_grid(code: np.ndarray) -> None:
    on_grid = (
        (code >= SPACE.lower) & (code <= SPACE.upper) & ((code - SPACE.lower) % SPACE.step == 0)
    ).all()
    try:
        SPACE.validate(code)
        assert on_grid
    except InvalidCodeError:
        assert not on_grid
