"""The interface every architecture-code space implements.

A *space* owns one code format: its named integer dimensions, their grid, validation,
rounding of continuous vectors back onto the grid, and the adapters to Optuna and Ax.
Propagation works on the continuous box ``[lower, upper]`` and calls :meth:`CodeSpace.round`
to report valid codes; samplers go through ``to_params``/``from_params``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.distributions import BaseDistribution


class CodeSpace(ABC):
    """Abstract search space of fixed-length integer codes.

    Subclasses set ``names`` (one per dimension) and the float arrays ``lower`` and
    ``upper`` (shape ``d``), the continuous box used by propagation.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    @property
    def dim(self) -> int:
        """Number of code dimensions ``d``."""
        return len(self.names)

    @property
    def has_exact_flops(self) -> bool:
        """Whether :meth:`flops_torch` gives exact, differentiable FLOPs for this space."""
        return False

    # -- hooks: what search and propagation need to know about a space ------------------
    def paper_start(self) -> np.ndarray | None:
        """The start code the paper gives for this space (``d``), or ``None``."""
        return None

    def default_start(self) -> np.ndarray:
        """Where a search starts when given no start code (``d``): the paper's, else the
        space's own default. Raises ``ValueError`` when the space has neither."""
        start = self.paper_start()
        if start is None:
            raise ValueError(f"{type(self).__name__} has no default start code; pass one")
        return start

    def grid_step(self) -> np.ndarray:
        """Distance between neighbouring valid values of each dimension (``d``, float)."""
        return np.ones(self.dim)

    @property
    def round_every(self) -> int | None:
        """Default rounding cadence of continuous propagation: snap the code onto the grid
        every this many iterations (``None``: never during the run)."""
        return None

    @property
    def input_features(self) -> np.ndarray | None:
        """Extra linear features of a code that a predictor learns from more easily than
        from the code alone, as an ``f x d`` matrix (``codes @ input_features.T``), or
        ``None``. ``NCPSampler(mode="local")`` passes it as the online predictor's
        ``input_map``."""
        return None

    @property
    def restricted(self) -> bool:
        """Whether only some valid codes are admissible (e.g. a compute budget); such a
        space draws the startup codes of a search itself (:meth:`sample`)."""
        return False

    def admissible(self, codes: Any) -> np.ndarray:
        """Which valid codes (``n x d``) a search may propose (boolean ``n``)."""
        return np.ones(len(codes), dtype=bool)

    # -- codes --------------------------------------------------------------------------
    @abstractmethod
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` uniformly random valid codes, shape ``n x d``."""

    @abstractmethod
    def validate(self, code: Any) -> np.ndarray:
        """Check ``code`` (``d`` or ``n x d``) and return it as an int array of the same shape.

        Raises :class:`ncp_hpo.exceptions.InvalidCodeError` naming the first bad dimension.
        """

    @abstractmethod
    def round(self, x: Any) -> np.ndarray:
        """Nearest valid code(s) to real vector(s) ``x`` (``d`` or ``n x d``), same shape, int."""

    def neighbors(self, code: Any) -> np.ndarray:
        """Every valid code one unit away from ``code`` (``d``) -> ``m x d`` int.

        One unit is one grid step of one dimension (NetAdapt's move); spaces define it.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no neighbourhood")

    def flops(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Exact FLOPs of valid code(s) (``d`` -> ``()``, ``n x d`` -> ``n``)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form FLOPs")

    def params(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Exact parameter counts of valid code(s) (``d`` -> ``()``, ``n x d`` -> ``n``)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form parameter count")

    def flops_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable FLOPs of continuous codes ``x`` (``... x d``) -> ``...``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form FLOPs")

    # -- Optuna / Ax adapters -----------------------------------------------------------
    @abstractmethod
    def to_params(self, code: Any) -> dict[str, Any]:
        """One valid code (``d``) -> Optuna/Ax parameter dict (native Python values)."""

    @abstractmethod
    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        """Parameter dict (as produced by :meth:`suggest`) -> validated code, shape ``d``."""

    @abstractmethod
    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        """One Optuna distribution per named dimension."""

    def suggest(self, trial: optuna.trial.BaseTrial) -> np.ndarray:
        """Suggest every dimension on ``trial`` and return the code, shape ``d``."""
        params = {
            name: _suggest_public(trial, name, dist)
            for name, dist in self.optuna_distributions().items()
        }
        return self.from_params(params)

    @abstractmethod
    def ax_parameters(self) -> list[Any]:
        """Ax ``RangeParameterConfig``/``ChoiceParameterConfig`` objects, one per dimension."""


def _suggest_public(trial: Any, name: str, dist: Any) -> Any:
    """Suggest one parameter through the public ``suggest_*`` API of any ``BaseTrial``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"unsupported distribution for {name}: {dist!r}")


def as_real_array(x: Any, *, what: str = "round") -> np.ndarray:
    """``x`` (array-like or tensor) as a float64 array; non-numbers, complex numbers and
    NaN are refused with :class:`~ncp_hpo.exceptions.InvalidCodeError`."""
    from ncp_hpo.exceptions import InvalidCodeError

    raw = x.detach().cpu().numpy() if hasattr(x, "detach") else x
    try:
        arr = np.asarray(raw)
        if arr.dtype == object or np.iscomplexobj(arr):
            raise TypeError(f"dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCodeError(f"{what} expects real numbers: {exc}") from None
    if np.isnan(arr).any():
        raise InvalidCodeError(f"{what} got NaN in a code vector")
    return arr
