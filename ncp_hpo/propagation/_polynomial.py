"""Compile a polynomial cost function into a few tensor operations.

``space.flops_torch`` is exact and differentiable, but it evaluates the network's cost
term by term (hundreds of tiny tensor operations per call, forward and backward), which
would dominate a 70-iteration propagation. The FLOPs of a code are a
polynomial of the code in which every variable has degree at most 2 (channels appear as
``c_in * c_out``, blocks and units multiply them), so they can be recovered *exactly* from
evaluations of the function itself and then evaluated as one matrix product.

No FLOPs formula lives here: :func:`compile_polynomial` treats ``fn`` as a black box.

Method (Newton form of a multivariate polynomial). For a polynomial ``F`` whose degree in
every variable is at most ``D``::

    F(x) = sum_{a in A} c_a prod_i binom(x_i, a_i),   c_a = Delta^a F(0),

where ``Delta^a`` is the mixed forward difference with unit steps and ``A`` is the
down-closed set of exponent vectors ``a`` with ``Delta^a F`` not identically zero. ``A`` is
found breadth-first from ``0``: ``a + e_i`` is in ``A`` iff ``Delta^{a + e_i} F`` is non-zero
at one of two random integer base points. The result is then checked against ``fn`` at
random real points of the box and at random lattice points; if any differs (``fn`` is not
such a polynomial), compilation returns ``None`` and callers use ``fn`` directly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CompiledPolynomial", "compile_polynomial"]

_MAX_DEGREE = 2  # per variable; the evaluation basis is [x, binom(x, 2)]


class CompiledPolynomial:
    """``F(x) = sum_t coef_t prod_{q < K} B(x)[idx_qt]`` with ``B(x) = [x, x(x-1)/2, 1]``.

    Callable on ``batch_shape x d`` tensors, returning ``batch_shape``; differentiable.
    Attributes: ``d``, ``n_terms``, ``exponents`` (``n_terms x d`` int, Newton exponents),
    ``coef`` (``n_terms`` float64).
    """

    def __init__(self, d: int, exponents: np.ndarray, coef: np.ndarray) -> None:
        self.d = d
        self.exponents = exponents
        self.coef = coef
        self.n_terms = len(coef)
        supports = [np.flatnonzero(row) for row in exponents]
        self.k = max([1, *(len(s) for s in supports)])
        # factor q of term t is B[idx[q * T + t]]; B = [x (d), x(x-1)/2 (d), 1]
        idx = np.full(self.k * self.n_terms, 2 * d, dtype=np.int64)
        for t, (row, sup) in enumerate(zip(exponents, supports, strict=True)):
            for q, i in enumerate(sup):
                idx[q * self.n_terms + t] = i if row[i] == 1 else d + i
        self._idx = torch.from_numpy(idx)
        self._coef = torch.from_numpy(np.asarray(coef, dtype=np.float64))
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}

    def _consts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = (self._idx.to(x.device), self._coef.to(x))
        return self._cache[key]

    def __call__(self, x: Tensor) -> Tensor:
        """``batch_shape x d`` -> ``batch_shape`` (float64 keeps integer codes exact)."""
        return self.affine(x)

    def affine(
        self,
        x: Tensor,
        in_scale: Tensor | None = None,
        in_shift: Tensor | None = None,
        out_scale: float = 1.0,
        out_shift: float = 0.0,
    ) -> Tensor:
        """``F(x * in_scale + in_shift) * out_scale + out_shift``, differentiable in ``x``.

        Evaluated in float64 and returned in ``x``'s dtype, as one autograd node with a
        hand-written backward (propagation's hot path: standardised code in, standardised
        FLOPs out).

        Args:
            x: ``batch_shape x d``.
            in_scale, in_shift: ``d`` (default identity).
            out_scale, out_shift: scalars.

        Returns:
            ``batch_shape``.
        """
        idx, coef = self._consts(x.double())
        flat = x.reshape(-1, self.d)
        ones = torch.ones(self.d, dtype=torch.float64, device=x.device)
        zeros = torch.zeros(self.d, dtype=torch.float64, device=x.device)
        out = _PolynomialFn.apply(
            flat,
            idx,
            coef,
            self.k,
            ones if in_scale is None else in_scale.double(),
            zeros if in_shift is None else in_shift.double(),
            float(out_scale),
            float(out_shift),
        )
        return out.reshape(x.shape[:-1])

    def gradient(
        self,
        x: Tensor,
        in_scale: Tensor | None = None,
        in_shift: Tensor | None = None,
        out_scale: float = 1.0,
    ) -> Tensor:
        """``d/dx [F(x * in_scale + in_shift) * out_scale]`` without autograd: ``n x d``.

        Computed in float64, returned in ``x``'s dtype (``x``: ``n x d``).
        """
        idx, coef = self._consts(x.double())
        v = x.double()
        a = torch.ones(self.d, dtype=torch.float64) if in_scale is None else in_scale.double()
        if in_scale is not None:
            v = v * a
        if in_shift is not None:
            v = v + in_shift.double()
        g = _basis_factors(v, idx, self.k)
        scale = (coef * float(out_scale)).expand(v.shape[0], -1)
        return _input_grad(v, g, idx, scale, a).to(x.dtype)

    def increments(self, x: Tensor, step: Tensor) -> Tensor:
        """Exact ``F(x + step_l u_l) - F(x)`` for every dimension ``l`` at once.

        Args:
            x: ``batch_shape x d``.
            step: ``d``, the move of each dimension.

        Returns:
            ``batch_shape x d``. One pass: a dimension occurs in at most one factor of
            each term, so moving it changes that factor only.
        """
        idx, coef = self._consts(x)
        d, t = self.d, self.n_terms
        xs = x + step

        def basis(v: Tensor) -> Tensor:
            return torch.cat([v, v * (v - 1) * 0.5, torch.ones_like(v[..., :1])], dim=-1)

        g = basis(x).index_select(-1, idx)  # batch x (K*T)
        delta = basis(xs).index_select(-1, idx) - g  # zero on the constant slot
        slots = [g[..., q * t : (q + 1) * t] for q in range(self.k)]
        out = torch.zeros(*x.shape[:-1], 2 * d + 1, dtype=x.dtype, device=x.device)
        for q in range(self.k):
            others = coef.expand_as(slots[q])
            for r in range(self.k):
                if r != q:
                    others = others * slots[r]
            out.index_add_(-1, idx[q * t : (q + 1) * t], others * delta[..., q * t : (q + 1) * t])
        return out[..., :d] + out[..., d : 2 * d]

    def __repr__(self) -> str:
        return f"CompiledPolynomial(d={self.d}, terms={self.n_terms}, factors={self.k})"


class _PolynomialFn(torch.autograd.Function):
    """``y = F(x * a + b) * c + e`` for a compiled polynomial; see ``CompiledPolynomial``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        idx: Tensor,
        coef: Tensor,
        k: int,
        a: Tensor,
        b: Tensor,
        c: float,
        e: float,
    ) -> Tensor:
        v = x.double() * a + b  # n x d
        g = _basis_factors(v, idx, k)  # n x K x T
        prod = g[:, 0]
        for q in range(1, k):
            prod = prod * g[:, q]
        y = (prod @ coef) * c + e
        ctx.save_for_backward(v, g, idx, coef, a)
        ctx.c = c
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        v, g, idx, coef, a = ctx.saved_tensors
        scale = (grad_y.double() * ctx.c).unsqueeze(1) * coef  # n x T
        dx = _input_grad(v, g, idx, scale, a)
        return dx.to(grad_y.dtype), None, None, None, None, None, None, None


