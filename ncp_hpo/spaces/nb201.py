"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020; NCP paper Appendix C).

A cell is a 4-node DAG; each of its 6 edges carries one of 5 operations. The code is the
30-dim one-hot the NCP paper propagates: edge-major, 5 slots per edge, edges and
operations in the order below (our *canonical* order, the one of the standard arch string)::

    edges (to <- from):  e1_0  e2_0  e2_1  e3_0  e3_1  e3_2
    ops per edge:        none  skip_connect  nor_conv_1x1  nor_conv_3x3  avg_pool_3x3

so slot ``5 * k + j`` is "edge ``k`` uses op ``j``". The standard string lists the same
edges node by node, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1's input, node 2's two
inputs, node 3's three inputs; ``~i`` is the source node).

Optuna/Ax parameters are one categorical per edge, named ``e<to>_<from>`` (``e1_0`` ...
``e3_2``; short, identifier-safe), with the operation names as string choices.

Cost model
----------
:meth:`NB201Space.flops` and :meth:`NB201Space.params` give the exact multiply-accumulates
and parameter count of the NAS-Bench-201 network (C=16, N=5 cells per stage) on a 32x32
input with a 100-class head, which is the network the benchmark file's ``Flops`` and
``Params`` columns were measured on: only ``nor_conv_1x1`` and ``nor_conv_3x3`` edges cost
anything (pooling, skip and none are free in that counter). The formula matches the
file's columns to their printed precision on 15,475 of the 15,625 cells; the other 150
differ by exactly one convolution (an upstream inconsistency, see
:mod:`ncp_hpo.benchmarks._table`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces._base import CodeSpace, as_real_array

if TYPE_CHECKING:
    import torch
    from optuna.distributions import BaseDistribution

__all__ = ["EDGES", "EDGE_NAMES", "NB201_DIM_NAMES", "NUM_CELLS", "OPS", "NB201Space"]

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The 5 operations, in code-slot order (the standard NAS-Bench-201 order)."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The 6 edges as ``(to, from)`` node pairs, in code order (the arch string's order)."""

EDGE_NAMES: tuple[str, ...] = tuple(f"e{t}_{f}" for t, f in EDGES)
"""Parameter name of each edge: ``e<to>_<from>``."""

NB201_DIM_NAMES: tuple[str, ...] = tuple(f"{e}.{op}" for e in EDGE_NAMES for op in OPS)
"""The 30 one-hot dimension names, ``<edge>.<op>``."""

NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)
NUM_CELLS = NUM_OPS**NUM_EDGES  # 15,625

# Exact cost of the benchmark's network (C=16, N=5, 32x32 input, 100 classes): the stem,
# two residual reduction blocks and the classifier, plus per-edge costs for convolutions.
# conv 1x1 on one edge of all 15 cells: 5 * (16*16*32*32 + 32*32*16*16 + 64*64*8*8).
_CONV1_MACS = 5 * 3 * 262_144
_CONV3_MACS = 9 * _CONV1_MACS
_BASE_MACS = 442_368 + 2 * (1_179_648 + 2_359_296 + 131_072) + 64 * 100
_CONV1_PARAMS = 5 * ((16 * 16 + 32) + (32 * 32 + 64) + (64 * 64 + 128))
_CONV3_PARAMS = 5 * ((9 * 16 * 16 + 32) + (9 * 32 * 32 + 64) + (9 * 64 * 64 + 128))
_BASE_PARAMS = (432 + 32) + (4608 + 64 + 9216 + 64 + 512) + (18432 + 128 + 36864 + 128 + 2048)
_BASE_PARAMS += 128 + 64 * 100 + 100
_OP_MACS = np.array([0, 0, _CONV1_MACS, _CONV3_MACS, 0], dtype=np.int64)
_OP_PARAMS = np.array([0, 0, _CONV1_PARAMS, _CONV3_PARAMS, 0], dtype=np.int64)

_GROUP_RE = re.compile(r"^\|(.*)\|$")


DEFAULT_START = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
"""Default NAS-Bench-201 start: the lowest-accuracy cell among the 128 cells with at least
150 MFLOPs (ImageNet16-120 accuracy 32.30 %, 153.28 MFLOPs; 32 % of all cells are below it).
Appendix C starts "from a low-Acc and high-FLOPs starting point" without naming it."""


