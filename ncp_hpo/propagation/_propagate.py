"""Network Coding Propagation (paper Section 3.1, Algorithm 1, Appendix C and E.1).

:func:`propagate` edits architecture codes by back-propagating through frozen
:class:`~ncp_hpo.predictor.NeuralPredictor` s, batched over ``n`` starting codes at once,
in the projected-gradient shape of BoTorch's ``gen_candidates_torch``: initial points,
bounds from the space, an optional injectable optimizer, fixed features, a callback and a
timeout, and a result dataclass.

Strategies
----------
``"continuous"`` (Eq. 3): every iteration computes, per starting code,
``L = sum_t w_t * (smoothL1(p_t, t_t) + lambda * smoothL1(f, t_f))`` and takes a gradient
step on the *standardised* code ``z = (e - input_mean) / input_std`` of the first
predictor (learning rate 3, 70 iterations by default), then projects ``z`` onto the
space's box. The valid code reported at each iteration is ``space.round(e)``.

``"winner_takes_all"`` (Eq. 4-6): the same loss and gradient, but only one dimension
``l`` moves per iteration, by ``+-k`` (``k`` = the space's grid step: 8 for channels, 1
otherwise). ``Delta r_l = T(e + k u_l) - T(e)`` are exact FLOPs increases, the gradient
``grad_e`` is taken with respect to the raw code ``e``, and ``g = grad_e / Delta r``:
if some ``g_l > 0`` the largest such ``l`` with room below is decreased (better metric
*and* fewer FLOPs), otherwise the smallest ``g_l < 0`` with room above is increased (best
metric gain per FLOP). A dimension at its bound cannot move past it; a row with no legal
move stops.

Targets (Algorithm 1, "re-set new target metrics (optional)")
-------------------------------------------------------------
``target_mode="per_iteration"`` (default, what upstream ``tools/ncp.py`` does): each
iteration sets ``t = p + step`` (``p - step`` for minimised metrics) and ``t_f = f -
flops_step`` from the current prediction, so the propagation never "arrives" and runs its
iterations. With the smooth-L1 loss (``beta = 1``) and ``step >= 1`` the gradient is then
exactly ``-(grad p - lambda grad f)``: plain gradient ascent on the trade-off; with
``step < 1`` it is scaled by ``step``. The paper's text uses ``step = 1`` (our default).
Upstream's YAML configs use ``per_step_increase = per_flops_decrease = 0.1``, but upstream
``tools/ncp.py`` applies an L1 loss to these targets, whose gradient ``sign(p - t) grad p``
does not depend on the size of the offset: its effective step is the same as ours at
``step = 1`` (the same learning rate moves the code equally far). ``target_mode="fixed"`` sets the
targets once from the initial prediction (``t = p_0 + step``); a row stops (is frozen)
once all its targets are met (``stop_at_target``). :class:`Objective` ``target`` gives an
absolute target in the metric's units (e.g. "most efficient model with mIoU >= 77").

FLOPs term
----------
``flops_source="predictor"`` uses each predictor's learned ``flops`` output (the paper's
way; it is already standardised by the predictor's target statistics).
``flops_source="exact"`` uses ``space.flops_torch`` (differentiable closed form),
standardised as ``(F(e) - mean) / std`` with the mean and std of the exact FLOPs of
``flops_reference`` codes: by default 4,096 codes drawn uniformly from the space with a
fixed seed, which matches how the benchmark codes (and so the learned head's statistics)
were sampled; pass the predictor's training codes to match its statistics exactly.
``"auto"`` picks ``"exact"`` where ``space.has_exact_flops``, else ``"predictor"``.
With relative targets only the std scales the update. ``flops_kwargs`` choose whose FLOPs
are minimised (task head, input size, counting convention: ``space.flops_torch``'s
arguments); the reference statistics and the reported ``flops`` use the same arguments.
The exact term is evaluated by :func:`exact_flops_fn`: ``space.flops_torch`` compiled once
into an exact polynomial (:mod:`ncp_hpo.propagation._polynomial`), one autograd node.

Speed
-----
Per iteration the work is a handful of tensor operations on the whole ``n x d`` batch; no
Python work proportional to ``n``. The continuous codes are kept, and rounded, predicted
and costed in one batch after the loop (only codes that changed since the previous
iteration are evaluated), except every ``round_every`` iterations where the rounding is
part of the algorithm.

Multi-task (Eq. 7) and transfer
-------------------------------
Several objectives (one predictor each, e.g. classification and segmentation) add their
weighted gradients: ``grad = sum_t w_t grad_t``, each ``grad_t`` including its own FLOPs
term as in the paper (so with ``"exact"`` FLOPs the FLOPs weight is ``lambda * sum w_t``).
Cross-task transfer starts from another task's optimum: :func:`transfer`.

NAS-Bench-201 (Appendix C)
--------------------------
The 30-dim one-hot is propagated as a continuous code; every ``round_every = 10``
iterations (one "step") the code is reset to its per-edge arg-max (``space.round``).
``round_every="auto"`` does this for :class:`~ncp_hpo.spaces.NB201Space` only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.exceptions import InvalidCodeError, NCPWarning
from ncp_hpo.predictor import NeuralPredictor, as_code_batch, torch_threads
from ncp_hpo.propagation._polynomial import CompiledPolynomial, compile_polynomial
from ncp_hpo.spaces._base import CodeSpace

__all__ = [
    "DifferentiablePredictor",
    "Objective",
    "PropagationResult",
    "Trajectory",
    "paper_start",
    "propagate",
    "transfer",
]

_FAST_RELATIVE_LOSS = True  # tests switch it off to check the surrogate against smooth-L1

Strategy = Literal["continuous", "winner_takes_all"]
FlopsSource = Literal["auto", "exact", "predictor", "none"]
Callback = Callable[[int, Tensor, Tensor], "bool | None"]


@runtime_checkable
class DifferentiablePredictor(Protocol):
    """What :func:`propagate` needs from a predictor (:class:`NeuralPredictor` has it all).

    Any model with these members can be propagated through, e.g. a hand-made linear
    model in tests or another regressor family. Shapes: ``d`` code dimensions, ``m``
    outputs.
    """

    n_features_in_: int
    metric_names_: list[str]
    main_metric_: str

    @property
    def input_mean_(self) -> Tensor:
        """``d``: codes are standardised as ``(code - input_mean_) / input_std_``."""
        ...

    @property
    def input_std_(self) -> Tensor:
        """``d``."""
        ...

    @property
    def target_mean_(self) -> Tensor:
        """``m``: outputs in original units are ``out * target_std_ + target_mean_``."""
        ...

    @property
    def target_std_(self) -> Tensor:
        """``m``."""
        ...

    def metric_index(self, name: str) -> int:
        """Output column of metric ``name``."""
        ...

    def forward_standardized(self, z: Tensor, *, outputs: Sequence[int] | None = None) -> Tensor:
        """Differentiable: standardised codes ``batch x d`` (float32) -> ``batch x m'``."""
        ...