def _basis_factors(v: Tensor, idx: Tensor, k: int) -> Tensor:
    """``B(v) = [v, v(v-1)/2, 1]`` gathered into the factors of every term: ``n x K x T``."""
    n = v.shape[0]
    basis = torch.cat([v, v * (v - 1) * 0.5, torch.ones(n, 1, dtype=v.dtype)], dim=1)
    # a gather, not a 0/1 selection matmul: CPU float64 GEMM is slow for these shapes
    return basis.index_select(1, idx).view(n, k, -1)


def _input_grad(v: Tensor, g: Tensor, idx: Tensor, scale: Tensor, a: Tensor) -> Tensor:
    """``d/dx`` of ``sum_t scale_t prod_q g_qt`` with ``v = x * a + b``: ``n x d``."""
    n, k, _ = g.shape
    d = v.shape[1]
    if k == 1:
        dg = scale.unsqueeze(1)
    elif k == 2:
        dg = torch.stack([scale * g[:, 1], scale * g[:, 0]], dim=1)
    else:
        parts = []
        for q in range(k):
            other = scale
            for r in range(k):
                if r != q:
                    other = other * g[:, r]
            parts.append(other)
        dg = torch.stack(parts, dim=1)  # n x K x T
    db = torch.zeros(n, 2 * d + 1, dtype=v.dtype).index_add_(1, idx, dg.reshape(n, -1))
    dv = db[:, :d] + db[:, d : 2 * d] * (v - 0.5)  # d/dv of v(v-1)/2 is v - 1/2
    return dv * a


