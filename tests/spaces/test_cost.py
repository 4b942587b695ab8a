"""The closed-form cost model: against the NAS-Bench-MR columns, shapes, torch version."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces import MultiResolutionSpace, cost

SPACE = MultiResolutionSpace()
TASKS = sorted(cost.TASKS)


class _NoGlobals(pickle.Unpickler):
    """The NAS-Bench-MR files are plain lists/dicts/numbers: refuse every global."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused")


@pytest.fixture(scope="module")
def table(shared_data_dir: Path) -> dict[str, np.ndarray]:
    """The cls-50-1000 codes and their ``params`` (M) and ``flops`` (G) columns."""
    try:
        from ncp_hpo.benchmarks import load_benchmark
    except ImportError:  # the data layer is optional here: read the plain pickle safely
        with open(shared_data_dir / "cls-50-1000" / "trainval.pkl", "rb") as fh:
            rows = _NoGlobals(fh).load()
        return {
            "codes": np.array([r["embedding"] for r in rows], dtype=np.int64),
            "params": np.array([r["params"] for r in rows], dtype=np.float64),
            "flops": np.array([r["flops"] for r in rows], dtype=np.float64),
        }
    t = load_benchmark("cls-50-1000", shared_data_dir)
    return {
        "codes": np.asarray(t.codes, dtype=np.int64),
        "params": np.asarray(t.metrics["params"], dtype=np.float64),
        "flops": np.asarray(t.metrics["flops"], dtype=np.float64),
    }


# -- the benchmark columns ------------------------------------------------------------------


def test_params_reproduce_benchmark_column(table: dict[str, np.ndarray]) -> None:
    assert table["codes"].shape == (2507, 27)
    p = cost.params(table["codes"])
    assert np.abs(p / 1e6 - table["params"]).max() <= 1e-3
    np.testing.assert_array_equal(p, np.round(table["params"] * 1e6).astype(np.int64))


def test_thop_flops_reproduce_benchmark_column_exactly(table: dict[str, np.ndarray]) -> None:
    f = cost.flops(table["codes"], convention="thop")
    assert np.abs(f / 1e9 / table["flops"] - 1).max() < 0.01
    np.testing.assert_array_equal(f, np.round(table["flops"] * 1e9).astype(np.int64))


def test_macs_are_below_the_thop_column_by_at_most_a_few_percent(
    table: dict[str, np.ndarray],
) -> None:
    rel = cost.flops(table["codes"]) / 1e9 / table["flops"] - 1
    assert (rel < 0).all() and rel.min() > -0.035


def test_built_networks_have_the_benchmark_parameter_counts(
    table: dict[str, np.ndarray],
) -> None:
    from ncp_hpo.models import create_model

    rng = np.random.default_rng(0)
    for i in rng.choice(len(table["codes"]), size=12, replace=False):
        with torch.device("meta"):
            net = create_model(table["codes"][i], task="cls", num_classes=50)
        n = sum(p.numel() for p in net.parameters())
        assert abs(n / 1e6 - table["params"][i]) <= 1e-3, table["codes"][i]


# -- shapes, dtypes, errors ------------------------------------------------------------------


def test_one_code_gives_a_scalar_and_many_give_a_vector() -> None:
    codes = SPACE.sample(5, seed=1)
    one, many = cost.flops(codes[0]), cost.flops(codes)
    assert one.shape == () and many.shape == (5,)
    assert one.dtype == np.int64 and many.dtype == np.int64
    assert int(one) == int(many[0])
    assert cost.params(codes[0]).shape == () and cost.params(codes).shape == (5,)