def _is_predictor(obj: Any) -> bool:
    return isinstance(obj, NeuralPredictor) or (
        hasattr(obj, "forward_standardized") and hasattr(obj, "metric_names_")
    )


@dataclass(frozen=True)
class Objective:
    """One predictor's goal in a propagation (one task of Eq. 7).

    Attributes:
        predictor: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (or any
            :class:`DifferentiablePredictor`).
        metric: the metric to push; default the predictor's main metric.
        weight: its weight ``w_t`` in the gradient sum (Eq. 7).
        maximize: ``False`` to minimise the metric (e.g. a latency or an error).
        target: an absolute target in the metric's units; ``None`` uses ``step``.
        name: label in results; default ``metric`` (must be unique across objectives).
    """

    predictor: DifferentiablePredictor
    metric: str | None = None
    weight: float = 1.0
    maximize: bool = True
    target: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class Trajectory:
    """Every iteration of a propagation; index 0 is the start, index ``t`` the state after
    ``t`` updates (``T`` = iterations run).

    Attributes:
        continuous: ``(T+1) x n x d`` float64, the continuous codes in raw units.
        rounded: ``(T+1) x n x d`` int64, ``space.round`` of them (the reported codes).
        metrics: ``(T+1) x n x k`` float64, each objective's predicted metric (original
            units) of the rounded codes.
        flops_pred: ``(T+1) x n x k`` learned-FLOPs predictions of the rounded codes
            (original units), or ``None`` when the predictors have no ``flops`` output.
        flops: ``(T+1) x n`` exact FLOPs of the rounded codes, or ``None``.
        loss: ``T x n`` float64, the loss of each update.
    """

    continuous: np.ndarray
    rounded: np.ndarray
    metrics: np.ndarray
    flops_pred: np.ndarray | None
    flops: np.ndarray | None
    loss: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "continuous": self.continuous.tolist(),
            "rounded": self.rounded.tolist(),
            "metrics": self.metrics.tolist(),
            "flops_pred": None if self.flops_pred is None else self.flops_pred.tolist(),
            "flops": None if self.flops is None else self.flops.tolist(),
            "loss": self.loss.tolist(),
        }


