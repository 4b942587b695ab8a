"""The propagation loss (Eq. 3 and 7): forward through the frozen predictors, targets,
the smooth-L1 loss and its closed form for per-iteration targets, and the analytic
input gradient that avoids autograd altogether."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.propagation._polynomial import CompiledPolynomial
from ncp_hpo.propagation._resolved import ResolvedObjective
from ncp_hpo.propagation._types import PropagationConfig

__all__ = ["Frame", "LossModel"]


@dataclass(frozen=True)
class Frame:
    """The propagation frame: ``z = (e - mu) / sigma`` of the first predictor.

    ``mu``, ``sigma``, ``lower``, ``upper``: ``d`` float64 (raw units); ``z_lo``, ``z_hi``:
    the box in ``z``, ``d`` float32.
    """

    mu: Tensor
    sigma: Tensor
    lower: Tensor
    upper: Tensor

    @property
    def z_lo(self) -> Tensor:
        return ((self.lower - self.mu) / self.sigma).float()

    @property
    def z_hi(self) -> Tensor:
        return ((self.upper - self.mu) / self.sigma).float()


def _huber(x: float) -> float:
    return x - 0.5 if x >= 1.0 else 0.5 * x * x


class LossModel:
    """Predictions, targets and loss of one propagation (all ``n`` rows at once).

    Args:
        objs: the resolved objectives (``k``).
        src: the FLOPs source in use (``"exact"``, ``"predictor"`` or ``"none"``).
        frame: the propagation frame.
        flops_fn: exact FLOPs of raw codes (``"exact"`` only).
        fx_mean, fx_std: standardisation of the exact FLOPs term.
        cfg: the options (step, flops_step, lam, target mode, tolerance).
    """

    def __init__(
        self,
        objs: list[ResolvedObjective],
        src: str,
        frame: Frame,
        flops_fn: Callable[[Tensor], Tensor] | None,
        fx_mean: float,
        fx_std: float,
        cfg: PropagationConfig,
    ) -> None:
        self.objs, self.src, self.frame = objs, src, frame
        self.flops_fn, self.fx_mean, self.fx_std = flops_fn, fx_mean, fx_std
        self.mu32, self.sigma32 = frame.mu.float(), frame.sigma.float()
        self.step, self.fstep = cfg.step, cfg.effective_flops_step
        self.lam = cfg.lam
        self.tolerance = cfg.target_tolerance
        self.weights = torch.tensor([o.weight for o in objs])
        self.signs = torch.tensor([o.sign for o in objs])
        self.abs_targets = [o.abs_target for o in objs]
        # rows can only "arrive" at targets that do not move with the prediction
        self.fixed_targets = cfg.target_mode == "fixed" or all(
            a is not None for a in self.abs_targets
        )
        # Per-iteration targets t = p +- step: smooth-L1 (beta 1) at a fixed distance
        # ``step`` has the constant value h(step) and slope min(step, 1), so the loss is
        # that constant plus a linear surrogate with the same gradient (fewer tensor ops).
        self.relative = (
            not cfg.autograd_loss
            and cfg.target_mode == "per_iteration"
            and all(a is None for a in self.abs_targets)
        )
        self.slope_m = -self.signs * min(self.step, 1.0) * self.weights  # k
        self.slope_f = self.lam * min(self.fstep, 1.0) * self.weights  # k
        self.const_m = _huber(self.step) * float(self.weights.sum())
        self.const_f = self.lam * _huber(self.fstep) * float(self.weights.sum())

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Standardised codes ``n x d`` -> standardised metric predictions ``n x k`` and
        FLOPs: ``n x k`` (learned, ``"predictor"``), ``n`` (``"exact"``) or ``None``."""
        outs = []
        src = self.src
        for o in self.objs:
            zt = z if o.same_frame else (z * self.sigma32 + self.mu32 - o.mean) / o.std
            cols = [o.col] if o.flops_col is None or src != "predictor" else [o.col, o.flops_col]
            outs.append(o.predictor.forward_standardized(zt, outputs=cols))  # n x 1|2
        k = len(self.objs)
        if src == "predictor":
            both = outs[0] if len(outs) == 1 else torch.stack(outs, dim=1)  # n x (k x) 2
            return both[..., 0].reshape(-1, k), both[..., 1].reshape(-1, k)
        p = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # n x k
        if src != "exact":
            return p, None
        flops_fn, fr = self.flops_fn, self.frame
        assert flops_fn is not None
        if isinstance(flops_fn, CompiledPolynomial):  # one autograd node
            f = flops_fn.affine(z, fr.sigma, fr.mu, 1.0 / self.fx_std, -self.fx_mean / self.fx_std)
        else:
            f = ((flops_fn(z.double() * fr.sigma + fr.mu) - self.fx_mean) / self.fx_std).float()
        return p, f

    def loss_rows(self, p: Tensor, f: Tensor | None, tp: Tensor, tf: Tensor | None) -> Tensor:
        """Per-row loss ``n`` from predictions and (detached) targets."""
        lm = F.smooth_l1_loss(p, tp, reduction="none")  # n x k
        total = lm
        if f is not None and tf is not None:
            lf = F.smooth_l1_loss(f, tf, reduction="none")
            total = total + self.lam * (lf if lf.ndim == 2 else lf.unsqueeze(1))
        return (total * self.weights).sum(1)

    def make_targets(self, p: Tensor, f: Tensor | None) -> tuple[Tensor, Tensor | None]:
        tp = p.detach() + self.signs * self.step
        for j, a in enumerate(self.abs_targets):
            if a is not None:
                tp[:, j] = a
        tf = None if f is None else f.detach() - self.fstep
        return tp, tf

    def targets_met(self, p: Tensor, f: Tensor | None, tp: Tensor, tf: Tensor | None) -> Tensor:
        met = ((p - tp) * self.signs >= -self.tolerance).all(1)
        if f is not None and tf is not None:
            fm = f <= tf + self.tolerance
            met &= fm.all(1) if fm.ndim == 2 else fm
        return met

    def relative_loss(self, p: Tensor, f: Tensor | None) -> Tensor:
        """Per-row loss ``n`` for per-iteration targets (value and gradient exact)."""
        lin = p @ self.slope_m  # n
        const = self.const_m
        if f is not None:
            lin = lin + (f @ self.slope_f if f.ndim == 2 else f * self.slope_f.sum())
            const += self.const_f
        return (lin - lin.detach()) + const

    def loss_const(self, n: int) -> Tensor:
        """The loss value of every row on the analytic path (``n``)."""
        return torch.full((n,), self.const_m + (self.const_f if self.src != "none" else 0.0))

    def analytic_gradient(self) -> Callable[[Tensor], Tensor] | None:
        """``z -> d loss / dz`` without autograd, where that is possible: per-iteration
        targets, predictors with ``input_gradient_fn`` and (for ``"exact"``) a compiled
        polynomial. The update then needs only a fixed linear combination of output
        gradients, so neither forward values nor a graph are built. Else ``None``."""
        if not self.relative:
            return None
        if not all(hasattr(o.predictor, "input_gradient_fn") for o in self.objs):
            return None
        if self.src == "exact" and not isinstance(self.flops_fn, CompiledPolynomial):
            return None
        return _analytic_gradient(self)