def _mixed_difference_plan(
    cands: Sequence[tuple[int, ...]], d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (``P x d``), owner candidate (``P``) and weight (``P``) of every evaluation
    in ``Delta^b F(x0) = sum_{c <= b} (-1)^{|b - c|} prod_i binom(b_i, c_i) F(x0 + c)``."""
    offs, owners, weights = [], [], []
    for j, b in enumerate(cands):
        nz = [(i, e) for i, e in enumerate(b) if e]
        for cs in itertools.product(*[range(e + 1) for _, e in nz]):
            off = np.zeros(d)
            w = 1
            for (i, e), c in zip(nz, cs, strict=True):
                off[i] = c
                w *= math.comb(e, c) * (-1) ** (e - c)
            offs.append(off)
            owners.append(j)
            weights.append(w)
    return np.stack(offs), np.asarray(owners), np.asarray(weights, dtype=np.float64)


def compile_polynomial(
    fn: Callable[[Tensor], Tensor],
    d: int,
    *,
    lower: Any,
    upper: Any,
    seed: int = 0,
    rtol: float = 1e-9,
    max_terms: int = 20_000,
) -> CompiledPolynomial | None:
    """Recover ``fn`` (``... x d`` float64 -> ``...``) as an exact polynomial, or ``None``.

    Args:
        fn: the function; called only with float64 tensors, batched.
        d: number of variables.
        lower, upper: the box (``d``) used for the verification points.
        seed: seed of the random base and verification points.
        rtol: relative tolerance of the verification.
        max_terms: give up (``None``) beyond this many Newton terms.
    """
    rng = np.random.default_rng(seed)
    bases = rng.integers(3, 20, size=(2, d)).astype(np.float64)

    def call(pts: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float64)))
        return out.detach().cpu().double().numpy()

    exps = _find_exponents(call, bases, d, max_terms)
    if exps is None:
        return None
    poly = _newton_polynomial(call, exps, d)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    real = lo + rng.uniform(size=(64, d)) * (hi - lo)
    lattice = np.round(lo + rng.uniform(size=(64, d)) * (hi - lo))
    pts = np.concatenate([real, lattice])
    want = call(pts)
    with torch.no_grad():
        got = poly(torch.from_numpy(pts)).numpy()
    if not np.allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max() + 1.0)):
        return None
    return poly


def _find_exponents(
    call: Callable[[np.ndarray], np.ndarray], bases: np.ndarray, d: int, max_terms: int
) -> list[tuple[int, ...]] | None:
    """The exponents of the non-zero Newton terms, found degree by degree from the
    mixed differences at two base points (``None`` beyond ``max_terms``), sorted."""
    zero = (0,) * d
    found = {zero}
    frontier = [zero]
    while frontier:
        cands = sorted(
            {
                (*a[:i], a[i] + 1, *a[i + 1 :])
                for a in frontier
                for i in range(d)
                if a[i] < _MAX_DEGREE
            }
            - found
        )
        if not cands:
            break
        offs, owners, weights = _mixed_difference_plan(cands, d)
        diff = np.zeros((len(cands), 2))
        scale = np.zeros((len(cands), 2))
        for k in range(2):
            vals = call(bases[k] + offs)
            np.add.at(diff[:, k], owners, weights * vals)
            np.add.at(scale[:, k], owners, np.abs(weights * vals))
        nonzero = np.abs(diff) > 1e-12 * np.maximum(scale, 1e-300)  # cands x 2 bases
        frontier = [c for j, c in enumerate(cands) if nonzero[j].any()]
        found.update(frontier)
        if len(found) > max_terms:
            return None
    return sorted(found, key=lambda a: (sum(a), a))


def _newton_polynomial(
    call: Callable[[np.ndarray], np.ndarray], exps: list[tuple[int, ...]], d: int
) -> CompiledPolynomial:
    """The polynomial with terms ``exps``: coefficients by finite differences of ``call``
    on the exponent lattice."""
    zero = (0,) * d
    index = {a: j for j, a in enumerate(exps)}
    f_lattice = call(np.asarray(exps, dtype=np.float64))
    coef = np.zeros(len(exps))
    for j, a in enumerate(exps):
        nz = [(i, e) for i, e in enumerate(a) if e]
        s = 0.0
        for cs in itertools.product(*[range(e + 1) for _, e in nz]):
            c = list(zero)
            w = 1
            for (i, e), cc in zip(nz, cs, strict=True):
                c[i] = cc
                w *= math.comb(e, cc) * (-1) ** (e - cc)
            s += w * f_lattice[index[tuple(c)]]
        coef[j] = s
    keep = coef != 0
    if not keep.any():
        keep[0] = True
    return CompiledPolynomial(d, np.asarray(exps, dtype=np.int64)[keep], coef[keep])