class NB201Space(CodeSpace):
    """The 30-dim one-hot NAS-Bench-201 cell space (6 edges x 5 operations).

    Codes are int64 0/1 arrays of shape ``30`` or ``n x 30`` with exactly one 1 per edge;
    propagation works in the box ``[0, 1]^30`` and :meth:`round` takes the arg-max per edge.

    Example:
        >>> space = NB201Space()
        >>> code = space.decode("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+"
        ...                     "|skip_connect~0|none~1|skip_connect~2|")
        >>> space.to_params(code)["e3_0"]
        'skip_connect'
        >>> space.encode(code) == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+" \\
        ...     "|skip_connect~0|none~1|skip_connect~2|"
        True
    """

    names = NB201_DIM_NAMES
    lower = np.zeros(len(NB201_DIM_NAMES), dtype=np.float64)
    upper = np.ones(len(NB201_DIM_NAMES), dtype=np.float64)
    ops = OPS
    edges = EDGES
    edge_names = EDGE_NAMES

    def __repr__(self) -> str:
        return "NB201Space()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NB201Space)

    def __hash__(self) -> int:
        return hash(type(self))

    @property
    def has_exact_flops(self) -> bool:
        return True

    # -- op indices <-> one-hot ---------------------------------------------------------
    def default_start(self) -> np.ndarray:
        """:data:`DEFAULT_START`: a low-accuracy, high-FLOPs cell (the paper gives none)."""
        return self.decode(DEFAULT_START)

    @property
    def round_every(self) -> int:
        """One-hot edges: snap to the nearest operation every 10 iterations."""
        return 10

    @property
    def input_features(self) -> np.ndarray:
        """The 5 operation counts of a cell (``5 x 30``: row ``j`` sums slot ``j`` of every
        edge). A small online predictor ranks cells better with them
        (``benchmarks/nb201_encoding.py``)."""
        return np.tile(np.eye(NUM_OPS), NUM_EDGES)

    @staticmethod
    def from_indices(indices: Any) -> np.ndarray:
        """Op indices (``6`` or ``n x 6``, values 0..4 into :data:`OPS`) -> one-hot code(s)."""
        idx = np.asarray(indices)
        if idx.ndim not in (1, 2) or idx.shape[-1] != NUM_EDGES:
            raise InvalidCodeError(f"op indices have shape (6,) or (n, 6), got {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise InvalidCodeError(f"op indices are integers, got dtype {idx.dtype}")
        bad = (idx < 0) | (idx >= NUM_OPS)
        if bad.any():
            pos = tuple(int(x) for x in np.argwhere(bad)[0])
            raise InvalidCodeError(
                f"op index {int(idx[pos])} on edge {EDGE_NAMES[pos[-1]]} is out of range 0..4"
            )
        out = np.zeros((*idx.shape[:-1], NUM_EDGES, NUM_OPS), dtype=np.int64)
        np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
        return out.reshape(*idx.shape[:-1], NUM_EDGES * NUM_OPS)

    def to_indices(self, code: Any) -> np.ndarray:
        """Valid code(s) (``30`` or ``n x 30``) -> op indices (``6`` or ``n x 6``), int64."""
        v = self.validate(code)
        return v.reshape(*v.shape[:-1], NUM_EDGES, NUM_OPS).argmax(-1).astype(np.int64)

    # -- codes --------------------------------------------------------------------------
    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """``n`` uniformly random cells, shape ``n x 30`` (int64 one-hot)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return self.from_indices(rng.integers(0, NUM_OPS, size=(int(n), NUM_EDGES)))

    def neighbors(self, code: Any) -> np.ndarray:
        """The 24 cells that differ from ``code`` (``30``) in the op of exactly one edge."""
        idx = self.to_indices(code)
        if idx.ndim != 1:
            raise InvalidCodeError(f"neighbors takes one code, got shape {idx.shape}")
        # edge by edge, operation by operation: every edge of the cell, set to every op
        moved = np.broadcast_to(idx, (NUM_EDGES, NUM_OPS, NUM_EDGES)).copy()
        edges = np.arange(NUM_EDGES)
        moved[edges, :, edges] = np.arange(NUM_OPS)
        keep = np.arange(NUM_OPS)[None, :] != idx[:, None]  # not the edge's own op
        return self.from_indices(moved[keep])

    def enumerate_all(self) -> np.ndarray:
        """All 15,625 cells, shape ``15625 x 30``, edge ``e1_0`` varying slowest."""
        idx = np.array(list(itertools.product(range(NUM_OPS), repeat=NUM_EDGES)), dtype=np.int64)
        return self.from_indices(idx)

    def validate(self, code: Any) -> np.ndarray:
        """Check one-hot code(s) (``30`` or ``n x 30``); return them as int64, same shape.

        Integral floats and booleans are accepted. Strings are refused (use :meth:`decode`).

        Raises:
            InvalidCodeError: naming the edge and what is wrong (a value not 0/1, no op
                selected, several ops selected).
        """
        if isinstance(code, str):
            raise InvalidCodeError(
                "got a string; use NB201Space().decode(text) for the '|op~0|+...' format"
            )
        try:
            arr = np.asarray(code.detach().cpu().numpy() if hasattr(code, "detach") else code)
        except (TypeError, ValueError) as exc:
            raise InvalidCodeError(f"an NB201 code must be an array of 30 values: {exc}") from None
        dim = NUM_EDGES * NUM_OPS
        if arr.dtype == object or arr.ndim not in (1, 2) or arr.shape[-1] != dim:
            raise InvalidCodeError(
                f"an NB201 code has shape (30,) or (n, 30); got shape {arr.shape} "
                f"and dtype {arr.dtype}"
            )
        if not (
            arr.dtype == np.bool_
            or np.issubdtype(arr.dtype, np.integer)
            or np.issubdtype(arr.dtype, np.floating)
        ):
            raise InvalidCodeError(f"an NB201 code holds 0/1 values, got dtype {arr.dtype}")
        rows = arr.reshape(-1, NUM_EDGES, NUM_OPS)
        where = (lambda r: f"code[{r}]") if arr.ndim == 2 else (lambda r: "code")
        binary = (rows == 0) | (rows == 1)
        if not binary.all():
            r, e, o = (int(x) for x in np.argwhere(~binary)[0])
            val = rows[r, e, o].item()
            raise InvalidCodeError(
                f"{where(r)}: edge {EDGE_NAMES[e]} slot {OPS[o]} (index {5 * e + o}) = {val!r} "
                "is not 0 or 1; use round() for real-valued vectors"
            )
        ints = rows.astype(np.int64)
        counts = ints.sum(-1)
        bad = counts != 1
        if bad.any():
            r, e = (int(x) for x in np.argwhere(bad)[0])
            if counts[r, e] == 0:
                why = "has no op selected (all 5 slots are 0)"
            else:
                chosen = ", ".join(OPS[o] for o in np.flatnonzero(ints[r, e]))
                why = f"has {int(counts[r, e])} ops selected ({chosen})"
            raise InvalidCodeError(
                f"{where(r)}: edge {EDGE_NAMES[e]} (node {EDGES[e][0]} <- node {EDGES[e][1]}) "
                f"{why}; exactly one of {', '.join(OPS)} is required"
            )
        return ints.reshape(arr.shape)

    def round(self, x: Any) -> np.ndarray:
        """Nearest cell(s) to real vector(s) ``x`` (``30`` or ``n x 30``): the arg-max op of
        each edge (ties go to the earlier op). NaN is refused. Returns int64 one-hot."""
        arr = as_real_array(x)
        dim = NUM_EDGES * NUM_OPS
        if arr.ndim not in (1, 2) or arr.shape[-1] != dim:
            raise InvalidCodeError(f"round expects shape (30,) or (n, 30), got {arr.shape}")
        idx = arr.reshape(*arr.shape[:-1], NUM_EDGES, NUM_OPS).argmax(-1)
        return self.from_indices(idx)

    # -- arch string -----------------------------------------------------------------------
    def encode(self, code: Any) -> str | list[str]:
        """Code(s) -> standard arch string(s) ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        idx = self.to_indices(code)
        if idx.ndim == 2:
            return [self._encode_one(r) for r in idx]
        return self._encode_one(idx)

    @staticmethod
    def _encode_one(idx: np.ndarray) -> str:
        groups: list[list[str]] = [[] for _ in range(3)]
        for (to, frm), k in zip(EDGES, idx, strict=True):
            groups[to - 1].append(f"{OPS[int(k)]}~{frm}")
        return "+".join("|" + "|".join(g) + "|" for g in groups)

    def decode(self, text: str) -> np.ndarray:
        """Standard arch string -> one-hot code, shape ``30``.

        Raises:
            InvalidCodeError: naming the malformed part (group count, edge count, source
                node, unknown operation).
        """
        if not isinstance(text, str):
            raise InvalidCodeError(f"decode expects a str, got {type(text).__name__}")
        parts = text.strip().split("+")
        if len(parts) != 3:
            raise InvalidCodeError(
                f"arch string {text!r} has {len(parts)} '+'-separated node groups; expected 3 "
                "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
            )
        idx: list[int] = []
        for node, part in enumerate(parts, start=1):
            m = _GROUP_RE.match(part)
            if not m:
                raise InvalidCodeError(
                    f"node {node} group {part!r} must look like |op~i|...| in {text!r}"
                )
            tokens = m.group(1).split("|")
            if len(tokens) != node:
                raise InvalidCodeError(
                    f"node {node} group {part!r} needs {node} inputs, got {len(tokens)}"
                )
            for src, tok in enumerate(tokens):
                op, sep, frm = tok.partition("~")
                if not sep or frm != str(src):
                    raise InvalidCodeError(
                        f"node {node} input {tok!r} must be 'op~{src}' (inputs in source order)"
                    )
                if op not in OPS:
                    raise InvalidCodeError(
                        f"unknown operation {op!r} on edge e{node}_{src}; allowed: {', '.join(OPS)}"
                    )
                idx.append(OPS.index(op))
        return self.from_indices(np.asarray(idx, dtype=np.int64))

    # -- cost model ------------------------------------------------------------------------
    def flops(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Multiply-accumulates of the benchmark's network for code(s); int64, shape ``()``
        or ``n``. Divide by 1e6 for the file's ``Flops`` (M) column."""
        _no_options(kwargs)
        return _BASE_MACS + _OP_MACS[self.to_indices(codes)].sum(-1)

    def params(self, codes: Any, **kwargs: Any) -> np.ndarray:
        """Parameter count of the benchmark's network for code(s); int64, shape ``()`` or
        ``n``. Divide by 1e6 for the file's ``Params`` (M) column."""
        _no_options(kwargs)
        return _BASE_PARAMS + _OP_PARAMS[self.to_indices(codes)].sum(-1)

    def flops_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable multiply-accumulates of real-valued codes ``x`` (``... x 30``):
        the base cost plus each slot's weight times its op's cost (linear in ``x``)."""
        import torch

        w = torch.as_tensor(np.tile(_OP_MACS, NUM_EDGES), dtype=x.dtype, device=x.device)
        return _BASE_MACS + x @ w

    # -- Optuna / Ax ------------------------------------------------------------------------
    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        from optuna.distributions import CategoricalDistribution

        return {e: CategoricalDistribution(OPS) for e in EDGE_NAMES}

    def to_params(self, code: Any) -> dict[str, str]:
        """One code -> ``{"e1_0": "nor_conv_3x3", ...}`` (native ``str`` values)."""
        idx = self.to_indices(code)
        if idx.ndim != 1:
            raise InvalidCodeError(f"to_params takes one code, got shape {idx.shape[:-1]} x 30")
        return {e: OPS[int(k)] for e, k in zip(EDGE_NAMES, idx, strict=True)}

    def from_params(self, params: Mapping[str, Any]) -> np.ndarray:
        """``{"e1_0": op, ...}`` -> validated code, shape ``30``."""
        missing = [e for e in EDGE_NAMES if e not in params]
        if missing:
            raise InvalidCodeError(f"parameters missing NB201 edges: {', '.join(missing)}")
        idx = []
        for e in EDGE_NAMES:
            op = params[e]
            if op not in OPS:
                raise InvalidCodeError(
                    f"edge {e} = {op!r} is not an operation; allowed: {', '.join(OPS)}"
                )
            idx.append(OPS.index(op))
        return self.from_indices(np.asarray(idx, dtype=np.int64))

    def ax_parameters(self) -> list[Any]:
        from ax.api.configs import ChoiceParameterConfig

        return [
            ChoiceParameterConfig(name=e, values=list(OPS), parameter_type="str", is_ordered=False)
            for e in EDGE_NAMES
        ]

    def describe(self, code: Any) -> list[tuple[str, str, str]]:
        """``[(edge, "node t <- node f", op)]`` rows for printing a cell."""
        params = self.to_params(code)
        return [
            (e, f"node {t} <- node {f}", params[e])
            for e, (t, f) in zip(EDGE_NAMES, EDGES, strict=True)
        ]


def as_nb201_array(codes: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate ``codes`` (one or many) and return an ``n x 30`` int64 array."""
    return NB201Space().validate(codes).reshape(-1, NUM_EDGES * NUM_OPS)


def _no_options(kwargs: dict[str, Any]) -> None:
    """The NAS-Bench-201 network is fixed: cost options of other spaces do not apply."""
    if kwargs:
        raise TypeError(f"NB201Space costs take no options, got {sorted(kwargs)}")
