"""propagate(): the NCP algorithm pinned on hand-made predictors with known answers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.propagation import (
    DifferentiablePredictor,
    Objective,
    PropagationConfig,
    exact_flops_fn,
    paper_start,
    propagate,
    transfer,
)
from ncp_hpo.propagation._polynomial import compile_polynomial
from ncp_hpo.spaces import CodeSpace, MultiResolutionSpace
from ncp_hpo.spaces.nb201 import NB201Space


# -- hand-made space and predictor ------------------------------------------------------------
class ToySpace(CodeSpace):
    """Two channel dims (8..64 step 8) and two count dims (1..4); known polynomial FLOPs."""

    names = ("c1", "c2", "b", "n")
    lower = np.array([8.0, 8.0, 1.0, 1.0])
    upper = np.array([64.0, 64.0, 4.0, 4.0])
    step = np.array([8.0, 8.0, 1.0, 1.0])

    def grid_step(self) -> np.ndarray:
        return self.step

    def __hash__(self) -> int:
        return hash(type(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToySpace)

    @property
    def has_exact_flops(self) -> bool:
        return True

    @staticmethod
    def _formula(x: Any) -> Any:
        c1, c2, b, n = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
        return 100 * c1 * c2 * b + 50 * c2 * c2 * n + 1000 * b + 7 * c1

    def flops_torch(self, x: torch.Tensor) -> torch.Tensor:
        return self._formula(x)

    def flops(self, codes: Any) -> np.ndarray:
        return self._formula(self.validate(codes).astype(np.float64))

    def sample(self, n: int, seed: Any = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        k = rng.integers(0, ((self.upper - self.lower) / self.step + 1).astype(int), size=(n, 4))
        return (self.lower + k * self.step).astype(np.int64)

    def validate(self, code: Any) -> np.ndarray:
        a = np.asarray(code)
        if a.shape[-1] != 4 or ((a - self.lower) % self.step != 0).any():
            raise InvalidCodeError(f"bad toy code {a}")
        if (a < self.lower).any() or (a > self.upper).any():
            raise InvalidCodeError(f"toy code out of range {a}")
        return a.astype(np.int64)

    def round(self, x: Any) -> np.ndarray:
        a = np.clip(np.asarray(x, dtype=np.float64), self.lower, self.upper)
        return (self.lower + np.floor((a - self.lower) / self.step + 0.5) * self.step).astype(
            np.int64
        )

    def to_params(self, code: Any) -> dict[str, Any]:
        raise NotImplementedError

    def from_params(self, params: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def optuna_distributions(self) -> dict[str, Any]:
        raise NotImplementedError

    def ax_parameters(self) -> list[Any]:
        raise NotImplementedError


class LinearPredictor:
    """``out = z @ W + b`` on standardised codes ``z``: every gradient is known."""

    def __init__(
        self,
        w: Sequence[Sequence[float]],
        mean: Sequence[float],
        std: Sequence[float],
        names: Sequence[str] = ("acc", "flops"),
        y_mean: float = 70.0,
        y_std: float = 2.0,
    ) -> None:
        self.w = torch.tensor(w, dtype=torch.float32)  # d x m
        self.n_features_in_ = self.w.shape[0]
        self.metric_names_ = list(names)
        self.main_metric_ = self.metric_names_[0]
        self._mean = torch.tensor(mean, dtype=torch.float32)
        self._std = torch.tensor(std, dtype=torch.float32)
        m = self.w.shape[1]
        self._ym = torch.full((m,), y_mean)
        self._ys = torch.full((m,), y_std)

    input_mean_ = property(lambda self: self._mean)
    input_std_ = property(lambda self: self._std)
    target_mean_ = property(lambda self: self._ym)
    target_std_ = property(lambda self: self._ys)

    def metric_index(self, name: str) -> int:
        return self.metric_names_.index(name)

    def forward_standardized(
        self, z: torch.Tensor, *, outputs: Sequence[int] | None = None
    ) -> torch.Tensor:
        out = z @ self.w
        return out if outputs is None else out[..., list(outputs)]


SPACE = ToySpace()
MEAN, STD = [36.0, 36.0, 2.5, 2.5], [16.0, 16.0, 1.0, 1.0]


def linear(w_acc: Sequence[float], w_flops: Sequence[float] | None = None) -> LinearPredictor:
    w_flops = w_flops or [0.0] * 4
    return LinearPredictor(np.stack([w_acc, w_flops], 1).tolist(), MEAN, STD)


def z_of(e: np.ndarray) -> np.ndarray:
    return (e - np.asarray(MEAN)) / np.asarray(STD)


def test_linear_predictor_satisfies_the_protocol() -> None:
    assert isinstance(linear([1, 0, 0, 0]), DifferentiablePredictor)


# -- continuous propagation ----------------------------------------------------------------------
@pytest.mark.parametrize("step", [1.0, 3.0, 0.5])
def test_continuous_follows_the_gradient_and_stops_at_the_bounds(step: float) -> None:
    w = np.array([0.5, -0.25, 0.0, 0.1])
    start = np.array([30.0, 40.0, 2.2, 3.1])
    lr, iters = 0.2, 100
    res = propagate(linear(w), SPACE, start, lr=lr, iterations=iters, lam=0.0, step=step)
    # smooth-L1 gradient of (p - (p + step)) is -min(step, 1): plain ascent on p
    rate = lr * min(step, 1.0)
    t = np.arange(iters + 1)[:, None]
    z_lo, z_hi = z_of(SPACE.lower), z_of(SPACE.upper)
    want_z = np.clip(z_of(start) + t * rate * w, z_lo, z_hi)
    got_z = z_of(res.trajectory.continuous[:, 0])
    np.testing.assert_allclose(got_z, want_z, atol=1e-5)
    # the dimensions pushed outward end on their bounds, the flat one does not move
    final = res.trajectory.continuous[-1, 0]
    assert final[0] == pytest.approx(64.0, abs=1e-4) and final[1] == pytest.approx(8.0, abs=1e-4)
    assert final[2] == pytest.approx(2.2, abs=1e-5)
    # reported codes are the space's rounding of the continuous ones
    np.testing.assert_array_equal(
        res.trajectory.rounded,
        SPACE.round(res.trajectory.continuous.reshape(-1, 4)).reshape(iters + 1, 1, 4),
    )
    np.testing.assert_array_equal(res.codes, res.trajectory.rounded[-1])
    assert res.iterations == iters and res.trajectory.loss.shape == (iters, 1)


def test_minimised_objective_goes_the_other_way() -> None:
    w = [0.5, 0.0, 0.0, 0.0]
    up = propagate(linear(w), SPACE, [30, 30, 2, 2], lr=0.1, iterations=1, lam=0)
    down = propagate(
        Objective(linear(w), maximize=False),
        SPACE,
        [30, 30, 2, 2],
        lr=0.1,
        iterations=1,
        lam=0,
    )
    assert up.trajectory.continuous[1, 0, 0] > 30 > down.trajectory.continuous[1, 0, 0]


def test_exact_flops_term_gradient() -> None:
    """One step: dz = lr * (w - lambda * sigma_e * dF/de / sigma_F), F standardised."""
    w = np.array([0.3, 0.2, -0.1, 0.05])
    start = np.array([24.0, 40.0, 2.0, 3.0])
    ref = SPACE.sample(500, seed=1)
    lam, lr = 0.5, 0.1
    res = propagate(
        linear(w),
        SPACE,
        start,
        lr=lr,
        iterations=1,
        lam=lam,
        flops_source="exact",
        flops_reference=ref,
    )
    f_ref = SPACE.flops(ref)
    e = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(SPACE.flops_torch(e), e)
    dz_want = lr * (w - lam * g.numpy() * np.asarray(STD) / f_ref.std(ddof=1))
    dz_got = z_of(res.trajectory.continuous[1, 0]) - z_of(start)
    np.testing.assert_allclose(dz_got, dz_want, rtol=1e-4, atol=1e-6)
    assert res.settings["flops_source"] == "exact"
    assert res.flops is not None and res.flops[0] == SPACE.flops(res.codes[0])


def test_learned_flops_head() -> None:
    w, wf = [0.3, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]
    res = propagate(
        linear(w, wf),
        SPACE,
        [30, 30, 2, 2],
        lr=0.1,
        iterations=1,
        lam=0.5,
        flops_source="predictor",
    )
    dz = z_of(res.trajectory.continuous[1, 0]) - z_of(np.array([30, 30, 2, 2.0]))
    np.testing.assert_allclose(dz, 0.1 * (np.array(w) - 0.5 * np.array(wf)), atol=1e-6)
    assert res.flops_pred is not None and res.flops_pred.shape == (1, 1)
    with pytest.raises(ValueError, match="needs a 'flops' output"):
        propagate(
            LinearPredictor([[1.0]] * 4, MEAN, STD, names=["acc"]),
            SPACE,
            flops_source="predictor",
            initial=[30, 30, 2, 2],
        )


def test_eq7_multi_task_gradient_is_the_weighted_sum() -> None:
    p1 = linear([0.3, -0.2, 0.1, 0.0])
    p2 = linear([-0.1, 0.4, 0.0, 0.2])
    start = np.array([[24.0, 40.0, 2.0, 3.0], [32, 16, 3, 2]])
    kw = {
        "lr": 0.05,
        "iterations": 1,
        "lam": 0.5,
        "flops_reference": SPACE.sample(256, seed=0),
    }

    def delta(res):
        return res.trajectory.continuous[1] - res.trajectory.continuous[0]

    d1 = delta(propagate(p1, SPACE, start, **kw))
    d2 = delta(propagate(p2, SPACE, start, **kw))
    both = propagate(
        [Objective(p1, weight=0.7, name="cls"), Objective(p2, weight=1.6, name="seg")],
        SPACE,
        start,
        **kw,
    )
    np.testing.assert_allclose(delta(both), 0.7 * d1 + 1.6 * d2, rtol=1e-4, atol=1e-6)
    assert both.objective_names == ["cls", "seg"] and both.metrics.shape == (2, 2)
    # the (predictor, weight, metric) tuple form is the same thing
    tup = propagate([(p1, 0.7, "acc"), (p2, 1.6, "flops")], SPACE, start, **kw)
    assert tup.objective_names == ["acc", "flops"]
    with pytest.raises(ValueError, match="distinct `name`s"):
        propagate([p1, p2], SPACE, start, **kw)


# -- winner-takes-all ----------------------------------------------------------------------------
def _increments(e: np.ndarray) -> np.ndarray:
    out = []
    for l_ in range(4):
        moved = e.copy()
        moved[l_] += SPACE.step[l_]
        out.append(SPACE.flops(moved) - SPACE.flops(e))
    return np.asarray(out, dtype=np.float64)


def test_winner_takes_all_picks_best_gain_per_flop() -> None:
    w = np.array([0.3, 0.2, 0.25, 0.1])  # every dimension helps the metric
    e0 = np.array([16, 16, 2, 2])
    res = propagate(linear(w), SPACE, e0, strategy="winner_takes_all", iterations=1, lam=0)
    # Eq. 5, second branch: all grad/dr < 0; increase argmax of metric gain per FLOP
    gain = w / np.asarray(STD)  # d p / d e in standardised target units
    want = int(np.argmax(gain / _increments(e0)))
    moved = res.trajectory.rounded[1, 0] - res.trajectory.rounded[0, 0]
    expect = np.zeros(4, dtype=int)
    expect[want] = SPACE.step[want]
    np.testing.assert_array_equal(moved, expect)


def test_winner_takes_all_takes_a_free_win_first_and_respects_bounds() -> None:
    w = np.array([0.3, -0.05, 0.25, 0.1])  # shrinking c2 helps the metric and saves FLOPs
    e0 = np.array([16, 24, 2, 2])
    res = propagate(linear(w), SPACE, e0, strategy="winner_takes_all", iterations=3, lam=0)
    steps = np.diff(res.trajectory.rounded[:, 0], axis=0)
    np.testing.assert_array_equal(steps[0], [0, -8, 0, 0])  # Eq. 5 first branch: e_l - k
    np.testing.assert_array_equal(steps[1], [0, -8, 0, 0])
    # c2 is now at its lower bound (8): it cannot shrink further, so the next move grows
    assert res.trajectory.rounded[2, 0, 1] == 8
    assert steps[2][1] == 0 and (steps[2] > 0).sum() == 1
    # every visited code is valid
    SPACE.validate(res.trajectory.rounded.reshape(-1, 4))


def test_winner_takes_all_stops_when_nothing_can_move() -> None:
    w = np.array([0.3, 0.2, 0.25, 0.1])
    top = SPACE.upper.astype(int)
    res = propagate(linear(w), SPACE, top, strategy="winner_takes_all", iterations=5, lam=0)
    assert res.stopped.all() and res.iterations == 1
    np.testing.assert_array_equal(res.codes[0], top)


# -- targets, options, errors -------------------------------------------------------------------
def test_fixed_targets_stop_rows_that_arrive() -> None:
    w = [0.5, 0.0, 0.0, 0.0]
    starts = np.array([[16.0, 30, 2, 2], [60, 30, 2, 2]])
    res = propagate(
        linear(w),
        SPACE,
        starts,
        lr=0.5,
        iterations=50,
        lam=0,
        target_mode="fixed",
        step=0.5,
    )
    # row 0 reaches p0 + 0.5 (dz = 1 in c1) and is frozen; row 1 hits the bound first
    assert res.stopped.tolist() == [True, False]
    assert res.iterations == 50
    z = z_of(res.trajectory.continuous[-1, 0])[0]
    assert z == pytest.approx(z_of(np.array([16.0, 0, 0, 0]))[0] + 1.0, abs=0.05)
    # an absolute target in the metric's units: p = 70 + 2 * 0.5 * z_c1
    res2 = propagate(
        Objective(linear(w), target=70.5),
        SPACE,
        [[16.0, 30, 2, 2]],
        lr=1.0,
        iterations=100,
        lam=0,
    )
    assert res2.stopped[0] and res2.iterations < 100
    p_final = 70 + 2 * 0.5 * z_of(res2.trajectory.continuous[-1, 0])[0]
    assert p_final == pytest.approx(70.5, abs=2 * 1e-3)


def test_fixed_features_and_batch_shapes() -> None:
    w = [0.5, 0.5, 0.5, 0.5]
    res = propagate(linear(w), SPACE, [30, 30, 2, 2], fixed_features={"b": 3, 0: 24}, lr=0.3)
    cont = res.trajectory.continuous[:, 0]
    assert (cont[:, 2] == 3).all() and (cont[:, 0] == 24).all()
    assert res.codes.shape == (1, 4)
    batch = propagate(linear(w), SPACE, SPACE.sample(5, seed=0), iterations=3, lr=0.3)
    assert batch.codes.shape == (5, 4) and batch.trajectory.continuous.shape == (4, 5, 4)
    assert batch.trajectory.metrics.shape == (4, 5, 1) and batch.trajectory.flops.shape == (4, 5)


def test_input_errors() -> None:
    p = linear([0.5, 0, 0, 0])
    with pytest.raises(
        InvalidCodeError, match=r"initial of shape \(4,\) or \(n, 4\); got \(2, 3\)"
    ):
        propagate(p, SPACE, np.zeros((2, 3)))
    with pytest.raises(InvalidCodeError, match=r"initial\[1\]: c2 = 200 is outside"):
        propagate(p, SPACE, [[30, 30, 2, 2], [30, 200, 2, 2]])
    with pytest.raises(InvalidCodeError, match="d = 27"):
        propagate(p, MultiResolutionSpace())
    with pytest.raises(ValueError, match="strategy"):
        propagate(p, SPACE, [30, 30, 2, 2], strategy="greedy")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="not a dimension name"):
        propagate(p, SPACE, [30, 30, 2, 2], fixed_features={"zz": 1})
    with pytest.raises(TypeError, match="objective"):
        propagate("model", SPACE, [30, 30, 2, 2])
    with pytest.raises(ValueError, match="no paper start"):
        propagate(p, SPACE)
    with pytest.raises(ValueError, match=r"no metric 'top1'"):
        propagate(Objective(p, metric="top1"), SPACE, [30, 30, 2, 2])


def test_callback_timeout_and_optimizer() -> None:
    p = linear([0.5, -0.5, 0.2, 0.2])
    seen: list[int] = []

    def cb(i: int, loss: torch.Tensor, grad: torch.Tensor) -> bool:
        assert loss.shape == (2,) and grad.shape == (2, 4)
        seen.append(i)
        return i == 5

    res = propagate(p, SPACE, SPACE.sample(2, seed=1), callback=cb, iterations=20)
    assert seen == [1, 2, 3, 4, 5] and res.iterations == 4
    assert propagate(p, SPACE, [30, 30, 2, 2], timeout_sec=0.0).iterations == 0
    adam = propagate(
        p, SPACE, SPACE.sample(3, seed=2), optimizer=torch.optim.Adam, lr=0.5, iterations=30
    )
    cont = adam.trajectory.continuous
    assert (cont >= SPACE.lower - 1e-6).all() and (cont <= SPACE.upper + 1e-6).all()
    assert adam.settings["optimizer"] == "Adam"


def test_result_json_and_transfer() -> None:
    p = linear([0.5, 0.1, 0.2, 0.2])
    res = propagate(p, SPACE, SPACE.sample(2, seed=3), iterations=5)
    doc = json.loads(res.to_json())
    assert doc["codes"] == res.codes.tolist()
    assert np.asarray(doc["trajectory"]["rounded"]).shape == (6, 2, 4)
    assert json.loads(res.to_json(include_trajectory=False))["trajectory"] is None
    again = transfer(res, linear([-0.5, 0.1, 0.2, 0.2]), SPACE, row=res.best(), iterations=3)
    np.testing.assert_array_equal(again.initial_codes[0], res.codes[res.best()])


def test_deterministic() -> None:
    p = linear([0.5, -0.1, 0.2, 0.2])
    a = propagate(p, SPACE, SPACE.sample(4, seed=5), strategy="winner_takes_all", iterations=10)
    b = propagate(p, SPACE, SPACE.sample(4, seed=5), strategy="winner_takes_all", iterations=10)
    np.testing.assert_array_equal(a.trajectory.rounded, b.trajectory.rounded)


# -- exact FLOPs compilation -------------------------------------------------------------------
@pytest.mark.parametrize(
    "space", [MultiResolutionSpace(), NB201Space(), SPACE], ids=["multires", "nb201", "toy"]
)
def test_compiled_flops_are_exact(space: CodeSpace) -> None:
    fn = exact_flops_fn(space)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(
        space.lower + rng.uniform(size=(32, space.dim)) * (space.upper - space.lower)
    )
    torch.testing.assert_close(fn(x), space.flops_torch(x), rtol=1e-12, atol=1e-3)
    codes = space.sample(32, seed=1)
    np.testing.assert_array_equal(
        fn(torch.as_tensor(codes, dtype=torch.float64)).numpy(), space.flops(codes)
    )
    # gradients agree with autograd through flops_torch
    xg = x[:4].clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(fn(xg).sum(), xg)
    (g2,) = torch.autograd.grad(space.flops_torch(xg).sum(), xg)
    torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-6)
    # one-pass increments equal explicit differences
    step = torch.as_tensor(getattr(space, "step", np.ones(space.dim)), dtype=torch.float64)
    xi = torch.as_tensor(codes[:5], dtype=torch.float64)
    want = torch.stack(
        [
            space.flops_torch(xi + torch.eye(space.dim, dtype=torch.float64)[j] * step[j])
            - space.flops_torch(xi)
            for j in range(space.dim)
        ],
        1,
    )
    torch.testing.assert_close(fn.increments(xi, step), want, rtol=1e-12, atol=1e-3)


def test_non_polynomial_cost_is_not_compiled() -> None:
    got = compile_polynomial(lambda x: torch.exp(x[..., 0] / 10), 2, lower=[0, 0], upper=[4, 4])
    assert got is None
    cubic = compile_polynomial(lambda x: x[..., 0] ** 3, 2, lower=[0, 0], upper=[4, 4])
    assert cubic is None  # degree 3 in one variable is beyond the supported bound
    quad = compile_polynomial(
        lambda x: x[..., 0] ** 2 * x[..., 1] - 3, 2, lower=[0, 0], upper=[4, 4]
    )
    assert quad is not None and quad.n_terms == 3  # 2 C(x0,2) x1 + x0 x1 - 3


# -- the real spaces ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mr_predictor() -> NeuralPredictor:
    """A small predictor of a smooth metric of multi-resolution codes."""
    space = MultiResolutionSpace()
    x = space.sample(400, seed=0).astype(np.float64)
    score = np.log(space.flops(x.astype(np.int64))) + 0.02 * x[:, 26] - 0.3 * x[:, 2]
    return NeuralPredictor(seed=0, epochs=8).fit(
        x, {"acc": score, "flops": space.flops(x.astype(np.int64)) / 1e9}
    )


@pytest.mark.parametrize("strategy", ["continuous", "winner_takes_all"])
@pytest.mark.parametrize("source", ["exact", "predictor"])
def test_multires_paper_setting(mr_predictor, strategy, source) -> None:
    space = MultiResolutionSpace()
    np.testing.assert_array_equal(paper_start(space)[:5], [64, 64, 2, 2, 64])
    res = propagate(mr_predictor, space, strategy=strategy, flops_source=source)
    assert res.iterations == 70 and res.codes.shape == (1, 27)
    # every reported code is valid (bounds and the channel grid)
    space.validate(res.trajectory.rounded.reshape(-1, 27))
    assert res.params is not None and res.params[0] == space.params(res.codes[0])
    assert res.trajectory.flops[-1, 0] == res.flops[0]
    start_pred = res.trajectory.metrics[0, 0, 0]
    assert res.trajectory.metrics[:, 0, 0].max() > start_pred


def test_nb201_one_hot_steps() -> None:
    space = NB201Space()
    rng = np.random.default_rng(0)
    p = LinearPredictor(rng.normal(size=(30, 1)).tolist(), [0.2] * 30, [0.4] * 30, names=["acc"])
    start = space.sample(3, seed=0)
    res = propagate(p, space, start, lr=0.5, iterations=30, lam=0.1)
    assert res.settings["round_every"] == 10
    cont = res.trajectory.continuous
    for t in (10, 20, 30):  # after each "step" the continuous code is the one-hot itself
        np.testing.assert_allclose(cont[t], res.trajectory.rounded[t], atol=1e-5)
        space.validate(res.trajectory.rounded[t])
    assert not np.allclose(cont[5], res.trajectory.rounded[5])
    with pytest.raises(ValueError, match="winner_takes_all"):
        propagate(p, space, start, strategy="winner_takes_all", flops_source="none")


def test_ensemble_predictor_and_tensor_start() -> None:
    x = SPACE.sample(200, seed=0).astype(np.float64)
    y = {"acc": x[:, 0] / 8 - x[:, 2], "flops": SPACE.flops(x.astype(np.int64)) / 1e5}
    p = NeuralPredictor(n_members=3, epochs=3, seed=0).fit(x, y)
    res = propagate(p, SPACE, torch.tensor([24.0, 24.0, 2.0, 2.0]), iterations=10)
    assert res.codes.shape == (1, 4)
    SPACE.validate(res.trajectory.rounded.reshape(-1, 4))
    # the reported metric is the ensemble mean prediction of the final code
    np.testing.assert_allclose(res.metrics[0, 0], p.predict(res.codes[0])[0], rtol=1e-5)


@pytest.mark.parametrize(
    "kw",
    [{}, {"step": 0.3}, {"step": 2.0, "flops_step": 0.4}, {"lam": 0.0}],
    ids=["paper", "small-step", "mixed", "no-flops"],
)
def test_relative_target_surrogate_equals_smooth_l1(kw) -> None:
    """The per-iteration fast path gives the smooth-L1 loss's values and updates."""
    objs = [
        Objective(linear([0.3, -0.2, 0.1, 0.05], [0.1, 0.2, 0.0, 0.3]), weight=0.7),
        Objective(linear([-0.1, 0.4, 0.0, 0.2]), weight=0.4, maximize=False, name="m2"),
    ]
    start = SPACE.sample(6, seed=4)
    args = {"lr": 0.2, "iterations": 15, "flops_source": "exact", **kw}
    fast = propagate(objs, SPACE, start, **args)
    slow = propagate(objs, SPACE, start, config=PropagationConfig(**args, autograd_loss=True))
    np.testing.assert_allclose(fast.trajectory.continuous, slow.trajectory.continuous, atol=1e-5)
    np.testing.assert_allclose(fast.trajectory.loss, slow.trajectory.loss, rtol=1e-5)


