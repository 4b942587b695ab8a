"""Compute budgets: a cap on the exact FLOPs and parameters of the codes a search may try.

A :class:`Budget` holds the caps and the geometry at which they are counted (the training
input size, the task head, the number of classes), and answers ``feasible(codes)`` with
the closed-form counts of :mod:`ncp_hpo.spaces.cost`. A :class:`FlopsCap` caps the exact
FLOPs any space with a closed-form count reports (``space.flops``: NAS-Bench-201's cells,
the benchmark tables' spaces), in a unit of the caller's (``scale``: MFLOPs are
``1e-6``). :class:`BudgetedSpace` is a view of a space restricted to the codes within
either: its
``sample`` draws uniformly among them (rejection sampling), ``neighbors`` drops the
infeasible moves, and ``round`` shrinks an over-budget code towards the smallest network
until it fits. Give it to any predictor-based sampler (``NCPSampler(space=...)``): they
draw, propagate and filter their candidates through the view, so they never propose a code
over the budget.

Counting convention: FLOPs are :func:`ncp_hpo.spaces.cost.flops` with
``convention="macs"`` (multiply-accumulates of one sample, the same count
``TrainResult.macs`` measures); ``max_gflops`` on the command line is ``max_flops / 1e9``.

Example:
    >>> from ncp_hpo.spaces import MultiResolutionSpace
    >>> space = MultiResolutionSpace().with_budget(
    ...     max_flops=30e6, input_size=16, num_classes=10)
    >>> codes = space.sample(5, seed=0)
    >>> bool(space.feasible(codes).all())
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import BudgetError
from ncp_hpo.spaces._base import CodeSpace

if TYPE_CHECKING:
    import torch
    from optuna.distributions import BaseDistribution

    from ncp_hpo.spaces.multires import MultiResolutionSpace

__all__ = ["OVER_BUDGET", "Budget", "BudgetError", "BudgetedSpace", "FlopsCap", "cap_flops"]

OVER_BUDGET = "over compute budget"
"""The ``fail_reason`` of a trial whose code exceeds the budget (never trained)."""

_SHRINK_STEPS = 24  # scale factors tried by ``round`` when a code is over the budget
_MAX_DRAWS = 1 << 16  # random codes tried per sample() call before shrinking the rest


def _cap(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise BudgetError(f"{what} must be a positive number, got {value!r}")
    return v


@dataclass(frozen=True)
class Budget:
    """Caps on the exact cost of a code at one geometry.

    Attributes:
        max_flops: multiply-accumulates of one sample (``cost.flops``, ``"macs"``), or
            ``None`` for no cap.
        max_params: parameters, or ``None`` for no cap.
        input_size: ``(H, W)`` of the input the network is trained on.
        task: the task head (``"cls"``, ``"seg"``, ``"video"``, ``"bev-det"``).
        num_classes: outputs of the head.
        options: more keyword arguments of ``cost.flops``/``cost.params`` (``in_chans``,
            ``frames``, ``box_channels``).
    """

    max_flops: float | None = None
    max_params: float | None = None
    input_size: tuple[int, int] = (32, 32)
    task: str = "cls"
    num_classes: int = 10
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_flops", _cap(self.max_flops, "max_flops"))
        object.__setattr__(self, "max_params", _cap(self.max_params, "max_params"))
        size = self.input_size
        hw = (int(size), int(size)) if isinstance(size, int | np.integer) else tuple(size)
        if len(hw) != 2 or min(hw) < 1:
            raise BudgetError(f"input_size must be S or (H, W) with positive sides, got {size}")
        object.__setattr__(self, "input_size", (int(hw[0]), int(hw[1])))
        object.__setattr__(self, "options", dict(self.options))

    @property
    def active(self) -> bool:
        """Whether any cap is set."""
        return self.max_flops is not None or self.max_params is not None

    def flops(self, codes: Any) -> np.ndarray:
        """Exact multiply-accumulates of valid codes (``27`` -> ``()``, ``n x 27`` -> ``n``)."""
        from ncp_hpo.spaces.cost import flops

        return flops(
            codes,
            input_size=self.input_size,
            task=self.task,
            num_classes=self.num_classes,
            **self._flops_options(),
        )

    def params(self, codes: Any) -> np.ndarray:
        """Exact parameter counts of valid codes (``27`` -> ``()``, ``n x 27`` -> ``n``)."""
        from ncp_hpo.spaces.cost import params

        opts = {k: v for k, v in self.options.items() if k != "frames"}
        return params(codes, task=self.task, num_classes=self.num_classes, **opts)

    def _flops_options(self) -> dict[str, Any]:
        return dict(self.options)

    def violation(self, codes: Any) -> np.ndarray:
        """Relative excess over the tightest cap: ``max(flops / max_flops, params /
        max_params) - 1``; ``<= 0`` is feasible (``n x 27`` -> ``n``, ``27`` -> ``()``)."""
        arr = np.asarray(codes)
        out = np.full(arr.shape[:-1], -np.inf)
        if self.max_flops is not None:
            out = np.maximum(out, self.flops(arr) / self.max_flops - 1.0)
        if self.max_params is not None:
            out = np.maximum(out, self.params(arr) / self.max_params - 1.0)
        return np.where(np.isinf(out), -1.0, out)

    def feasible(self, codes: Any) -> np.ndarray:
        """Boolean mask: which codes meet every cap (``n x 27`` -> ``n``)."""
        return np.asarray(self.violation(codes) <= 0.0)

    def describe(self) -> str:
        """E.g. ``"<= 0.03 GFLOPs, <= 1.5 M params at 16x16 (cls, 10 classes)"``."""
        caps = []
        if self.max_flops is not None:
            caps.append(f"<= {self.max_flops / 1e9:.4g} GFLOPs")
        if self.max_params is not None:
            caps.append(f"<= {self.max_params / 1e6:.4g} M params")
        where = (
            f"{self.input_size[0]}x{self.input_size[1]} ({self.task}, {self.num_classes} classes)"
        )
        return f"{', '.join(caps) or 'no cap'} at {where}"


@dataclass(frozen=True, eq=False)
class FlopsCap:
    """A cap on a space's own exact FLOPs (``space.flops``), in the caller's unit.

    The duck-typed twin of :class:`Budget` for spaces whose cost has no geometry to set
    (NAS-Bench-201's cells; a benchmark table's space at its table's geometry): ``flops``
    and ``violation`` read ``space.flops(codes) * scale``.

    Attributes:
        space: the space with a closed-form count (``has_exact_flops``).
        max_flops: the cap, in the unit of ``space.flops(codes) * scale``.
        scale: unit of the cap per unit of ``space.flops`` (``1e-6``: MFLOPs of MACs).
        unit: how the unit is written (``"MFLOPs"``).
    """

    space: CodeSpace
    max_flops: float
    scale: float = 1.0
    unit: str = "FLOPs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_flops", _cap(self.max_flops, "max_flops"))
        if not self.space.has_exact_flops:
            raise BudgetError(f"{self.space!r} has no closed-form FLOPs to cap")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FlopsCap)
            and other.space == self.space
            and (other.max_flops, other.scale) == (self.max_flops, self.scale)
        )

    def __hash__(self) -> int:
        return hash((self.max_flops, self.scale))

    max_params = None

    @property
    def active(self) -> bool:
        return True

    def flops(self, codes: Any) -> np.ndarray:
        """Exact FLOPs of valid codes in the cap's unit (``n x d`` -> ``n``)."""
        return np.asarray(self.space.flops(codes), dtype=np.float64) * self.scale

    def params(self, codes: Any) -> np.ndarray:
        """Exact parameter counts of valid codes (``n x d`` -> ``n``)."""
        return np.asarray(self.space.params(codes), dtype=np.float64)

    def violation(self, codes: Any) -> np.ndarray:
        """``flops / max_flops - 1``: ``<= 0`` is within the cap (``n x d`` -> ``n``)."""
        assert self.max_flops is not None
        return np.asarray(self.flops(codes) / self.max_flops - 1.0)

    def feasible(self, codes: Any) -> np.ndarray:
        """Boolean mask: which codes are within the cap (``n x d`` -> ``n``)."""
        return np.asarray(self.violation(codes) <= 0.0)

    def describe(self) -> str:
        """E.g. ``"<= 47.11 MFLOPs"``."""
        return f"<= {self.max_flops:.6g} {self.unit}"


def cap_flops(
    space: CodeSpace, max_flops: float, *, scale: float = 1.0, unit: str = "FLOPs"
) -> BudgetedSpace:
    """``space`` restricted to the codes whose exact FLOPs (``space.flops(c) * scale``) are
    at most ``max_flops`` (a :class:`BudgetedSpace` over a :class:`FlopsCap`).

    Raises:
        BudgetError: a cap that is not a positive number, a space without closed-form
            FLOPs, or a cap below the space's smallest code.
    """
    return BudgetedSpace(space, FlopsCap(space, max_flops, scale=scale, unit=unit))


class BudgetedSpace(CodeSpace):
    """A space restricted to the codes within a :class:`Budget` (a multi-resolution
    space) or a :class:`FlopsCap` (any space with closed-form FLOPs).

    Everything but ``sample``, ``neighbors`` and ``round`` is the base space's (names, box,
    validation, exact FLOPs at the base's default geometry for propagation, Optuna and Ax
    adapters). Build one with :meth:`MultiResolutionSpace.with_budget` or
    :func:`cap_flops`. ``round`` shrinks a code over the budget towards the base's
    ``round(lower)`` (the smallest multi-resolution network; NAS-Bench-201's all-``none``
    cell).

    Raises:
        BudgetError: when even the smallest code exceeds the budget.
    """

    def __init__(self, base: MultiResolutionSpace | CodeSpace, budget: Budget | FlopsCap) -> None:
        self.base = base
        self.budget = budget
        self.names = base.names
        self.lower = base.lower
        self.upper = base.upper
        if hasattr(base, "step"):
            self.step = base.step
        smallest = base.round(base.lower)
        if not budget.feasible(smallest[None])[0]:
            if isinstance(budget, FlopsCap):
                raise BudgetError(
                    f"budget {budget.describe()} is below the smallest code of the space "
                    f"({float(budget.flops(smallest)):.6g} {budget.unit})"
                )
            f = float(budget.flops(smallest)) / 1e9
            p = float(budget.params(smallest)) / 1e6
            raise BudgetError(
                f"budget {budget.describe()} is below the smallest network of the space "
                f"({f:.4g} GFLOPs, {p:.4g} M params); raise the caps or lower the input size"
            )
        self._smallest = smallest

    def __repr__(self) -> str:
        return f"BudgetedSpace({self.budget.describe()})"

    def __getattr__(self, name: str) -> Any:
        # everything else (is_width, encode, decode, describe, ...) is the base space's
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BudgetedSpace)
            and other.base == self.base
            and other.budget == self.budget
        )

    def __hash__(self) -> int:
        return hash((type(self), self.budget.max_flops, self.budget.max_params))

    @property
    def has_exact_flops(self) -> bool:
        return self.base.has_exact_flops

    def paper_start(self) -> np.ndarray | None:
        return self.base.paper_start()

    def default_start(self) -> np.ndarray:
        """The base's default start, shrunk into the budget."""
        return self.round(self.base.default_start())

    @property
    def input_features(self) -> np.ndarray | None:
        return self.base.input_features

    def grid_step(self) -> np.ndarray:
        return self.base.grid_step()

    @property
    def round_every(self) -> int | None:
        return self.base.round_every

    @property
    def restricted(self) -> bool:
        return True

    def admissible(self, codes: Any) -> np.ndarray:
        """Codes within the budget (:meth:`feasible`)."""
        return self.feasible(codes)

    def feasible(self, codes: Any) -> np.ndarray:
        """Which valid codes (``n x 27``) are within the budget (boolean ``n``)."""
        arr = np.asarray(codes, dtype=np.int64).reshape(-1, self.dim)
        return self.budget.feasible(arr)

    # -- restricted code operations ---------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` feasible codes, ``n x 27``: uniform among the feasible ones (rejection
        sampling) while at least 1 in ``2**16`` random codes fits; the rest are random codes
        shrunk into the budget by :meth:`round` (not uniform, but spread over the set)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n = int(n)
        out: list[np.ndarray] = []
        have = drawn = 0
        batch = max(n, 1) * 8
        while have < n and drawn < _MAX_DRAWS:
            draw = self.base.sample(batch, seed=rng)
            drawn += batch
            keep = draw[self.budget.feasible(draw)]
            out.append(keep)
            have += len(keep)
            batch = min(batch * 4, 1 << 15)
        if have < n:
            out.append(self._shrink(self.base.sample(n - have, seed=rng)))
        return np.concatenate(out)[:n].astype(np.int64)

    def neighbors(self, code: Any) -> np.ndarray:
        """The base space's one-unit moves that stay within the budget, ``m x 27``; for a
        code so far over the budget that no move fits, the moves shrunk into it (never
        empty)."""
        nbrs = self.base.neighbors(code)
        ok = self.budget.feasible(nbrs)
        if ok.any():
            return nbrs[ok]
        shrunk = self._shrink(nbrs)
        _, first = np.unique(shrunk, axis=0, return_index=True)
        return shrunk[np.sort(first)]

    def round(self, x: Any) -> np.ndarray:
        """The base space's nearest code, shrunk towards the smallest code until it fits:
        the largest ``s`` in a grid of scale factors with ``round(lower + s (x - lower))``
        within the budget (``s = 0`` is the smallest code, always feasible)."""
        codes = self.base.round(x)
        flat = codes.reshape(-1, self.dim)
        bad = ~self.budget.feasible(flat)
        if bad.any():
            flat = flat.copy()
            flat[bad] = self._shrink(flat[bad])
        return flat.reshape(codes.shape)

    def _shrink(self, codes: np.ndarray) -> np.ndarray:
        lower = self.lower
        scales = np.linspace(1.0, 0.0, _SHRINK_STEPS + 1)[1:]  # descending, ends at 0
        cand = lower + scales[None, :, None] * (codes[:, None, :] - lower)
        rounded = self.base.round(cand.reshape(-1, self.dim)).reshape(cand.shape)
        ok = self.budget.feasible(rounded.reshape(-1, self.dim)).reshape(rounded.shape[:2])
        ok[:, -1] = True  # the smallest code (checked at construction)
        first = ok.argmax(axis=1)
        return rounded[np.arange(len(codes)), first]

    # -- delegated -------------------------------------------------------------------------
    def validate(self, code: Any) -> np.ndarray:
        return self.base.validate(code)

    def flops(self, codes: Any, **kwargs: Any) -> np.ndarray:
        return self.base.flops(codes, **kwargs)

    def params(self, codes: Any, **kwargs: Any) -> np.ndarray:
        return self.base.params(codes, **kwargs)

    def flops_torch(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.base.flops_torch(x, **kwargs)

    def to_params(self, code: Any) -> dict[str, Any]:
        return self.base.to_params(code)

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        return self.base.from_params(params)

    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        return self.base.optuna_distributions()

    def ax_parameters(self) -> list[Any]:
        return self.base.ax_parameters()


def make_budget(
    *,
    max_flops: float | None,
    max_params: float | None,
    input_size: int | Sequence[int],
    task: str = "cls",
    num_classes: int = 10,
    **options: Any,
) -> Budget | None:
    """A :class:`Budget`, or ``None`` when neither cap is given."""
    if max_flops is None and max_params is None:
        return None
    size = (int(input_size), int(input_size)) if isinstance(input_size, int) else input_size
    return Budget(
        max_flops=max_flops,
        max_params=max_params,
        input_size=tuple(size),  # type: ignore[arg-type]
        task=task,
        num_classes=num_classes,
        options=options,
    )
