"""Any Optuna search space as an integer code space, so NCP can search it.

:class:`ParamSpace` turns a dict of Optuna distributions (what ``trial.suggest_int``,
``suggest_float`` and ``suggest_categorical`` define, or what Optuna's
``IntersectionSearchSpace`` infers from a study) into fixed-length integer codes, the
format the predictor, propagation and the local moves work on:

- an integer or float parameter is **one dimension**: the index of its value on a grid of
  at most ``levels`` values, evenly spaced in the value (or in its logarithm with
  ``log=True``). Integers and stepped floats keep every value when there are at most
  ``levels`` of them; otherwise (and for continuous floats) the grid has ``levels`` values,
  both bounds included, on the step grid;
- a categorical parameter with ``k`` choices is **k one-hot dimensions**, as in the
  NAS-Bench-201 encoding; rounding takes the arg-max of its slots;
- a parameter with a single possible value takes no dimension; decoding sets it.

A move (:meth:`ParamSpace.neighbors`) changes one parameter: a numeric index by +-1, +-2,
+-4 ... grid steps (below half its grid, so a local walk can cross a fine grid in a few
moves), or a categorical to another choice. Values off the grid (a trial enqueued by hand, or
drawn by another sampler) encode to the nearest grid value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces._base import CodeSpace, as_real_array

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["DEFAULT_LEVELS", "ParamSpace"]

DEFAULT_LEVELS = 64
"""Grid size of a continuous float parameter, and the most values an integer or stepped
parameter keeps (more are thinned to this many, bounds included)."""


@dataclass(frozen=True)
class _Numeric:
    """One int or float parameter: its grid ``values`` (ascending) and code slot."""

    name: str
    values: np.ndarray  # grid values, ascending (int64 for ints, float64 for floats)
    log: bool
    slot: int

    def decode(self, k: int) -> int | float:
        v = self.values[int(k)]
        return int(v) if self.values.dtype.kind == "i" else float(v)

    def encode(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidCodeError(f"parameter {self.name!r} is numeric, got {value!r}")
        x = float(value)
        if not math.isfinite(x):
            raise InvalidCodeError(f"parameter {self.name!r} got {value!r}")
        grid = self.values.astype(np.float64)
        if self.log and x > 0:
            return int(np.argmin(np.abs(np.log(grid) - math.log(x))))
        return int(np.argmin(np.abs(grid - x)))


@dataclass(frozen=True)
class _Choice:
    """One categorical parameter: its choices and first one-hot slot."""

    name: str
    choices: tuple[Any, ...]
    slot: int

    def encode(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if type(c) is type(value) and c == value:
                return i
        raise InvalidCodeError(
            f"parameter {self.name!r} got {value!r}; allowed: {list(self.choices)!r}"
        )


def _grid(dist: BaseDistribution, levels: int) -> tuple[np.ndarray, bool]:
    """The grid of an Int/FloatDistribution (ascending) and whether it is log-spaced."""
    from optuna.distributions import FloatDistribution, IntDistribution

    low, high, log = dist.low, dist.high, dist.log  # type: ignore[attr-defined]
    step = dist.step  # type: ignore[attr-defined]
    if isinstance(dist, IntDistribution):
        n = (high - low) // step + 1
        if n <= levels:
            return low + step * np.arange(n, dtype=np.int64), log
        if log:
            pts = np.unique(np.round(np.geomspace(low, high, levels)).astype(np.int64))
        else:
            pts = low + step * np.unique(np.round(np.linspace(0, n - 1, levels)).astype(np.int64))
        return pts, log
    assert isinstance(dist, FloatDistribution)
    if step is not None:
        n = round((high - low) / step) + 1
        idx = np.arange(n) if n <= levels else np.unique(np.round(np.linspace(0, n - 1, levels)))
        return np.minimum(low + step * idx.astype(np.float64), high), False
    pts = np.geomspace(low, high, levels) if log else np.linspace(low, high, levels)
    pts[0], pts[-1] = low, high  # exact bounds (Optuna checks low <= v <= high)
    return np.clip(pts, low, high), log


class ParamSpace(CodeSpace):
    """A search space of Optuna distributions, encoded as integer codes.

    Args:
        distributions: parameter name -> ``IntDistribution``, ``FloatDistribution`` or
            ``CategoricalDistribution`` (as passed to ``trial.suggest_*``), in code order.
        levels: grid size of continuous floats, and the most values an integer or
            stepped parameter keeps (default :data:`DEFAULT_LEVELS`).

    Example:
        >>> from optuna.distributions import FloatDistribution, IntDistribution
        >>> from optuna.distributions import CategoricalDistribution
        >>> space = ParamSpace({"layers": IntDistribution(1, 4),
        ...                     "lr": FloatDistribution(1e-4, 1e-1, log=True),
        ...                     "act": CategoricalDistribution(["relu", "tanh"])})
        >>> space.dim, space.names
        (4, ('layers', 'lr', 'act=relu', 'act=tanh'))
        >>> space.to_params(space.from_params({"layers": 3, "lr": 0.1, "act": "tanh"}))
        {'layers': 3, 'lr': 0.1, 'act': 'tanh'}
    """

    def __init__(
        self, distributions: Mapping[str, BaseDistribution], *, levels: int = DEFAULT_LEVELS
    ) -> None:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an int >= 2, got {levels!r}")
        if not distributions:
            raise ValueError("ParamSpace needs at least one parameter")
        self._dists = dict(distributions)
        self.levels = levels
        self._numeric: list[_Numeric] = []
        self._choices: list[_Choice] = []
        self._fixed: dict[str, Any] = {}
        names: list[str] = []
        upper: list[float] = []
        for name, dist in self._dists.items():
            if dist.single():
                self._fixed[name] = _single_value(dist)
            elif isinstance(dist, IntDistribution | FloatDistribution):
                values, log = _grid(dist, levels)
                self._numeric.append(_Numeric(name, values, log, len(names)))
                names.append(name)
                upper.append(float(len(values) - 1))
            elif isinstance(dist, CategoricalDistribution):
                self._choices.append(_Choice(name, tuple(dist.choices), len(names)))
                names += [f"{name}={c}" for c in dist.choices]
                upper += [1.0] * len(dist.choices)
            else:
                raise TypeError(
                    f"parameter {name!r} has an unsupported distribution {dist!r}; allowed: "
                    "IntDistribution, FloatDistribution, CategoricalDistribution"
                )
        if not names:
            raise ValueError(f"every parameter of {sorted(self._dists)} has a single value")
        self.names = tuple(names)
        self.lower = np.zeros(len(names), dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self._num_slots = np.array([p.slot for p in self._numeric], dtype=np.int64)
        self._num_sizes = np.array([len(p.values) for p in self._numeric], dtype=np.int64)

    def __repr__(self) -> str:
        return f"ParamSpace({self._dists!r}, levels={self.levels})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ParamSpace)
            and self.levels == other.levels
            and list(self._dists.items()) == list(other._dists.items())
        )

    def __hash__(self) -> int:
        return hash((tuple(self._dists.items()), self.levels))

    # -- hooks ---------------------------------------------------------------------------
    def default_start(self) -> np.ndarray:
        """The middle of every numeric grid and the first choice of every categorical."""
        code = np.zeros(self.dim, dtype=np.int64)
        code[self._num_slots] = (self._num_sizes - 1) // 2
        for c in self._choices:
            code[c.slot] = 1
        return code

    @property
    def round_every(self) -> int | None:
        """One-hot categoricals snap to a choice every 10 iterations (as NAS-Bench-201's
        edges do); purely numeric spaces round only at the end."""
        return 10 if self._choices else None

    @property
    def input_features(self) -> np.ndarray | None:
        """How often each choice is taken among categoricals that share one choice list
        (``f x d``; e.g. operation counts over layers that pick from the same operations),
        or ``None`` where no two categoricals share their choices."""
        groups: dict[tuple[Any, ...], list[_Choice]] = {}
        for c in self._choices:
            groups.setdefault(c.choices, []).append(c)
        rows = []
        for choices, members in groups.items():
            if len(members) < 2:
                continue
            for j in range(len(choices)):
                row = np.zeros(self.dim)
                for m in members:
                    row[m.slot + j] = 1.0
                rows.append(row)
        return np.stack(rows) if rows else None

    # -- codes ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` uniformly random codes (uniform over each grid and each choice list)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        out = np.zeros((int(n), self.dim), dtype=np.int64)
        for p in self._numeric:
            out[:, p.slot] = rng.integers(0, len(p.values), size=int(n))
        for c in self._choices:
            pick = rng.integers(0, len(c.choices), size=int(n))
            out[np.arange(int(n)), c.slot + pick] = 1
        return out

    def validate(self, code: Any) -> np.ndarray:
        """Check code(s) (``d`` or ``n x d``) and return them as int64, same shape.

        Raises:
            InvalidCodeError: naming the parameter: an index off its grid, a non-integer
                value, or a categorical without exactly one slot set.
        """
        arr = as_real_array(code, what="validate")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.dim:
            raise InvalidCodeError(
                f"codes have shape ({self.dim},) or (n, {self.dim}), got {arr.shape}"
            )
        if (arr != np.round(arr)).any():
            bad = int(np.argwhere(arr != np.round(arr))[0][-1])
            raise InvalidCodeError(f"code dimension {self.names[bad]!r} is not an integer")
        v = arr.astype(np.int64)
        rows = v.reshape(-1, self.dim)
        for p in self._numeric:
            col = rows[:, p.slot]
            if ((col < 0) | (col >= len(p.values))).any():
                raise InvalidCodeError(
                    f"parameter {p.name!r}: index {int(col[(col < 0) | (col >= len(p.values))][0])}"
                    f" is off its grid 0..{len(p.values) - 1}"
                )
        for c in self._choices:
            block = rows[:, c.slot : c.slot + len(c.choices)]
            if ((block != 0) & (block != 1)).any() or (block.sum(axis=1) != 1).any():
                raise InvalidCodeError(
                    f"parameter {c.name!r} needs exactly one choice slot set to 1"
                )
        return v

    def round(self, x: Any) -> np.ndarray:
        """Nearest code(s) to real vector(s) ``x`` (``d`` or ``n x d``): each numeric index
        rounded into its grid, each categorical's arg-max slot set."""
        arr = as_real_array(x)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.dim:
            raise InvalidCodeError(
                f"round expects shape ({self.dim},) or (n, {self.dim}), got {arr.shape}"
            )
        rows = arr.reshape(-1, self.dim)
        out = np.zeros_like(rows, dtype=np.int64)
        if len(self._numeric):
            out[:, self._num_slots] = np.clip(
                np.round(rows[:, self._num_slots]), 0, self._num_sizes - 1
            ).astype(np.int64)
        for c in self._choices:
            pick = rows[:, c.slot : c.slot + len(c.choices)].argmax(axis=1)
            out[np.arange(len(rows)), c.slot + pick] = 1
        return out.reshape(arr.shape)

    def neighbors(self, code: Any) -> np.ndarray:
        """Every code one move from ``code`` (``d``): one numeric index moved by +-1, +-2,
        +-4 ... grid steps (below half its grid), or one categorical set to another choice
        -> ``m x d`` int64, distinct codes."""
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"neighbors takes one code, got shape {v.shape}")
        rows = []
        for p in self._numeric:
            for delta in _steps(len(p.values)):
                k = v[p.slot] + delta
                if 0 <= k < len(p.values):
                    moved = v.copy()
                    moved[p.slot] = k
                    rows.append(moved)
        for c in self._choices:
            block = slice(c.slot, c.slot + len(c.choices))
            for j in range(len(c.choices)):
                if v[c.slot + j] != 1:
                    moved = v.copy()
                    moved[block] = 0
                    moved[c.slot + j] = 1
                    rows.append(moved)
        return np.stack(rows) if rows else np.empty((0, self.dim), dtype=np.int64)

    # -- Optuna / Ax adapters ------------------------------------------------------------
    def to_params(self, code: Any) -> dict[str, Any]:
        """One code (``d``) -> ``{name: value}`` for every parameter, in the given order."""
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"to_params takes one code, got shape {v.shape}")
        out: dict[str, Any] = {}
        for p in self._numeric:
            out[p.name] = p.decode(v[p.slot])
        for c in self._choices:
            out[c.name] = c.choices[int(v[c.slot : c.slot + len(c.choices)].argmax())]
        out.update(self._fixed)
        return {n: out[n] for n in self._dists}

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        """``{name: value}`` -> code (``d``); numeric values off the grid take the nearest
        grid value (in log space for log parameters)."""
        missing = [n for n in self._dists if n not in params and n not in self._fixed]
        if missing:
            raise InvalidCodeError(
                f"parameters {missing} are missing; expected {list(self._dists)}"
            )
        code = np.zeros(self.dim, dtype=np.int64)
        for p in self._numeric:
            code[p.slot] = p.encode(params[p.name])
        for c in self._choices:
            code[c.slot + c.encode(params[c.name])] = 1
        return code

    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        """The distributions this space was built from (single-valued ones included)."""
        return dict(self._dists)

    def ax_parameters(self) -> list[Any]:
        """One Ax ``RangeParameterConfig`` per int/float, ``ChoiceParameterConfig`` per
        categorical (fixed parameters become one-value choices)."""
        from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig
        from optuna.distributions import CategoricalDistribution, IntDistribution

        out: list[Any] = []
        for name, d in self._dists.items():
            if isinstance(d, CategoricalDistribution):
                kind = _choice_type(d.choices)
                values: Any = list(d.choices)  # one type, checked by _choice_type
                out.append(ChoiceParameterConfig(name=name, values=values, parameter_type=kind))
            else:
                is_int = isinstance(d, IntDistribution)
                step = d.step if d.step not in (None, 1) or not is_int else None  # type: ignore[attr-defined]
                out.append(
                    RangeParameterConfig(
                        name=name,
                        bounds=(float(d.low), float(d.high)),  # type: ignore[attr-defined]
                        parameter_type="int" if is_int else "float",
                        step_size=None if step is None else float(step),
                        scaling="log" if d.log else "linear",  # type: ignore[attr-defined]
                    )
                )
        return out


def _steps(n: int) -> list[int]:
    """Moves of a numeric index on a grid of ``n`` values: +-1, +-2, +-4 ... below ``n / 2``
    (one step on a short grid; several scales on a long one, so a walk can cross it)."""
    out, k = [], 1
    while k == 1 or k < n / 2:
        out += [-k, k]
        k *= 2
    return out


def _single_value(dist: BaseDistribution) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    return dist.low  # type: ignore[attr-defined]


def _choice_type(choices: tuple[Any, ...]) -> Literal["float", "int", "str", "bool"]:
    """Ax's ``parameter_type`` for a choice list: one of ``"int"``, ``"float"``, ``"str"``,
    ``"bool"``; mixed or other types are refused."""
    kinds = {type(c) for c in choices}
    names: dict[type, Literal["float", "int", "str", "bool"]] = {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
    }
    for t, name in names.items():
        if kinds == {t}:
            return name
    raise TypeError(f"Ax choice parameters take one of bool, int, float, str; got {choices!r}")
