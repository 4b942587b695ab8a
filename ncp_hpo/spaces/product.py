"""Several code spaces searched as one: an architecture code and ordinary parameters.

:class:`ProductSpace` concatenates the codes of its parts (``d = d_1 + d_2 + ...``), so an
objective that calls ``space.suggest(trial)`` and also ``trial.suggest_float("lr", ...)``
is searched as one vector: the predictor sees both, propagation moves both, and the
exact FLOPs of the architecture part stay exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces._base import CodeSpace, as_real_array

if TYPE_CHECKING:
    import torch
    from optuna.distributions import BaseDistribution

__all__ = ["ProductSpace"]


class ProductSpace(CodeSpace):
    """The concatenation of code spaces (``d = sum of the parts' d``).

    Costs (FLOPs, parameters) are those of the one part that has exact FLOPs; at most one
    part may have them. Parameter names must be distinct across the parts.

    Example:
        >>> from optuna.distributions import FloatDistribution
        >>> from ncp_hpo.spaces import NB201Space, ParamSpace
        >>> lr = ParamSpace({"lr": FloatDistribution(1e-3, 1.0, log=True)})
        >>> space = ProductSpace([NB201Space(), lr])
        >>> space.dim
        31
    """

    def __init__(self, parts: Sequence[CodeSpace]) -> None:
        parts = tuple(parts)
        if len(parts) < 2 or not all(isinstance(p, CodeSpace) for p in parts):
            raise ValueError("ProductSpace needs two or more CodeSpace parts")
        seen: set[str] = set()
        for p in parts:
            clash = seen & set(p.optuna_distributions())
            if clash:
                raise ValueError(f"parameters {sorted(clash)} appear in two parts of the space")
            seen |= set(p.optuna_distributions())
        costed = [i for i, p in enumerate(parts) if p.has_exact_flops]
        if len(costed) > 1:
            raise ValueError("at most one part of a ProductSpace may have exact FLOPs")
        self.parts = parts
        self._costed = costed[0] if costed else None
        bounds = np.cumsum([0] + [p.dim for p in parts])
        self._slices = tuple(slice(int(a), int(b)) for a, b in itertools.pairwise(bounds))
        self.names = tuple(n for p in parts for n in p.names)
        self.lower = np.concatenate([p.lower for p in parts]).astype(np.float64)
        self.upper = np.concatenate([p.upper for p in parts]).astype(np.float64)

    def __repr__(self) -> str:
        return f"ProductSpace({list(self.parts)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProductSpace) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def _split(self, codes: np.ndarray) -> list[np.ndarray]:
        return [codes[..., s] for s in self._slices]

    # -- hooks ---------------------------------------------------------------------------
    @property
    def has_exact_flops(self) -> bool:
        return self._costed is not None

    def paper_start(self) -> np.ndarray | None:
        starts = [p.paper_start() for p in self.parts]
        if any(s is None for s in starts):
            return None
        return np.concatenate([np.asarray(s) for s in starts])

    def default_start(self) -> np.ndarray:
        return np.concatenate([np.asarray(p.default_start()) for p in self.parts])

    def grid_step(self) -> np.ndarray:
        return np.concatenate([p.grid_step() for p in self.parts])

    @property
    def round_every(self) -> int | None:
        every = [p.round_every for p in self.parts if p.round_every is not None]
        return min(every) if every else None

    @property
    def input_features(self) -> np.ndarray | None:
        """The parts' input features, each over its own slice of the code."""
        rows = []
        for p, s in zip(self.parts, self._slices, strict=True):
            f = p.input_features
            if f is not None:
                block = np.zeros((f.shape[0], self.dim))
                block[:, s] = f
                rows.append(block)
        return np.concatenate(rows) if rows else None

    @property
    def restricted(self) -> bool:
        return any(p.restricted for p in self.parts)

    def admissible(self, codes: Any) -> np.ndarray:
        arr = np.asarray(codes).reshape(-1, self.dim)
        ok = np.ones(len(arr), dtype=bool)
        for p, c in zip(self.parts, self._split(arr), strict=True):
            ok &= p.admissible(c)
        return ok

    # -- codes ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return np.concatenate([p.sample(n, seed=rng) for p in self.parts], axis=-1)

    def validate(self, code: Any) -> np.ndarray:
        return self._per_part(as_real_array(code, what="validate"), "validate")

    def round(self, x: Any) -> np.ndarray:
        return self._per_part(as_real_array(x), "round")

    def _per_part(self, arr: np.ndarray, method: str) -> np.ndarray:
        """Each part's ``method`` (``validate`` or ``round``) on its slice of ``arr``
        (``d`` or ``n x d``), joined again."""
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.dim:
            raise InvalidCodeError(
                f"{method} expects shape ({self.dim},) or (n, {self.dim}), got {arr.shape}"
            )
        parts = zip(self.parts, self._split(arr), strict=True)
        return np.concatenate([getattr(p, method)(c) for p, c in parts], axis=-1)

    def neighbors(self, code: Any) -> np.ndarray:
        """One move of one part, the other parts unchanged -> ``m x d`` int64."""
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"neighbors takes one code, got shape {v.shape}")
        rows = []
        for p, s in zip(self.parts, self._slices, strict=True):
            moved = p.neighbors(v[s])
            block = np.repeat(v[None, :], len(moved), axis=0)
            block[:, s] = moved
            rows.append(block)
        return np.concatenate(rows)

    # -- costs: those of the part with exact FLOPs ---------------------------------------
    def _cost_part(self) -> tuple[CodeSpace, slice]:
        if self._costed is None:
            raise NotImplementedError("no part of this ProductSpace has closed-form costs")
        return self.parts[self._costed], self._slices[self._costed]

    def flops(self, codes: Any, **kwargs: Any) -> np.ndarray:
        part, s = self._cost_part()
        return part.flops(self.validate(codes)[..., s], **kwargs)

    def params(self, codes: Any, **kwargs: Any) -> np.ndarray:
        part, s = self._cost_part()
        return part.params(self.validate(codes)[..., s], **kwargs)

    def flops_torch(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        part, s = self._cost_part()
        return part.flops_torch(x[..., s], **kwargs)

    # -- Optuna / Ax adapters ------------------------------------------------------------
    def to_params(self, code: Any) -> dict[str, Any]:
        v = self.validate(code)
        out: dict[str, Any] = {}
        for p, c in zip(self.parts, self._split(v), strict=True):
            out.update(p.to_params(c))
        return out

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.concatenate([p.from_params(params) for p in self.parts])

    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {}
        for p in self.parts:
            out.update(p.optuna_distributions())
        return out

    def ax_parameters(self) -> list[Any]:
        return [a for p in self.parts for a in p.ax_parameters()]