@dataclass(frozen=True)
class PropagationResult:
    """Output of :func:`propagate`.

    Attributes:
        codes: ``n x d`` int64, the final valid codes (one per start).
        initial_codes: ``n x d`` float64, the starting codes (fixed features applied;
            rounded for winner-takes-all).
        objective_names: the ``k`` objective labels, column order of ``metrics``.
        metrics: ``n x k`` float64, predicted metric of each final code per objective.
        flops_pred: ``n x k`` learned-FLOPs predictions of the final codes, or ``None``.
        flops: ``n`` exact FLOPs of the final codes (``space.flops``), or ``None``.
        params: ``n`` exact parameter counts of the final codes, or ``None``.
        stopped: ``n`` bool, rows frozen early (target met, or no legal move in
            winner-takes-all).
        iterations: number of updates run.
        elapsed: wall-clock seconds.
        trajectory: the per-iteration record, or ``None`` with ``record_trajectory=False``.
        settings: the JSON-able arguments of the call (provenance).
    """

    codes: np.ndarray
    initial_codes: np.ndarray
    objective_names: list[str]
    metrics: np.ndarray
    flops_pred: np.ndarray | None
    flops: np.ndarray | None
    params: np.ndarray | None
    stopped: np.ndarray
    iterations: int
    elapsed: float
    trajectory: Trajectory | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])

    def best(self, objective: int | str = 0) -> int:
        """Row index of the final code with the best predicted metric of ``objective``."""
        j = objective if isinstance(objective, int) else self.objective_names.index(objective)
        col = self.metrics[:, j]
        maximize = self.settings.get("maximize", [True] * len(self.objective_names))[j]
        return int(np.argmax(col) if maximize else np.argmin(col))

    def to_dict(self, *, include_trajectory: bool = True) -> dict[str, Any]:
        def lst(a: np.ndarray | None) -> Any:
            return None if a is None else a.tolist()

        return {
            "codes": self.codes.tolist(),
            "initial_codes": self.initial_codes.tolist(),
            "objective_names": list(self.objective_names),
            "metrics": self.metrics.tolist(),
            "flops_pred": lst(self.flops_pred),
            "flops": lst(self.flops),
            "params": lst(self.params),
            "stopped": self.stopped.tolist(),
            "iterations": self.iterations,
            "elapsed": self.elapsed,
            "settings": self.settings,
            "trajectory": (
                self.trajectory.to_dict()
                if include_trajectory and self.trajectory is not None
                else None
            ),
        }

    def to_json(self, *, include_trajectory: bool = True, indent: int | None = None) -> str:
        """The result as a JSON document (lists of numbers; see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(include_trajectory=include_trajectory), indent=indent)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def paper_start(space: CodeSpace) -> np.ndarray:
    """The paper's initial code ``{b, n = 2; c, i, o = 64}`` (Section 4.1), shape ``d``.

    Only defined for spaces the paper gives a start for (:meth:`CodeSpace.paper_start`).
    """
    start = space.paper_start()
    if start is None:
        raise ValueError(
            f"{type(space).__name__} has no paper start code; pass `initial` explicitly"
        )
    return start


def _normalise_objectives(objectives: Any) -> list[Objective]:
    if isinstance(objectives, Objective) or _is_predictor(objectives):
        items: list[Any] = [objectives]
    elif isinstance(objectives, Sequence) and not isinstance(objectives, str):
        items = list(objectives)
        # one bare tuple (predictor, weight[, metric]) rather than a list of them
        if len(items) in (2, 3) and _is_predictor(items[0]) and not _is_predictor(items[1]):
            if not isinstance(items[1], Objective | tuple):
                items = [tuple(items)]
    else:
        raise TypeError(
            "objectives must be a NeuralPredictor, an Objective, a (predictor, weight[, metric]) "
            f"tuple or a list of those; got {type(objectives).__name__}"
        )
    out: list[Objective] = []
    for it in items:
        if isinstance(it, Objective):
            out.append(it)
        elif _is_predictor(it):
            out.append(Objective(it))
        elif isinstance(it, tuple) and 2 <= len(it) <= 3 and _is_predictor(it[0]):
            out.append(
                Objective(it[0], weight=float(it[1]), metric=it[2] if len(it) == 3 else None)
            )
        else:
            raise TypeError(
                f"cannot use {it!r} as an objective; pass a NeuralPredictor, an Objective or "
                "a (predictor, weight[, metric]) tuple"
            )
    if not out:
        raise ValueError("propagate needs at least one objective")
    return out


@dataclass
class _Obj:
    """An objective resolved against its predictor (internal)."""

    predictor: DifferentiablePredictor
    name: str
    col: int
    weight: float
    sign: float  # +1 maximise, -1 minimise
    abs_target: float | None  # standardised
    flops_col: int | None
    mean: Tensor  # d, predictor input mean
    std: Tensor  # d
    same_frame: bool  # shares the propagation frame (first predictor's standardisation)
    y_mean: float
    y_std: float
    f_mean: float
    f_std: float


def _resolve(
    objectives: list[Objective], d: int, flops_metric: str, need_flops_head: bool
) -> list[_Obj]:
    out: list[_Obj] = []
    names: list[str] = []
    first: DifferentiablePredictor | None = None
    for i, o in enumerate(objectives):
        p = o.predictor
        if isinstance(p, NeuralPredictor):
            p._check_fitted("propagate")
        elif not _is_predictor(p):
            raise TypeError(
                f"objective {i}: predictor must be a NeuralPredictor or implement "
                f"DifferentiablePredictor, got {type(p).__name__}"
            )
        if p.n_features_in_ != d:
            raise InvalidCodeError(
                f"objective {i}: the predictor takes codes with d = {p.n_features_in_}, "
                f"but the space has d = {d}"
            )
        metric = o.metric if o.metric is not None else p.main_metric_
        if metric not in p.metric_names_:
            raise ValueError(
                f"objective {i}: the predictor has no metric {metric!r}; it predicts "
                f"{list(p.metric_names_)}"
            )
        col = p.metric_index(metric)
        name = o.name if o.name is not None else metric
        if name in names:
            raise ValueError(f"two objectives are both called {name!r}; give them distinct `name`s")
        names.append(name)
        if not math.isfinite(o.weight):
            raise ValueError(f"objective {name!r}: weight must be finite, got {o.weight}")
        fcol = p.metric_names_.index(flops_metric) if flops_metric in p.metric_names_ else None
        if need_flops_head and fcol is None:
            raise ValueError(
                f"flops_source='predictor' needs a {flops_metric!r} output, but the predictor "
                f"of objective {name!r} predicts {p.metric_names_}; fit it with a "
                f"{flops_metric!r} column or use flops_source='exact'"
            )
        ym, ys = float(p.target_mean_[col]), float(p.target_std_[col])
        first = first or p
        same = p is first or (
            torch.equal(p.input_mean_, first.input_mean_)
            and torch.equal(p.input_std_, first.input_std_)
        )
        out.append(
            _Obj(
                predictor=p,
                name=name,
                col=col,
                weight=float(o.weight),
                sign=1.0 if o.maximize else -1.0,
                abs_target=None if o.target is None else (float(o.target) - ym) / ys,
                flops_col=fcol,
                mean=p.input_mean_,
                std=p.input_std_,
                same_frame=same,
                y_mean=ym,
                y_std=ys,
                f_mean=float(p.target_mean_[fcol]) if fcol is not None else 0.0,
                f_std=float(p.target_std_[fcol]) if fcol is not None else 1.0,
            )
        )
    return out


def _check_initial(x: Tensor, lower: Tensor, upper: Tensor, names: Sequence[str]) -> None:
    bad = (x < lower - 1e-9) | (x > upper + 1e-9)
    if bad.any():
        r, c = (int(v) for v in torch.nonzero(bad)[0])
        raise InvalidCodeError(
            f"initial[{r}]: {names[c]} = {float(x[r, c]):g} is outside the space's bounds "
            f"[{float(lower[c]):g}, {float(upper[c]):g}]"
        )


def _fixed_mask(
    fixed: Mapping[int | str, float] | None, names: Sequence[str], d: int
) -> tuple[Tensor, Tensor]:
    """``(free, values)``: ``free`` d bool (False where fixed), ``values`` d (raw units)."""
    free = torch.ones(d, dtype=torch.bool)
    values = torch.zeros(d, dtype=torch.float64)
    for key, v in (fixed or {}).items():
        if isinstance(key, str):
            if key not in names:
                raise KeyError(f"fixed feature {key!r} is not a dimension name; names: {names}")
            i = list(names).index(key)
        else:
            i = int(key)
            if not 0 <= i < d:
                raise IndexError(f"fixed feature index {i} is out of range for d = {d}")
        free[i] = False
        values[i] = float(v)
    return free, values


# ---------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------
def propagate(
    objectives: Any,
    space: CodeSpace,
    initial: Any | None = None,
    *,
    strategy: Strategy = "continuous",
    iterations: int = 70,
    lr: float = 3.0,
    flops_weight: float = 0.5,
    step: float = 1.0,
    flops_step: float | None = None,
    target_mode: Literal["per_iteration", "fixed"] = "per_iteration",
    stop_at_target: bool = True,
    target_tolerance: float = 1e-3,
    flops_source: FlopsSource = "auto",
    flops_metric: str = "flops",
    flops_kwargs: Mapping[str, Any] | None = None,
    flops_reference: Any | None = None,
    round_every: int | Literal["auto"] | None = "auto",
    fixed_features: Mapping[int | str, float] | None = None,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    timeout_sec: float | None = None,
    record_trajectory: bool = True,
    n_threads: int | None = 1,
) -> PropagationResult:
    """Propagate ``n`` architecture codes through frozen predictors (Algorithm 1).

    Args:
        objectives: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (its main metric,
            maximised), an :class:`Objective`, a ``(predictor, weight[, metric])`` tuple, or
            a list of those for multi-task propagation (Eq. 7).
        space: the code space (bounds, rounding, exact FLOPs).
        initial: starting codes, ``d`` or ``n x d`` within the space's bounds (need not be
            on the grid for ``"continuous"``); default :func:`paper_start`.
        strategy: ``"continuous"`` or ``"winner_takes_all"``.
        iterations: maximum number of updates (70).
        lr: learning rate on the standardised code (3; continuous only).
        flops_weight: ``lambda`` of Eq. 3 (0.5); 0 drops the FLOPs term.
        step: metric target offset in standardised units (1; see the module docstring).
        flops_step: FLOPs target offset (default ``step``).
        target_mode: ``"per_iteration"`` (upstream) or ``"fixed"`` (set once at the start).
        stop_at_target: freeze a row once every target is met (fixed/absolute targets).
        target_tolerance: a target counts as met within this many standardised units
            (below ``step = 1`` the smooth-L1 loss approaches its target geometrically).
        flops_source: ``"auto"``, ``"exact"``, ``"predictor"`` or ``"none"``.
        flops_metric: name of the learned FLOPs output (``"flops"``).
        flops_kwargs: keyword arguments of ``space.flops_torch``/``space.flops`` (e.g.
            ``{"task": "seg", "input_size": (512, 1024)}``).
        flops_reference: codes (``N x d``) whose exact-FLOPs mean/std standardise the exact
            FLOPs term; default 4,096 uniform samples of the space (seed 0).
        round_every: reset the continuous code to ``space.round`` of it every this many
            iterations (NAS-Bench-201 uses 10); ``"auto"``: 10 for
            :class:`~ncp_hpo.spaces.NB201Space`, else never (upstream NAS-Bench-MR).
        fixed_features: ``{dimension index or name: raw value}`` held fixed.
        optimizer: a ``torch.optim.Optimizer`` class for the continuous update; ``None`` is
            the paper's plain projected gradient step ``z <- P(z - lr * grad)``.
        optimizer_options: extra keyword arguments for ``optimizer``.
        callback: ``callback(iteration, loss, grad)`` after each gradient, with ``loss``
            ``n`` and ``grad`` ``n x d`` (w.r.t. the standardised code); return ``True``
            to stop.
        timeout_sec: stop after this many seconds.
        record_trajectory: keep the per-iteration record (``result.trajectory``).
        n_threads: torch intra-op threads during the call (restored after); ``None``
            leaves the global setting alone. One thread is fastest and steadiest for these
            small tensors on a shared 2-core CPU (``benchmarks/propagation_speed.py``).

    Returns:
        :class:`PropagationResult`; ``codes`` is ``n x d`` even for a single ``d`` start.

    Example:
        >>> from ncp_hpo.spaces import MultiResolutionSpace
        >>> space = MultiResolutionSpace()
        >>> # predictor = NeuralPredictor().fit(codes, {"mIoU": ..., "flops": ...})
        >>> # res = propagate(predictor, space)                 # paper defaults
        >>> # res.codes[0], res.metrics[0], res.flops[0]
        >>> # multi-task: propagate([(cls_pred, 1.0, "top1"), (seg_pred, 1.0, "mIoU")], space)
    """
    with torch_threads(n_threads):
        return _propagate(
            objectives,
            space,
            initial,
            strategy=strategy,
            iterations=iterations,
            lr=lr,
            flops_weight=flops_weight,
            step=step,
            flops_step=flops_step,
            target_mode=target_mode,
            stop_at_target=stop_at_target,
            target_tolerance=target_tolerance,
            flops_source=flops_source,
            flops_metric=flops_metric,
            flops_kwargs=flops_kwargs,
            flops_reference=flops_reference,
            round_every=round_every,
            fixed_features=fixed_features,
            optimizer=optimizer,
            optimizer_options=optimizer_options,
            callback=callback,
            timeout_sec=timeout_sec,
            record_trajectory=record_trajectory,
        )


def _propagate(
    objectives: Any,
    space: CodeSpace,
    initial: Any | None = None,
    *,
    strategy: Strategy = "continuous",
    iterations: int = 70,
    lr: float = 3.0,
    flops_weight: float = 0.5,
    step: float = 1.0,
    flops_step: float | None = None,
    target_mode: Literal["per_iteration", "fixed"] = "per_iteration",
    stop_at_target: bool = True,
    target_tolerance: float = 1e-3,
    flops_source: FlopsSource = "auto",
    flops_metric: str = "flops",
    flops_kwargs: Mapping[str, Any] | None = None,
    flops_reference: Any | None = None,
    round_every: int | Literal["auto"] | None = "auto",
    fixed_features: Mapping[int | str, float] | None = None,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    timeout_sec: float | None = None,
    record_trajectory: bool = True,
) -> PropagationResult:
    """The body of :func:`propagate` (thread count already set)."""
    t_start = time.perf_counter()
    objs_in = _normalise_objectives(objectives)
    if strategy not in ("continuous", "winner_takes_all"):
        raise ValueError(f"strategy must be 'continuous' or 'winner_takes_all', got {strategy!r}")
    if target_mode not in ("per_iteration", "fixed"):
        raise ValueError(f"target_mode must be 'per_iteration' or 'fixed', got {target_mode!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")
    if flops_source not in ("auto", "exact", "predictor", "none"):
        raise ValueError(
            f"flops_source must be 'auto', 'exact', 'predictor' or 'none', got {flops_source!r}"
        )
    d = space.dim
    fkw = dict(flops_kwargs or {})
    if flops_weight == 0:
        src: FlopsSource = "none"
    elif flops_source == "auto":
        src = "exact" if space.has_exact_flops else "predictor"
    else:
        src = flops_source
    if src == "exact" and not space.has_exact_flops:
        raise ValueError(f"flops_source='exact' needs a space with exact FLOPs; {space!r} has none")
    objs = _resolve(objs_in, d, flops_metric, need_flops_head=src == "predictor")
    if round_every == "auto":
        every = space.round_every
    else:
        every = round_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(f"round_every must be None, 'auto' or an int >= 1, got {round_every!r}")
    if strategy == "winner_takes_all" and every is not None:
        raise ValueError(
            "winner_takes_all moves one dimension by its grid step; it does not apply to "
            f"one-hot codes ({type(space).__name__}, round_every={every}); use 'continuous'"
        )
    if strategy == "winner_takes_all" and not space.has_exact_flops:
        raise ValueError(
            "winner_takes_all needs exact FLOPs (Eq. 4's lookup table); "
            f"{type(space).__name__} has none"
        )
    fstep = float(step if flops_step is None else flops_step)
    if not (step >= 0 and fstep >= 0):
        raise ValueError(f"step and flops_step must be >= 0, got {step!r} and {fstep!r}")

    # -- frames: propagation runs on z = (e - mu) / sigma of the first predictor ---------
    mu = objs[0].mean.double()
    sigma = objs[0].std.double()
    lower = torch.as_tensor(space.lower, dtype=torch.float64)
    upper = torch.as_tensor(space.upper, dtype=torch.float64)
    if initial is None:
        initial = paper_start(space)
    e0, _ = as_code_batch(initial, d, name="initial", dtype=torch.float64)
    n = e0.shape[0]
    free, fixed_vals = _fixed_mask(fixed_features, space.names, d)
    e0 = torch.where(free, e0, fixed_vals)
    _check_initial(e0, lower, upper, space.names)
    if strategy == "winner_takes_all":
        e0 = torch.as_tensor(space.round(e0.numpy()), dtype=torch.float64)
    z_lo = ((lower - mu) / sigma).float()
    z_hi = ((upper - mu) / sigma).float()
    mu32, sigma32 = mu.float(), sigma.float()

    # -- exact FLOPs: compiled polynomial of space.flops_torch, standardised ----------------
    flops_fn = exact_flops_fn(space, fkw) if space.has_exact_flops else None
    fx_mean = fx_std = 0.0
    if src == "exact":
        assert flops_fn is not None
        if flops_reference is None:
            fx_mean, fx_std = _reference_stats(space, _freeze(fkw))
        else:
            ref = np.asarray(flops_reference, dtype=np.float64)
            with torch.no_grad():
                rf = flops_fn(torch.as_tensor(ref, dtype=torch.float64))
            fx_mean, fx_std = float(rf.mean()), float(rf.std())
        if not fx_std > 0:
            raise ValueError("flops_reference codes all have the same FLOPs; cannot standardise")

    def forward(z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Standardised codes ``n x d`` -> standardised metric predictions ``n x k`` and
        FLOPs: ``n x k`` (learned, ``"predictor"``), ``n`` (``"exact"``) or ``None``."""
        outs = []
        for o in objs:
            zt = z if o.same_frame else (z * sigma32 + mu32 - o.mean) / o.std
            cols = [o.col] if o.flops_col is None or src != "predictor" else [o.col, o.flops_col]
            outs.append(o.predictor.forward_standardized(zt, outputs=cols))  # n x 1|2
        if src == "predictor":
            both = outs[0] if len(outs) == 1 else torch.stack(outs, dim=1)  # n x (k x) 2
            return both[..., 0].reshape(-1, len(objs)), both[..., 1].reshape(-1, len(objs))
        p = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # n x k
        if src == "exact":
            assert flops_fn is not None
            if isinstance(flops_fn, CompiledPolynomial):  # one autograd node
                f = flops_fn.affine(z, sigma, mu, 1.0 / fx_std, -fx_mean / fx_std)
            else:
                f = ((flops_fn(z.double() * sigma + mu) - fx_mean) / fx_std).float()
            return p, f
        return p, None

    weights = torch.tensor([o.weight for o in objs])
    signs = torch.tensor([o.sign for o in objs])
    abs_targets = [o.abs_target for o in objs]

    def loss_rows(p: Tensor, f: Tensor | None, tp: Tensor, tf: Tensor | None) -> Tensor:
        """Per-row loss ``n`` from predictions and (detached) targets."""
        lm = F.smooth_l1_loss(p, tp, reduction="none")  # n x k
        total = lm
        if f is not None and tf is not None:
            lf = F.smooth_l1_loss(f, tf, reduction="none")
            total = total + flops_weight * (lf if lf.ndim == 2 else lf.unsqueeze(1))
        return (total * weights).sum(1)

    def make_targets(p: Tensor, f: Tensor | None) -> tuple[Tensor, Tensor | None]:
        tp = p.detach() + signs * step
        for j, a in enumerate(abs_targets):
            if a is not None:
                tp[:, j] = a
        tf = None if f is None else f.detach() - fstep
        return tp, tf

    def targets_met(p: Tensor, f: Tensor | None, tp: Tensor, tf: Tensor | None) -> Tensor:
        met = ((p - tp) * signs >= -target_tolerance).all(1)
        if f is not None and tf is not None:
            fm = f <= tf + target_tolerance
            met &= fm.all(1) if fm.ndim == 2 else fm
        return met

    # rows can only "arrive" at targets that do not move with the prediction
    fixed_targets = target_mode == "fixed" or all(a is not None for a in abs_targets)

    # Per-iteration targets t = p +- step: smooth-L1 (beta 1) at a fixed distance ``step``
    # has the constant value h(step) and slope min(step, 1), so the loss is evaluated as
    # that constant plus a linear surrogate with the same gradient (fewer tensor ops).
    relative = (
        _FAST_RELATIVE_LOSS
        and target_mode == "per_iteration"
        and all(a is None for a in abs_targets)
    )

    def huber(x: float) -> float:
        return x - 0.5 if x >= 1.0 else 0.5 * x * x

    slope_m = -signs * min(step, 1.0) * weights  # k
    slope_f = flops_weight * min(fstep, 1.0) * weights  # k
    const_m = huber(step) * float(weights.sum())
    const_f = flops_weight * huber(fstep) * float(weights.sum())

    def relative_loss(p: Tensor, f: Tensor | None) -> Tensor:
        """Per-row loss ``n`` for per-iteration targets (value and gradient exact)."""
        lin = p @ slope_m  # n
        const = const_m
        if f is not None:
            lin = lin + (f @ slope_f if f.ndim == 2 else f * slope_f.sum())
            const += const_f
        return (lin - lin.detach()) + const

    # Fastest path (per-iteration targets, predictors with a hand-written input gradient,
    # compiled exact FLOPs): the update needs only d loss / dz, a fixed linear combination
    # of output gradients, so neither forward values nor an autograd graph are built.
    grad_fn = None
    if relative and all(hasattr(o.predictor, "input_gradient_fn") for o in objs):
        if src != "exact" or isinstance(flops_fn, CompiledPolynomial):
            grad_fn = _analytic_gradient(objs, src, slope_m, slope_f, flops_fn, mu, sigma, fx_std)
    loss_const = torch.full((n,), const_m + (const_f if src != "none" else 0.0))

    # -- bookkeeping -------------------------------------------------------------------------
    z = ((e0 - mu) / sigma).float()
    z = torch.minimum(torch.maximum(z, z_lo), z_hi)
    free32 = free.float()
    has_fixed = not bool(free.all())
    active = torch.ones(n, dtype=torch.bool)
    some_frozen = False  # == not active.all(), tracked where active changes
    # the continuous codes of every iteration; rounded and predicted in one batch at the end
    zs: list[Tensor] = [z]
    traj_loss: list[Tensor] = []

    tp0: Tensor | None = None
    tf0: Tensor | None = None
    if target_mode == "fixed":
        with torch.no_grad():
            p0, f0 = forward(z)
        tp0, tf0 = make_targets(p0, f0)

    opt = None
    zp: Tensor | None = None
    if optimizer is not None and strategy == "continuous":
        zp = z.clone().requires_grad_(True)
        opt = optimizer([zp], lr=lr, **dict(optimizer_options or {}))

    kstep = torch.as_tensor(space.grid_step(), dtype=torch.float64)  # d
    increments = (
        _flops_increments(flops_fn, kstep)
        if strategy == "winner_takes_all" and flops_fn is not None
        else None
    )
    e_cur = e0.clone()  # winner-takes-all state (raw units, on the grid)

    n_updates = 0
    for it in range(1, iterations + 1):
        if timeout_sec is not None and time.perf_counter() - t_start > timeout_sec:
            break
        if grad_fn is not None:
            grad, loss = grad_fn(z), loss_const
        else:
            zg = z.clone().requires_grad_(True)
            p, f = forward(zg)
            if relative:
                loss = relative_loss(p, f)
            else:
                if tp0 is not None:
                    tp, tf = tp0, tf0
                else:
                    tp, tf = make_targets(p, f)
                if fixed_targets and stop_at_target:
                    active &= ~targets_met(p.detach(), None if f is None else f.detach(), tp, tf)
                    some_frozen = not bool(active.all())
                loss = loss_rows(p, f, tp, tf)
            (grad,) = torch.autograd.grad(loss.sum(), zg)
        if has_fixed:
            grad = grad * free32
        if some_frozen:
            grad = grad * active.unsqueeze(1)
        if callback is not None and callback(it, loss.detach(), grad):
            break
        traj_loss.append(loss.detach())
        if strategy == "continuous":
            if opt is not None and zp is not None:
                zp.grad = grad
                opt.step()
                with torch.no_grad():
                    # projection, under no_grad like the optimizer's own update
                    zp.copy_(torch.where(active.unsqueeze(1), zp.clamp(z_lo, z_hi), z))
                z = zp.detach().clone()
            else:
                z = torch.minimum(torch.maximum(z - lr * grad, z_lo), z_hi)
            if every is not None and it % every == 0:
                e_r = torch.as_tensor(space.round((z.double() * sigma + mu).numpy()))
                z = ((e_r.double() - mu) / sigma).float()
                if zp is not None:
                    with torch.no_grad():
                        zp.copy_(z)
        else:
            assert increments is not None
            moved = _wta_step(
                e_cur, grad.double() / sigma, kstep, lower, upper, free, active, increments
            )
            active &= moved
            some_frozen = not bool(active.all())
            z = ((e_cur - mu) / sigma).float()
        n_updates = it
        zs.append(z)
        if some_frozen and not bool(active.any()):
            break

    # -- results -----------------------------------------------------------------------------
    if record_trajectory:
        cont = (torch.stack(zs).double() * sigma + mu).numpy()  # T+1 x n x d
    else:
        cont = (zs[-1].double() * sigma + mu).numpy()[None]  # 1 x n x d
    t1 = cont.shape[0]
    rounded_all = space.round(cont.reshape(-1, d)).reshape(t1, n, d)
    m_all, fp_all, fl_all = _evaluate_rounded(objs, space, rounded_all, src == "predictor", fkw)
    final = rounded_all[-1]
    _, params = _exact_costs(space, final, fkw, with_flops=False)
    trajectory = None
    if record_trajectory:
        trajectory = Trajectory(
            continuous=cont,
            rounded=rounded_all,
            metrics=m_all,
            flops_pred=fp_all,
            flops=fl_all,
            loss=(torch.stack(traj_loss).double().numpy() if traj_loss else np.empty((0, n))),
        )
    settings = {
        "strategy": strategy,
        "iterations": iterations,
        "lr": lr,
        "flops_weight": flops_weight,
        "step": step,
        "flops_step": fstep,
        "target_mode": target_mode,
        "target_tolerance": target_tolerance,
        "flops_source": src,
        "flops_kwargs": {key: _jsonable(v) for key, v in fkw.items()},
        "round_every": every,
        "weights": [o.weight for o in objs],
        "maximize": [o.sign > 0 for o in objs],
        "optimizer": None if optimizer is None else getattr(optimizer, "__name__", repr(optimizer)),
    }
    return PropagationResult(
        codes=np.asarray(final, dtype=np.int64),
        initial_codes=e0.numpy(),
        objective_names=[o.name for o in objs],
        metrics=m_all[-1],
        flops_pred=None if fp_all is None else fp_all[-1],
        flops=None if fl_all is None else fl_all[-1],
        params=params,
        stopped=(~active).numpy(),
        iterations=n_updates,
        elapsed=time.perf_counter() - t_start,
        trajectory=trajectory,
        settings=settings,
    )