def test_space_methods_delegate() -> None:
    codes = SPACE.sample(3, seed=2)
    np.testing.assert_array_equal(SPACE.flops(codes, task="seg"), cost.flops(codes, task="seg"))
    np.testing.assert_array_equal(SPACE.params(codes), cost.params(codes))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "detection"}, "unknown task"),
        ({"convention": "fvcore"}, "unknown convention"),
        ({"num_classes": 0}, "num_classes"),
        ({"input_size": (0, 3)}, "input_size"),
        ({"input_size": "big"}, "input_size"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cost.flops(SPACE.sample(1, seed=0), **kwargs)


def test_invalid_codes_are_refused() -> None:
    code = SPACE.sample(1, seed=0)[0]
    code[4] = 12
    with pytest.raises(InvalidCodeError, match="c1_1"):
        cost.flops(code)
    with pytest.raises(InvalidCodeError):
        cost.flops_torch(torch.zeros(26))


def test_cost_grows_with_every_dimension() -> None:
    base = np.full(27, 8)
    base[[2, 3, 5, 6, 7, 10, 11, 12, 13, 17, 18, 19, 20, 21]] = 1
    bigger = np.tile(base, (27, 1)) + np.diag(np.where(SPACE.is_width, 8, 1))
    for task in TASKS:
        assert (cost.flops(bigger, task=task) > cost.flops(base, task=task)).all()
        assert (cost.params(bigger, task=task) > cost.params(base, task=task)).all()


def test_geometry_rules() -> None:
    assert cost.level_sizes(128) == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    assert cost.level_sizes((37, 20))[1:] == [(10, 5), (5, 3), (3, 2), (2, 1)]
    assert cost.fusion_path(1, 1) == cost.FusionPath(kernel=3, stride=1, upsample=False)
    assert cost.fusion_path(2, 1) == cost.FusionPath(kernel=1, stride=1, upsample=True)
    assert cost.fusion_path(0, 1) == cost.FusionPath(kernel=3, stride=2, upsample=False)
    assert cost.fusion_path(0, 2) is None and cost.fusion_path(3, 1) is None


def test_video_flops_are_affine_in_frames_and_params_do_not_depend_on_them() -> None:
    code = SPACE.sample(2, seed=3)
    f1, f2, f4 = (cost.flops(code, task="video", frames=t) for t in (1, 2, 4))
    np.testing.assert_array_equal(f4 - f1, 3 * (f2 - f1))  # only the classifier is per clip
    assert (f1 > cost.flops(code, task="cls")).all()  # 3x3x3 instead of 1x1 fusion
    assert (cost.params(code, task="video") > cost.params(code, task="cls")).all()


def test_ten_thousand_codes_in_well_under_a_second() -> None:
    codes = SPACE.sample(10_000, seed=4)
    cost.flops(codes[:10])  # warm-up
    t = time.perf_counter()
    cost.flops(codes)
    cost.params(codes)
    assert time.perf_counter() - t < 0.5


# -- the differentiable version ----------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("convention", ["macs", "thop"])
def test_flops_torch_equals_flops_on_integer_codes(task: str, convention: str) -> None:
    codes = SPACE.sample(64, seed=5)
    kw: dict[str, Any] = {"task": task, "input_size": (96, 160), "convention": convention}
    expect = cost.flops(codes, **kw)
    got = cost.flops_torch(torch.tensor(codes, dtype=torch.float64), **kw)
    assert got.shape == (64,) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy().astype(np.int64), expect)
    got32 = cost.flops_torch(torch.tensor(codes, dtype=torch.float32), **kw)
    np.testing.assert_allclose(got32.numpy(), expect, rtol=1e-5)


def test_flops_torch_keeps_batch_shape_and_has_exact_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor(SPACE.lower), torch.tensor(SPACE.upper)
    x = (lo + (hi - lo) * torch.rand(2, 3, 27, generator=gen, dtype=torch.float64)).requires_grad_()
    y = cost.flops_torch(x, task="seg")
    assert y.shape == (2, 3)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all() and (g > 0).all()
    # A quadratic polynomial: central differences are exact up to rounding.
    e = torch.zeros(27, dtype=torch.float64)
    for i in (0, 2, 9, 26):
        e.zero_()
        e[i] = 0.5
        with torch.no_grad():
            fd = (cost.flops_torch(x + e, task="seg") - cost.flops_torch(x - e, task="seg")) / 1.0
        torch.testing.assert_close(fd, g[..., i], rtol=1e-9, atol=1e-3)


def test_flops_torch_is_fast_for_a_propagation_batch() -> None:
    x = torch.tensor(SPACE.sample(1024, seed=6), dtype=torch.float32, requires_grad=True)
    cost.flops_torch(x)  # warm-up
    t = time.perf_counter()
    cost.flops_torch(x).sum().backward()
    assert time.perf_counter() - t < 0.5
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_flops_torch_refuses_integer_tensors() -> None:
    with pytest.raises(TypeError, match="floating"):
        cost.flops_torch(torch.tensor(SPACE.sample(1, seed=0)))
