"""The FLOPs side of propagation: the exact term (a compiled polynomial of
``space.flops_torch``), its reference statistics, exact costs of codes, and the
winner-takes-all step that uses the exact FLOPs increments (Eq. 4-6)."""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.exceptions import NCPWarning
from ncp_hpo.propagation._polynomial import CompiledPolynomial, compile_polynomial
from ncp_hpo.spaces import CodeSpace

__all__ = [
    "exact_costs",
    "exact_flops_fn",
    "flops_increments",
    "flops_stats",
    "freeze",
    "wta_step",
]


def exact_costs(
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


def freeze(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(freeze(x) for x in v)
    if isinstance(v, Mapping):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
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
    keyword arguments: compiled once). Falls back to ``space.flops_torch`` itself,
    with an :class:`~ncp_hpo.exceptions.NCPWarning`, when it is not such a polynomial.
    """
    kwargs = dict(flops_kwargs or {})
    try:
        key = freeze(kwargs)
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


def flops_increments(
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


def wta_step(
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


def flops_stats(
    space: CodeSpace,
    flops_fn: Callable[[Tensor], Tensor],
    fkw: Mapping[str, Any],
    reference: Any | None,
) -> tuple[float, float]:
    """Mean and std that standardise the exact FLOPs term: of ``reference`` codes
    (``N x d``), or by default of 4,096 uniform codes of the space (seed 0)."""
    if reference is None:
        mean, std = _reference_stats(space, freeze(fkw))
    else:
        ref = np.asarray(reference, dtype=np.float64)
        with torch.no_grad():
            rf = flops_fn(torch.as_tensor(ref, dtype=torch.float64))
        mean, std = float(rf.mean()), float(rf.std())
    if not std > 0:
        raise ValueError("flops_reference codes all have the same FLOPs; cannot standardise")
    return mean, std
