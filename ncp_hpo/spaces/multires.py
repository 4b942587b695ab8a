"""The multi-resolution search space of NAS-Bench-MR (paper Section 3.2, Eq. 8-9, Table 7).

A network is a 27-integer code::

    i1 i2 | b1 n1_1 c1_1 | b2 n2_1 n2_2 c2_1 c2_2 | b3 n3_1..3 c3_1..3 | b4 n4_1..4 c4_1..4 | o1

``i`` are the two stem convolutions' channels, stage ``s`` has ``s`` branches and ``b_s``
blocks, each branch ``k`` of a block has ``n_s_k`` residual units at ``c_s_k`` channels,
and ``o1`` is the channels of the final 1x1 fusion convolution. ``b`` and ``n`` take
1..4; ``i``, ``c`` and ``o`` take 8..128 in steps of 8.

This module is the only home of the code format: the flat vector, the typed
:class:`NetworkCode`, the upstream string (``'96_128-1_1_1_48-...-64'``) and the upstream
per-block ``network_setting`` expansion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces._base import CodeSpace, as_real_array

if TYPE_CHECKING:
    import torch
    from optuna.distributions import BaseDistribution

    from ncp_hpo.spaces.budget import BudgetedSpace

__all__ = [
    "CHANNEL_STEP",
    "DIM_NAMES",
    "NUM_STAGES",
    "MultiResolutionSpace",
    "NetworkCode",
    "StageCode",
]

NUM_STAGES = 4
CHANNEL_STEP = 8
_COUNT_RANGE = (1, 4)  # b and n
_WIDTH_RANGE = (8, 128)  # i, c and o


def _build_names() -> tuple[str, ...]:
    names = ["i1", "i2"]
    for s in range(1, NUM_STAGES + 1):
        names.append(f"b{s}")
        names += [f"n{s}_{k}" for k in range(1, s + 1)]
        names += [f"c{s}_{k}" for k in range(1, s + 1)]
    names.append("o1")
    return tuple(names)


DIM_NAMES: tuple[str, ...] = _build_names()
"""The 27 dimension names, in code order."""

_IS_WIDTH = np.array([n[0] in "ico" for n in DIM_NAMES])
_LOWER = np.where(_IS_WIDTH, _WIDTH_RANGE[0], _COUNT_RANGE[0]).astype(np.int64)
_UPPER = np.where(_IS_WIDTH, _WIDTH_RANGE[1], _COUNT_RANGE[1]).astype(np.int64)
_STEP = np.where(_IS_WIDTH, CHANNEL_STEP, 1).astype(np.int64)


def _stage_slices() -> list[tuple[int, slice, slice]]:
    """Per stage: index of ``b``, slice of the ``n``s and slice of the ``c``s."""
    out, pos = [], 2
    for s in range(1, NUM_STAGES + 1):
        out.append((pos, slice(pos + 1, pos + 1 + s), slice(pos + 1 + s, pos + 1 + 2 * s)))
        pos += 1 + 2 * s
    return out


STAGE_INDEX = _stage_slices()
"""``[(b index, n slice, c slice)]`` for stages 1..4; the one place code offsets live."""


def _describe(name: str) -> str:
    """Human name of a dimension, e.g. ``c3_2`` -> ``stage3.channels[1]``."""
    if name in ("i1", "i2"):
        return f"stem.channels[{int(name[1]) - 1}]"
    if name == "o1":
        return "head.channels"
    kind, s = name[0], name[1]
    if kind == "b":
        return f"stage{s}.blocks"
    field = "units" if kind == "n" else "channels"
    return f"stage{s}.{field}[{int(name.split('_')[1]) - 1}]"


def _allowed(i: int) -> str:
    lo, hi, st = int(_LOWER[i]), int(_UPPER[i]), int(_STEP[i])
    if st == 1:
        return f"integers {lo}..{hi}"
    return f"multiples of {st} in {lo}..{hi}"


@dataclass(frozen=True)
class StageCode:
    """One stage: ``blocks`` modular blocks of ``len(units)`` parallel branches."""

    blocks: int
    units: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def branches(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class NetworkCode:
    """A validated multi-resolution architecture (architecture as data, as in timm).

    Build one with :meth:`from_vector` or :meth:`from_string`; the constructor validates.
    """

    stem: tuple[int, int]
    stages: tuple[StageCode, ...]
    head_channels: int

    def __post_init__(self) -> None:
        # Validation goes through the flat vector so errors read the same everywhere.
        if len(self.stages) != NUM_STAGES:
            raise InvalidCodeError(f"a NetworkCode has {NUM_STAGES} stages, got {len(self.stages)}")
        for s, st in enumerate(self.stages, start=1):
            if len(st.units) != s or len(st.channels) != s:
                raise InvalidCodeError(
                    f"stage{s} has {s} branches: expected {s} units and {s} channels, "
                    f"got {len(st.units)} and {len(st.channels)}"
                )
        MultiResolutionSpace().validate(self.to_vector())

    @classmethod
    def from_vector(cls, code: Any) -> NetworkCode:
        """From a flat 27-integer code."""
        v = MultiResolutionSpace().validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"expected one code of shape (27,), got shape {v.shape}")
        stages = tuple(
            StageCode(int(v[b]), tuple(int(x) for x in v[ns]), tuple(int(x) for x in v[cs]))
            for b, ns, cs in STAGE_INDEX
        )
        return cls(stem=(int(v[0]), int(v[1])), stages=stages, head_channels=int(v[26]))

    @classmethod
    def from_string(cls, text: str) -> NetworkCode:
        """From the upstream string format."""
        return cls.from_vector(MultiResolutionSpace().decode(text))

    def to_vector(self) -> np.ndarray:
        """The flat code, shape ``27``, int64."""
        out = [*self.stem]
        for st in self.stages:
            out += [st.blocks, *st.units, *st.channels]
        out.append(self.head_channels)
        return np.asarray(out, dtype=np.int64)

    def to_string(self) -> str:
        return MultiResolutionSpace._encode_one(self.to_vector())

    def __str__(self) -> str:
        return self.to_string()


class MultiResolutionSpace(CodeSpace):
    """The 27-dimensional NAS-Bench-MR code space.

    Example:
        >>> space = MultiResolutionSpace()
        >>> code = space.decode("64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-"
        ...                     "2_4_2_2_2_2_64_64_64_64-64")
        >>> space.encode(code)[:12]
        '64_64-2_1_2_'
    """

    names = DIM_NAMES
    lower = _LOWER.astype(np.float64)
    upper = _UPPER.astype(np.float64)
    step = _STEP.astype(np.float64)
    is_width = _IS_WIDTH

    def __repr__(self) -> str:
        return "MultiResolutionSpace()"

    def with_budget(
        self,
        *,
        max_flops: float | None = None,
        max_params: float | None = None,
        input_size: int | tuple[int, int] = 32,
        task: str = "cls",
        num_classes: int = 10,
        **options: Any,
    ) -> BudgetedSpace:
        """This space restricted to codes within a compute budget (see
        :class:`~ncp_hpo.spaces.budget.BudgetedSpace`): at most ``max_flops``
        multiply-accumulates per sample and ``max_params`` parameters, counted exactly at
        ``input_size`` for ``task``'s head with ``num_classes`` outputs."""
        from ncp_hpo.spaces.budget import Budget, BudgetedSpace

        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        budget = Budget(
            max_flops=max_flops,
            max_params=max_params,
            input_size=tuple(size),  # type: ignore[arg-type]
            task=task,
            num_classes=num_classes,
            options=options,
        )
        return BudgetedSpace(self, budget)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiResolutionSpace)

    def __hash__(self) -> int:
        return hash(type(self))

    @property
    def has_exact_flops(self) -> bool:
        return True

    # -- codes --------------------------------------------------------------------------
    def paper_start(self) -> np.ndarray:
        """The paper's initial code ``{b, n = 2; c, i, o = 64}`` (Section 4.1), shape ``27``."""
        return np.where(self.is_width, 64, 2).astype(np.int64)

    def grid_step(self) -> np.ndarray:
        """8 for the channel dimensions, 1 for blocks and units (``27``, float)."""
        return np.asarray(self.step, dtype=np.float64)

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` uniformly random codes, shape ``n x 27`` (int64)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        levels = (_UPPER - _LOWER) // _STEP + 1
        k = rng.integers(0, levels, size=(int(n), len(DIM_NAMES)))
        return (_LOWER + k * _STEP).astype(np.int64)

    def validate(self, code: Any) -> np.ndarray:
        """Check a code (``27`` or ``n x 27``) and return it as int64 of the same shape.

        Accepts sequences, numpy arrays, tensors and :class:`NetworkCode`. Integral floats
        (``64.0``) are accepted; anything else non-integral is refused.

        Raises:
            InvalidCodeError: naming the offending dimension, its value and what is allowed.
        """
        if isinstance(code, NetworkCode):
            return code.to_vector()
        if isinstance(code, str):
            raise InvalidCodeError(
                "got a string; use MultiResolutionSpace().decode(text) for the upstream format"
            )
        try:
            arr = np.asarray(code.detach().cpu().numpy() if hasattr(code, "detach") else code)
        except (TypeError, ValueError) as exc:
            raise InvalidCodeError(f"a code must be an array of 27 integers: {exc}") from None
        if arr.dtype == object or arr.ndim not in (1, 2) or arr.shape[-1] != len(DIM_NAMES):
            raise InvalidCodeError(
                f"a code has shape (27,) or (n, 27); got shape {getattr(arr, 'shape', '?')}"
                f" and dtype {arr.dtype}"
            )
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
        ):
            raise InvalidCodeError(f"a code holds integers, got dtype {arr.dtype}")
        rows = arr.reshape(-1, len(DIM_NAMES))
        if np.issubdtype(arr.dtype, np.floating):
            finite = np.isfinite(rows)
            integral = finite & (rows == np.round(rows))
            if not integral.all():
                r, i = np.argwhere(~integral)[0]
                raise self._error(int(r), int(i), rows[r, i], arr.ndim, "is not an integer")
        if np.issubdtype(arr.dtype, np.floating):
            huge = np.abs(rows) > 2**62
            if huge.any():
                r, i = (int(v) for v in np.argwhere(huge)[0])
                why = (
                    f"is above the maximum {_UPPER[i]}"
                    if rows[r, i] > 0
                    else (f"is below the minimum {_LOWER[i]}")
                )
                raise self._error(r, i, float(rows[r, i]), arr.ndim, why)
        ints = rows.astype(np.int64)
        low, high = ints < _LOWER, ints > _UPPER
        off = (ints - _LOWER) % _STEP != 0
        bad = low | high | off
        if bad.any():
            r, i = (int(x) for x in np.argwhere(bad)[0])
            why = (
                f"is below the minimum {_LOWER[i]}"
                if low[r, i]
                else f"is above the maximum {_UPPER[i]}"
                if high[r, i]
                else f"is not a multiple of {_STEP[i]}"
            )
            raise self._error(r, i, ints[r, i], arr.ndim, why)
        return ints.reshape(arr.shape)

    @staticmethod
    def _error(row: int, i: int, value: Any, ndim: int, why: str) -> InvalidCodeError:
        where = f"code[{row}]" if ndim == 2 else "code"
        val = value.item() if hasattr(value, "item") else value
        return InvalidCodeError(
            f"{where}: {DIM_NAMES[i]} ({_describe(DIM_NAMES[i])}, index {i}) = {val!r} {why}; "
            f"allowed: {_allowed(i)}"
        )

    def round(self, x: Any) -> np.ndarray:
        """Nearest valid code(s) of real vector(s) ``x`` (``27`` or ``n x 27``): clip, then
        snap to the grid (channels to multiples of 8). NaN is refused."""
        arr = as_real_array(x)
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(DIM_NAMES):
            raise InvalidCodeError(f"round expects shape (27,) or (n, 27), got {arr.shape}")
        clipped = np.clip(arr, self.lower, self.upper)
        k = np.floor((clipped - self.lower) / self.step + 0.5)
        return (_LOWER + k.astype(np.int64) * _STEP).astype(np.int64)

    def neighbors(self, code: Any) -> np.ndarray:
        """Codes one step (8 channels, or 1 block/unit) up or down in one dimension, ``m x 27``.

        Moves that leave the bounds are dropped, so ``27 <= m <= 54``.
        """
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"neighbors takes one code, got shape {v.shape}")
        eye = np.diag(_STEP)
        cand = np.concatenate([v + eye, v - eye])
        ok = ((cand >= _LOWER) & (cand <= _UPPER)).all(axis=1)
        return cand[ok]

    # -- string format -----------------------------------------------------------------
    _STRING_RE = re.compile(r"^\d+(_\d+)*(-\d+(_\d+)*)*$")

    def encode(self, code: Any) -> str | list[str]:
        """Code(s) -> upstream string(s) ``'i1_i2-b1_1_n_c-b2_2_n_n_c_c-...-o1'``.

        The number after each ``b_s`` is the stage's branch count ``s``, as upstream writes it.
        """
        arr = self.validate(code)
        if arr.ndim == 2:
            return [self._encode_one(r) for r in arr]
        return self._encode_one(arr)

    @staticmethod
    def _encode_one(v: np.ndarray) -> str:
        parts = [f"{v[0]}_{v[1]}"]
        for s, (b, ns, cs) in enumerate(STAGE_INDEX, start=1):
            parts.append("_".join(str(int(x)) for x in [v[b], s, *v[ns], *v[cs]]))
        parts.append(str(int(v[26])))
        return "-".join(parts)

    def decode(self, text: str) -> np.ndarray:
        """Upstream string -> validated code, shape ``27``.

        Raises:
            InvalidCodeError: on a malformed string (naming the part) or an invalid value.
        """
        if not isinstance(text, str):
            raise InvalidCodeError(f"decode expects a str, got {type(text).__name__}")
        t = text.strip()
        if not self._STRING_RE.match(t):
            raise InvalidCodeError(
                f"malformed code string {text!r}: expected '-'-separated groups of '_'-separated "
                "integers, e.g. '64_64-2_1_2_64-...-64'"
            )
        groups = [[int(x) for x in g.split("_")] for g in t.split("-")]
        too_big = [x for g in groups for x in g if x > 10**6]
        if too_big:
            raise InvalidCodeError(
                f"code string {text!r} holds {too_big[0]}, far outside every dimension's "
                "range (b, n: 1..4; i, c, o: 8..128)"
            )
        if len(groups) != NUM_STAGES + 2:
            raise InvalidCodeError(
                f"code string {text!r} has {len(groups)} '-'-separated groups; expected "
                f"{NUM_STAGES + 2} (stem, 4 stages, head)"
            )
        stem, *stages, head = groups
        if len(stem) != 2:
            raise InvalidCodeError(
                f"stem group {'_'.join(map(str, stem))!r} needs 2 values (i1_i2)"
            )
        if len(head) != 1:
            raise InvalidCodeError(f"head group {'_'.join(map(str, head))!r} needs 1 value (o1)")
        out = list(stem)
        for s, g in enumerate(stages, start=1):
            if len(g) != 2 + 2 * s:
                raise InvalidCodeError(
                    f"stage{s} group {'_'.join(map(str, g))!r} needs {2 + 2 * s} values "
                    f"(b{s}_{s}_n..._c...), got {len(g)}"
                )
            if g[1] != s:
                raise InvalidCodeError(
                    f"stage{s} group {'_'.join(map(str, g))!r}: second value is the branch "
                    f"count and must be {s}, got {g[1]}"
                )
            out += [g[0], *g[2:]]
        out += head
        return self.validate(np.asarray(out, dtype=np.int64))

    # -- upstream per-block expansion ----------------------------------------------------
    def to_network_setting(self, code: Any) -> dict[str, Any]:
        """Code -> upstream ``{'input_channel', 'inverted_residual_setting', 'last_channel'}``.

        ``inverted_residual_setting`` lists every block: ``[branches, [units...], [channels...]]``,
        stage 1's ``b1`` blocks first.
        """
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"to_network_setting takes one code, got shape {v.shape}")
        blocks: list[list[Any]] = []
        for s, (b, ns, cs) in enumerate(STAGE_INDEX, start=1):
            blocks += [[s, [int(x) for x in v[ns]], [int(x) for x in v[cs]]] for _ in range(v[b])]
        return {
            "input_channel": [int(v[0]), int(v[1])],
            "inverted_residual_setting": blocks,
            "last_channel": int(v[26]),
        }

    def from_network_setting(self, setting: Mapping[str, Any]) -> np.ndarray:
        """Upstream ``network_setting`` -> code. Blocks of a stage must be identical."""
        try:
            stem = [int(x) for x in setting["input_channel"]]
            blocks = setting["inverted_residual_setting"]
            head = int(setting["last_channel"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCodeError(f"not a network_setting: {exc!r}") from None
        out = list(stem)
        for s in range(1, NUM_STAGES + 1):
            mine = [blk for blk in blocks if int(blk[0]) == s]
            if not mine:
                raise InvalidCodeError(f"network_setting has no block with {s} branches")
            first = mine[0]
            if any(
                list(blk[1]) != list(first[1]) or list(blk[2]) != list(first[2]) for blk in mine
            ):
                raise InvalidCodeError(f"stage{s} blocks differ; the code space needs equal blocks")
            out += [len(mine), *first[1], *first[2]]
        out.append(head)
        if len(out) != len(DIM_NAMES):
            raise InvalidCodeError(f"network_setting expands to {len(out)} values, expected 27")
        return self.validate(np.asarray(out, dtype=np.int64))

    # -- cost model (closed form lives in spaces/cost.py) --------------------------------
    def flops(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Exact FLOPs (see :func:`ncp_hpo.spaces.cost.flops`)."""
        from ncp_hpo.spaces.cost import flops

        return flops(self.validate(codes), **kwargs)

    def params(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Exact parameter counts (see :func:`ncp_hpo.spaces.cost.params`)."""
        from ncp_hpo.spaces.cost import params

        return params(self.validate(codes), **kwargs)

    def flops_torch(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Differentiable FLOPs of continuous codes, see :func:`ncp_hpo.spaces.cost.flops_torch`."""
        from ncp_hpo.spaces.cost import flops_torch

        return flops_torch(x, **kwargs)

    # -- Optuna / Ax ------------------------------------------------------------------------
    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        from optuna.distributions import IntDistribution

        return {
            n: IntDistribution(int(lo), int(hi), step=int(st))
            for n, lo, hi, st in zip(DIM_NAMES, _LOWER, _UPPER, _STEP, strict=True)
        }

    def to_params(self, code: Any) -> dict[str, int]:
        v = self.validate(code)
        if v.ndim != 1:
            raise InvalidCodeError(f"to_params takes one code, got shape {v.shape}")
        return {n: int(x) for n, x in zip(DIM_NAMES, v, strict=True)}

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        missing = [n for n in DIM_NAMES if n not in params]
        if missing:
            raise InvalidCodeError(f"parameters missing code dimensions: {', '.join(missing)}")
        return self.validate(np.asarray([params[n] for n in DIM_NAMES]))

    def ax_parameters(self) -> list[Any]:
        from ax.api.configs import RangeParameterConfig

        return [
            RangeParameterConfig(
                name=n,
                bounds=(float(lo), float(hi)),
                parameter_type="int",
                step_size=float(st) if st != 1 else None,
            )
            for n, lo, hi, st in zip(DIM_NAMES, _LOWER, _UPPER, _STEP, strict=True)
        ]

    def describe(self, code: Any) -> list[tuple[str, str, int]]:
        """``[(name, meaning, value)]`` rows for printing a code as a named table."""
        v = self.validate(code)
        return [(n, _describe(n), int(x)) for n, x in zip(DIM_NAMES, v, strict=True)]


def as_code_array(codes: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate ``codes`` (one or many) and return an ``n x 27`` int64 array."""
    arr = MultiResolutionSpace().validate(codes)
    return arr.reshape(-1, len(DIM_NAMES))