def _analytic_gradient(
    objs: list[_Obj],
    src: str,
    slope_m: Tensor,
    slope_f: Tensor,
    flops_fn: Callable[[Tensor], Tensor] | None,
    mu: Tensor,
    sigma: Tensor,
    fx_std: float,
) -> Callable[[Tensor], Tensor]:
    """``z`` (``n x d``) -> ``d loss / dz`` for per-iteration targets, without autograd.

    The loss is ``sum_t slope_m[t] p_t + (sum_t slope_f[t] f_t | slope_f.sum() f)`` up to a
    constant (see ``relative_loss``); objectives sharing a predictor and frame are merged
    into one call of its ``input_gradient_fn``.
    """
    groups: dict[tuple[int, bool], tuple[Any, list[int], list[float], _Obj]] = {}
    for t, o in enumerate(objs):
        key = (id(o.predictor), o.same_frame)
        _, cols, coefs, _ = groups.setdefault(key, (o.predictor, [], [], o))
        pairs = [(o.col, float(slope_m[t]))]
        if src == "predictor" and o.flops_col is not None:
            pairs.append((o.flops_col, float(slope_f[t])))
        for col, c in pairs:
            if col in cols:
                coefs[cols.index(col)] += c
            else:
                cols.append(col)
                coefs.append(c)
    sigma32, mu32 = sigma.float(), mu.float()
    fns = []
    for pred, cols, coefs, o in groups.values():
        g = pred.input_gradient_fn(cols, coefs)
        # another predictor's frame: z_t = (z * sigma + mu - mean_t) / std_t
        scale = None if o.same_frame else (sigma32 / o.std).float()
        fns.append((g, scale, o))
    poly = flops_fn if src == "exact" and isinstance(flops_fn, CompiledPolynomial) else None
    f_coef = float(slope_f.sum()) / fx_std if poly is not None else 0.0

    def grad(z: Tensor) -> Tensor:
        total: Tensor | None = None
        for g, scale, o in fns:
            if scale is None:
                part = g(z)
            else:
                part = g((z * sigma32 + mu32 - o.mean) / o.std) * scale
            total = part if total is None else total + part
        assert total is not None
        if poly is not None:
            total = total + poly.gradient(z, sigma, mu, f_coef)
        return total

    return grad