def test_compiled_polynomial_affine_gradcheck() -> None:
    fn = exact_flops_fn(MultiResolutionSpace())
    a = torch.rand(27, dtype=torch.float64) * 10 + 1
    b = torch.rand(27, dtype=torch.float64) * 50 + 8
    x = torch.rand(3, 27, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fn.affine(t, a, b, 1e-9, 0.5), (x,))
    # float32 in, float32 out, same values as the float64 evaluation
    y32 = fn.affine(x.detach().float(), a, b, 1e-9, 0.5)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), fn(x.detach() * a + b) * 1e-9 + 0.5, rtol=1e-5, atol=0)


@pytest.mark.parametrize("source", ["exact", "predictor"])
def test_analytic_gradient_path_equals_autograd(mr_predictor, source) -> None:
    """NeuralPredictor's hand-written gradient path gives autograd's smooth-L1 updates,
    also for several objectives on one predictor and a second predictor in another frame."""
    space = MultiResolutionSpace()
    x = space.sample(300, seed=7).astype(np.float64)
    other = NeuralPredictor(seed=1, epochs=2).fit(
        x, {"acc": -x[:, 0] / 64 + x[:, 26] / 32, "flops": space.flops(x.astype(np.int64)) / 1e9}
    )
    objs = [
        Objective(mr_predictor, weight=0.8),
        Objective(mr_predictor, metric="flops", weight=-0.3, maximize=False, name="f2"),
        Objective(other, weight=0.5, name="other"),
    ]
    starts = space.sample(5, seed=8)
    args = {"iterations": 12, "flops_source": source, "lr": 1.0}
    fast = propagate(objs, space, starts, **args)
    slow = propagate(objs, space, starts, config=PropagationConfig(**args, autograd_loss=True))
    np.testing.assert_allclose(fast.trajectory.continuous, slow.trajectory.continuous, atol=1e-3)
    np.testing.assert_array_equal(fast.codes, slow.codes)
    np.testing.assert_allclose(fast.trajectory.loss, slow.trajectory.loss, rtol=1e-5)