def _gradient_groups(model: LossModel) -> list[tuple[Any, list[int], list[float], Any]]:
    """Objectives sharing a predictor and frame merged: ``(predictor, columns, coefficients,
    objective)`` per group."""
    groups: dict[tuple[int, bool], tuple[Any, list[int], list[float], Any]] = {}
    for t, o in enumerate(model.objs):
        key = (id(o.predictor), o.same_frame)
        _, cols, coefs, _ = groups.setdefault(key, (o.predictor, [], [], o))
        pairs = [(o.col, float(model.slope_m[t]))]
        if model.src == "predictor" and o.flops_col is not None:
            pairs.append((o.flops_col, float(model.slope_f[t])))
        for col, c in pairs:
            if col in cols:
                coefs[cols.index(col)] += c
            else:
                cols.append(col)
                coefs.append(c)
    return list(groups.values())


def _analytic_gradient(model: LossModel) -> Callable[[Tensor], Tensor]:
    """``z`` (``n x d``) -> ``d loss / dz`` for per-iteration targets, without autograd.

    The loss is ``sum_t slope_m[t] p_t + (sum_t slope_f[t] f_t | slope_f.sum() f)`` up to a
    constant (see :meth:`LossModel.relative_loss`); objectives sharing a predictor and
    frame are merged into one call of its ``input_gradient_fn``.
    """
    sigma, mu = model.frame.sigma, model.frame.mu
    sigma32, mu32 = sigma.float(), mu.float()
    fns = []
    for pred, cols, coefs, o in _gradient_groups(model):
        g = pred.input_gradient_fn(cols, coefs)
        # another predictor's frame: z_t = (z * sigma + mu - mean_t) / std_t
        scale = None if o.same_frame else (sigma32 / o.std).float()
        fns.append((g, scale, o))
    flops_fn = model.flops_fn
    poly = flops_fn if model.src == "exact" and isinstance(flops_fn, CompiledPolynomial) else None
    f_coef = float(model.slope_f.sum()) / model.fx_std if poly is not None else 0.0

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
