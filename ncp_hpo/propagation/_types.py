"""The public types of a propagation: objectives, options, results."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Callback",
    "DifferentiablePredictor",
    "FlopsSource",
    "Objective",
    "PropagationConfig",
    "PropagationResult",
    "Strategy",
    "Trajectory",
]

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


_STRATEGIES = ("continuous", "winner_takes_all")
_TARGET_MODES = ("per_iteration", "fixed")
_FLOPS_SOURCES = ("auto", "exact", "predictor", "none")


def check_lam(lam: Any) -> float:
    """``lam`` (the FLOPs penalty, ``lambda`` of Eq. 3, a sampler's and propagation's) as a
    float; ``ValueError`` unless it is a finite number >= 0. Its one check."""
    if isinstance(lam, bool) or not isinstance(lam, int | float | np.floating | np.integer):
        raise ValueError(f"lam must be a number >= 0, got {lam!r}")
    if not (math.isfinite(float(lam)) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    return float(lam)


class _LamDefault(float):
    """The default ``lam`` (0.5), told apart from an explicit ``lam=0.5`` so that passing
    ``lam`` together with its deprecated old name ``flops_weight`` can be refused."""

    __slots__ = ()


LAM_DEFAULT: float = _LamDefault(0.5)


def renamed_flops_weight(
    lam: float, flops_weight: float | None, where: str, *, stacklevel: int = 3
) -> float:
    """A propagation's FLOPs penalty (``lambda`` of Eq. 3) from ``lam=`` or its old name
    ``flops_weight=`` (deprecated: a :class:`FutureWarning`; ``flops_weight`` now names
    the benchmark objective's FLOPs weight). ``lam`` left at its default reads as 0.5.

    Raises:
        TypeError: both ``lam`` and ``flops_weight`` given.
    """
    if flops_weight is None:
        return 0.5 if lam is LAM_DEFAULT else lam
    if lam is not LAM_DEFAULT:
        raise TypeError(f"{where}: pass lam only (flops_weight is its deprecated old name)")
    warnings.warn(
        f"{where}(flops_weight=...) is deprecated: the FLOPs penalty of a propagation "
        "(lambda of Eq. 3) is now called lam (flops_weight names the benchmark objective's "
        "FLOPs weight); flops_weight= will be removed",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return flops_weight


@dataclass(frozen=True)
class PropagationConfig:
    """Every option of :func:`~ncp_hpo.propagation.propagate` in one object.

    ``propagate(objectives, space, initial, **options)`` builds one from its keyword
    arguments; pass ``config=`` instead to reuse a set of options.

    Attributes:
        strategy: ``"continuous"`` or ``"winner_takes_all"``.
        iterations: maximum number of updates (70).
        lr: learning rate on the standardised code (3; continuous only).
        lam: the FLOPs penalty, ``lambda`` of Eq. 3 (0.5); 0 drops the FLOPs term.
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
            iterations (NAS-Bench-201 uses 10); ``"auto"``: the space's
            :attr:`~ncp_hpo.spaces.CodeSpace.round_every` (10 for NAS-Bench-201, never for
            NAS-Bench-MR, as upstream).
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
            leaves the global setting alone (one thread suits these small tensors; see
            ``benchmarks/propagation_speed.py``).
        autograd_loss: evaluate the smooth-L1 loss of per-iteration targets through
            autograd at every iteration instead of its closed form (same values and
            updates up to rounding, slower; a reference for checking the fast paths).
        flops_weight: deprecated old name of ``lam`` (a :class:`FutureWarning`; ``TypeError``
            together with ``lam``); not a field. ``flops_weight`` now names the benchmark
            objective's FLOPs weight (:class:`~ncp_hpo.benchmarks.BenchmarkObjective`).
    """

    strategy: Strategy = "continuous"
    iterations: int = 70
    lr: float = 3.0
    lam: float = LAM_DEFAULT
    step: float = 1.0
    flops_step: float | None = None
    target_mode: Literal["per_iteration", "fixed"] = "per_iteration"
    stop_at_target: bool = True
    target_tolerance: float = 1e-3
    flops_source: FlopsSource = "auto"
    flops_metric: str = "flops"
    flops_kwargs: Mapping[str, Any] | None = None
    flops_reference: Any | None = None
    round_every: int | Literal["auto"] | None = "auto"
    fixed_features: Mapping[int | str, float] | None = None
    optimizer: Callable[..., torch.optim.Optimizer] | None = None
    optimizer_options: Mapping[str, Any] | None = None
    callback: Callback | None = None
    timeout_sec: float | None = None
    record_trajectory: bool = True
    n_threads: int | None = 1
    autograd_loss: bool = False
    flops_weight: InitVar[float | None] = None

    def __post_init__(self, flops_weight: float | None) -> None:
        lam = renamed_flops_weight(self.lam, flops_weight, "PropagationConfig", stacklevel=4)
        object.__setattr__(self, "lam", lam)
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"strategy must be 'continuous' or 'winner_takes_all', got {self.strategy!r}"
            )
        if self.target_mode not in _TARGET_MODES:
            raise ValueError(
                f"target_mode must be 'per_iteration' or 'fixed', got {self.target_mode!r}"
            )
        it = self.iterations
        if isinstance(it, bool) or not isinstance(it, int) or it < 0:
            raise ValueError(f"iterations must be an int >= 0, got {it!r}")
        if self.flops_source not in _FLOPS_SOURCES:
            raise ValueError(
                "flops_source must be 'auto', 'exact', 'predictor' or 'none', "
                f"got {self.flops_source!r}"
            )
        if not (self.step >= 0 and self.effective_flops_step >= 0):
            raise ValueError(
                f"step and flops_step must be >= 0, got {self.step!r} and "
                f"{self.effective_flops_step!r}"
            )

    @property
    def effective_flops_step(self) -> float:
        """``flops_step``, defaulting to ``step``."""
        return float(self.step if self.flops_step is None else self.flops_step)

    def flops_source_for(self, has_exact_flops: bool) -> FlopsSource:
        """The FLOPs source used on a space: ``"none"`` without a FLOPs penalty, ``"auto"``
        resolved to ``"exact"`` where the space has exact FLOPs, else ``"predictor"``."""
        if self.lam == 0:
            return "none"
        if self.flops_source == "auto":
            return "exact" if has_exact_flops else "predictor"
        return self.flops_source

    def rounding_cadence(self, default: int | None) -> int | None:
        """``round_every`` with ``"auto"`` resolved to the space's ``default``."""
        every = default if self.round_every == "auto" else self.round_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(
                f"round_every must be None, 'auto' or an int >= 1, got {self.round_every!r}"
            )
        return every