def _exact_costs(
    space: CodeSpace,
    codes: np.ndarray,
    fkw: Mapping[str, Any],
    *,
    with_flops: bool = True,
    with_params: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Exact FLOPs and parameter counts (``N`` float64 each) where the space has them."""
    flops = params = None
    if with_flops:
        with contextlib.suppress(NotImplementedError):
            flops = np.asarray(space.flops(codes, **fkw), dtype=np.float64)
    if with_params:
        # parameter counts do not depend on the input geometry or the counting convention
        pkw = {k: v for k, v in fkw.items() if k not in ("input_size", "frames", "convention")}
        with contextlib.suppress(NotImplementedError):
            params = np.asarray(space.params(codes, **pkw), dtype=np.float64)
    return flops, params


def _evaluate_rounded(
    objs: list[_Obj],
    space: CodeSpace,
    rounded: np.ndarray,
    with_flops_pred: bool,
    fkw: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Predicted metrics (``T x n x k``), learned FLOPs (``T x n x k`` or ``None``) and exact
    FLOPs (``T x n`` or ``None``) of the rounded codes ``T x n x d``.

    Only codes that differ from the previous iteration's are evaluated (trajectories
    repeat codes a lot); the rest are carried forward.
    """
    t1, n, d = rounded.shape
    changed = np.ones((t1, n), dtype=bool)
    changed[1:] = (rounded[1:] != rounded[:-1]).any(-1)
    flat_idx = np.flatnonzero(changed.reshape(-1))
    codes = rounded.reshape(-1, d)[flat_idx]
    # position of the last change at or before each (t, i), as an index into flat_idx
    last = np.where(changed, np.arange(t1)[:, None], 0)
    last = np.maximum.accumulate(last, axis=0)  # t of the last change
    pos = np.searchsorted(flat_idx, last * n + np.arange(n)[None, :])
    with torch.no_grad():
        m, fp = _predict_rounded(objs, codes, with_flops_pred)
    fl, _ = _exact_costs(space, codes, fkw, with_params=False)
    k = len(objs)
    return (
        m[pos].reshape(t1, n, k),
        None if fp is None else fp[pos].reshape(t1, n, k),
        None if fl is None else fl[pos].reshape(t1, n),
    )


def _freeze(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, Mapping):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


@functools.lru_cache(maxsize=32)
def _compiled_flops(space: CodeSpace, frozen_kwargs: tuple[Any, ...]) -> CompiledPolynomial | None:
    kwargs = dict(frozen_kwargs)
    return compile_polynomial(
        functools.partial(space.flops_torch, **kwargs) if kwargs else space.flops_torch,
        space.dim,
        lower=space.lower,
        upper=space.upper,
    )


@functools.lru_cache(maxsize=32)
def _reference_stats(space: CodeSpace, frozen_kwargs: tuple[Any, ...]) -> tuple[float, float]:
    """Mean and std of the exact FLOPs of 4,096 uniform codes of ``space`` (seed 0)."""
    fn = exact_flops_fn(space, dict(frozen_kwargs))
    with torch.no_grad():
        rf = fn(torch.as_tensor(space.sample(4096, seed=0), dtype=torch.float64))
    return float(rf.mean()), float(rf.std())


def exact_flops_fn(
    space: CodeSpace, flops_kwargs: Mapping[str, Any] | None = None
) -> Callable[[Tensor], Tensor]:
    """Fast exact FLOPs of real-valued codes (``batch_shape x d`` -> ``batch_shape``).

    ``space.flops_torch`` compiled into one matrix product by
    :func:`~ncp_hpo.propagation._polynomial.compile_polynomial` (cached per space and
    keyword arguments; ~0.1 s the first time). Falls back to ``space.flops_torch`` itself,
    with an :class:`~ncp_hpo.exceptions.NCPWarning`, when it is not such a polynomial.
    """
    kwargs = dict(flops_kwargs or {})
    try:
        key = _freeze(kwargs)
        hash(key)
        hash(space)
    except TypeError:
        poly = None
    else:
        poly = _compiled_flops(space, key)
    if poly is not None:
        return poly
    warnings.warn(
        f"{type(space).__name__}.flops_torch is not a polynomial of degree <= 2 per "
        "dimension; propagation calls it directly (slower)",
        NCPWarning,
        stacklevel=2,
    )
    return functools.partial(space.flops_torch, **kwargs) if kwargs else space.flops_torch


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _predict_rounded(
    objs: list[_Obj], codes: np.ndarray, with_flops: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Metrics (``N x k``) and learned FLOPs (``N x k`` or ``None``) of integer codes, in
    original units."""
    x = torch.as_tensor(codes, dtype=torch.float32)
    ms, fs = [], []
    for o in objs:
        cols = [o.col] if not with_flops or o.flops_col is None else [o.col, o.flops_col]
        out = o.predictor.forward_standardized((x - o.mean) / o.std, outputs=cols)
        ms.append(out[:, 0] * o.y_std + o.y_mean)
        if len(cols) == 2:
            fs.append(out[:, 1] * o.f_std + o.f_mean)
    m = torch.stack(ms, 1).double().numpy()
    f = torch.stack(fs, 1).double().numpy() if with_flops and fs else None
    return m, f


def _flops_increments(
    flops_fn: Callable[[Tensor], Tensor], kstep: Tensor
) -> Callable[[Tensor], Tensor]:
    """``e`` (``n x d``) -> exact ``T(e + k_l u_l) - T(e)`` (``n x d``), Eq. 4."""
    if isinstance(flops_fn, CompiledPolynomial):
        poly = flops_fn
        return lambda e: poly.increments(e, kstep)
    eye_k = torch.diag(kstep)

    def by_evaluation(e: Tensor) -> Tensor:
        cand = torch.cat([e.unsqueeze(1), e.unsqueeze(1) + eye_k], dim=1)  # n x (d+1) x d
        fl = flops_fn(cand)  # n x (d+1)
        return fl[:, 1:] - fl[:, :1]

    return by_evaluation


def _wta_step(
    e: Tensor,
    grad_e: Tensor,
    kstep: Tensor,
    lower: Tensor,
    upper: Tensor,
    free: Tensor,
    active: Tensor,
    increments: Callable[[Tensor], Tensor],
) -> Tensor:
    """One winner-takes-all update of ``e`` (``n x d``, in place); returns ``n`` bool: moved.

    ``grad_e`` is ``dL/de`` (``n x d``); ``increments(e)`` gives ``Delta r`` (Eq. 4) for
    every dimension at once (``n x d``).
    """
    n = e.shape[0]
    with torch.no_grad():
        dr = increments(e)  # n x d
        g = torch.where(dr > 0, grad_e / dr.clamp_min(1e-30), grad_e * math.inf)
        g = torch.nan_to_num(g, nan=0.0)
        can_dec = (e - kstep >= lower - 1e-9) & free
        can_inc = (e + kstep <= upper + 1e-9) & free
        pos = (g > 0) & can_dec
        neg = (g < 0) & can_inc
        neg_inf = torch.full_like(g, -math.inf)
        l_dec = torch.where(pos, g, neg_inf).argmax(1)  # n
        l_inc = torch.where(neg, -g, neg_inf).argmax(1)  # argmin of g among neg
        has_dec = pos.any(1)
        has_inc = neg.any(1)
        moved = (has_dec | has_inc) & active
        rows = torch.arange(n)
        col = torch.where(has_dec, l_dec, l_inc)
        delta = torch.where(has_dec, -kstep[col], kstep[col]) * moved
        e[rows, col] += delta
    return moved


def transfer(
    source: PropagationResult | Any,
    objectives: Any,
    space: CodeSpace,
    *,
    row: int | None = None,
    **kwargs: Any,
) -> PropagationResult:
    """Cross-task transfer (paper Section 4.4): propagate from another task's optimum.

    Args:
        source: a :class:`PropagationResult` of the source task (its final codes are the
            start) or codes (``d`` / ``n x d``).
        objectives: the target task's objective(s), as for :func:`propagate`.
        space: the code space.
        row: start only from this row of ``source`` (e.g. ``source.best()``).
        **kwargs: passed to :func:`propagate`.
    """
    codes = source.codes if isinstance(source, PropagationResult) else np.asarray(source)
    if row is not None:
        codes = np.atleast_2d(codes)[row]
    return propagate(objectives, space, codes, **kwargs)