def test_flops_weight_is_a_deprecated_name_of_lam() -> None:
    """``lam`` is the FLOPs penalty (Eq. 3); ``flops_weight=`` still works for one release
    (a FutureWarning naming lam), both at once is a TypeError; results write ``lam``."""
    p = linear([0.3, -0.2, 0.1, 0.05])
    start = SPACE.sample(3, seed=2)
    kw = {"lr": 0.2, "iterations": 5, "flops_source": "exact"}
    new = propagate(p, SPACE, start, lam=0.3, **kw)
    with pytest.warns(FutureWarning, match=r"propagate\(flops_weight=\.\.\.\).*called lam") as rec:
        old = propagate(p, SPACE, start, flops_weight=0.3, **kw)
    assert rec[0].filename == __file__
    np.testing.assert_array_equal(new.trajectory.continuous, old.trajectory.continuous)
    assert new.settings == old.settings
    assert new.settings["lam"] == 0.3 and "flops_weight" not in new.settings
    assert propagate(p, SPACE, start, **kw).settings["lam"] == 0.5
    with pytest.raises(TypeError, match="pass lam only"):
        propagate(p, SPACE, start, lam=0.5, flops_weight=0.3, **kw)
    with pytest.warns(FutureWarning, match=r"PropagationConfig\(flops_weight=") as rec:
        cfg = PropagationConfig(flops_weight=0.0)
    assert rec[0].filename == __file__
    assert cfg == PropagationConfig(lam=0.0) and cfg.flops_source_for(True) == "none"
    with pytest.raises(TypeError, match="pass lam only"):
        PropagationConfig(lam=0.5, flops_weight=0.3)
    assert PropagationConfig().lam == 0.5 and type(PropagationConfig().lam) is float
    assert dataclasses.replace(cfg, iterations=3).lam == 0.0
    # config= and an explicit default lam (or none) are compatible, a changed one is not
    propagate(p, SPACE, start, lam=0.5, config=PropagationConfig(**kw))
    with pytest.raises(TypeError, match="got config and flops_weight"):
        propagate(p, SPACE, start, flops_weight=0.3, config=PropagationConfig(**kw))


def test_config_object_gives_the_keyword_call_and_excludes_keywords() -> None:
    p = linear([0.3, -0.2, 0.1, 0.05])
    start = SPACE.sample(3, seed=2)
    kw = {"lr": 0.2, "iterations": 5, "flops_source": "exact", "strategy": "continuous"}
    by_kw = propagate(p, SPACE, start, **kw)
    by_cfg = propagate(p, SPACE, start, config=PropagationConfig(**kw))
    np.testing.assert_array_equal(by_kw.trajectory.continuous, by_cfg.trajectory.continuous)
    assert by_kw.settings == by_cfg.settings
    with pytest.raises(TypeError, match="not both; got config and iterations"):
        propagate(p, SPACE, start, iterations=3, config=PropagationConfig(**kw))
    with pytest.raises(ValueError, match="iterations must be an int >= 0"):
        PropagationConfig(iterations=-1)
    with pytest.raises(ValueError, match="round_every must be None"):
        propagate(p, SPACE, start, round_every=0)
