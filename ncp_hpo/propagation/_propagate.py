"""The propagation loop (Algorithm 1); the algorithm is described in :mod:`ncp_hpo.propagation`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.predictor import as_code_batch, torch_threads
from ncp_hpo.propagation._flops import (
    exact_costs,
    exact_flops_fn,
    flops_increments,
    flops_stats,
    wta_step,
)
from ncp_hpo.propagation._loss import Frame, LossModel
from ncp_hpo.propagation._resolved import (
    ResolvedObjective,
    check_initial,
    fixed_mask,
    normalise_objectives,
    predict_rounded,
    resolve,
)
from ncp_hpo.propagation._types import (
    LAM_DEFAULT,
    Callback,
    FlopsSource,
    PropagationConfig,
    PropagationResult,
    Strategy,
    Trajectory,
    renamed_flops_weight,
)
from ncp_hpo.spaces import CodeSpace

__all__ = ["paper_start", "propagate", "transfer"]


def paper_start(space: CodeSpace) -> np.ndarray:
    """The paper's initial code ``{b, n = 2; c, i, o = 64}`` (Section 4.1), shape ``d``.

    Only defined for spaces the paper gives a start for (:meth:`CodeSpace.paper_start`).
    """
    start = space.paper_start()
    if start is None:
        raise ValueError(
            f"{type(space).__name__} has no paper start code; pass `initial` explicitly"
        )
    return start


def propagate(
    objectives: Any,
    space: CodeSpace,
    initial: Any | None = None,
    *,
    strategy: Strategy = "continuous",
    iterations: int = 70,
    lr: float = 3.0,
    lam: float = LAM_DEFAULT,
    step: float = 1.0,
    flops_step: float | None = None,
    target_mode: Literal["per_iteration", "fixed"] = "per_iteration",
    stop_at_target: bool = True,
    target_tolerance: float = 1e-3,
    flops_source: FlopsSource = "auto",
    flops_metric: str = "flops",
    flops_kwargs: Mapping[str, Any] | None = None,
    flops_reference: Any | None = None,
    round_every: int | Literal["auto"] | None = "auto",
    fixed_features: Mapping[int | str, float] | None = None,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    timeout_sec: float | None = None,
    record_trajectory: bool = True,
    n_threads: int | None = 1,
    config: PropagationConfig | None = None,
    flops_weight: float | None = None,
) -> PropagationResult:
    """Propagate ``n`` architecture codes through frozen predictors (Algorithm 1).

    Args:
        objectives: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (its main metric,
            maximised), an :class:`Objective`, a ``(predictor, weight[, metric])`` tuple, or
            a list of those for multi-task propagation (Eq. 7).
        space: the code space (bounds, rounding, exact FLOPs).
        initial: starting codes, ``d`` or ``n x d`` within the space's bounds (need not be
            on the grid for ``"continuous"``); default :func:`paper_start`.
        **options: the fields of :class:`PropagationConfig`, documented there
            (``strategy``, ``iterations``, ``lr``, ``lam``, ``step``, ...); ``lam`` is the
            FLOPs penalty, ``lambda`` of Eq. 3 (0.5).
        config: all of the above as one :class:`PropagationConfig` (then leave the other
            keyword arguments at their defaults).
        flops_weight: deprecated old name of ``lam`` (a :class:`FutureWarning`;
            ``TypeError`` together with ``lam``).

    Returns:
        :class:`PropagationResult`; ``codes`` is ``n x d`` even for a single ``d`` start.

    Example:
        >>> from ncp_hpo.spaces import MultiResolutionSpace
        >>> space = MultiResolutionSpace()
        >>> # predictor = NeuralPredictor().fit(codes, {"mIoU": ..., "flops": ...})
        >>> # res = propagate(predictor, space)                 # paper defaults
        >>> # res.codes[0], res.metrics[0], res.flops[0]
        >>> # multi-task: propagate([(cls_pred, 1.0, "top1"), (seg_pred, 1.0, "mIoU")], space)
    """
    if config is None:
        options = {k: v for k, v in locals().items() if k not in _POSITIONAL}
        old = options.pop("flops_weight")
        options["lam"] = renamed_flops_weight(lam, old, "propagate", stacklevel=3)
        config = PropagationConfig(**options)
    else:
        _check_no_options(locals())
    with torch_threads(config.n_threads):
        return _propagate(objectives, space, initial, config)


_POSITIONAL = ("objectives", "space", "initial", "config")


def _check_no_options(given: dict[str, Any]) -> None:
    """``config=`` excludes the option keywords: refuse any that differs from its default."""
    import inspect

    def same(v: Any, default: Any) -> bool:
        if v is default:
            return True
        return (
            isinstance(default, bool | int | float | str)
            and type(v) is (float if isinstance(default, float) else type(default))
            and v == default
        )

    params = inspect.signature(propagate).parameters
    changed = [
        name
        for name, p in params.items()
        if p.kind is p.KEYWORD_ONLY and name != "config" and not same(given[name], p.default)
    ]
    if changed:
        raise TypeError(
            "pass options either as keywords or in config, not both; got config and "
            f"{', '.join(changed)}"
        )


@dataclass
class _Setup:
    """Everything the loop needs, resolved from the arguments (internal)."""

    cfg: PropagationConfig
    space: CodeSpace
    objs: list[ResolvedObjective]
    src: str
    every: int | None
    frame: Frame
    model: LossModel
    flops_fn: Callable[[Tensor], Tensor] | None
    fkw: dict[str, Any]
    e0: Tensor  # n x d float64, raw units
    free: Tensor  # d bool


def _check_strategy(cfg: PropagationConfig, space: CodeSpace, every: int | None) -> None:
    if cfg.strategy == "winner_takes_all" and every is not None:
        raise ValueError(
            "winner_takes_all moves one dimension by its grid step; it does not apply to "
            f"one-hot codes ({type(space).__name__}, round_every={every}); use 'continuous'"
        )
    if cfg.strategy == "winner_takes_all" and not space.has_exact_flops:
        raise ValueError(
            "winner_takes_all needs exact FLOPs (Eq. 4's lookup table); "
            f"{type(space).__name__} has none"
        )


def _setup(objectives: Any, space: CodeSpace, initial: Any, cfg: PropagationConfig) -> _Setup:
    """Resolve objectives, FLOPs source, rounding cadence, frame, start codes and loss."""
    objs_in = normalise_objectives(objectives)
    d = space.dim
    fkw = dict(cfg.flops_kwargs or {})
    src = cfg.flops_source_for(space.has_exact_flops)
    if src == "exact" and not space.has_exact_flops:
        raise ValueError(f"flops_source='exact' needs a space with exact FLOPs; {space!r} has none")
    objs = resolve(objs_in, d, cfg.flops_metric, need_flops_head=src == "predictor")
    every = cfg.rounding_cadence(space.round_every)
    _check_strategy(cfg, space, every)
    # frames: propagation runs on z = (e - mu) / sigma of the first predictor
    frame = Frame(
        mu=objs[0].mean.double(),
        sigma=objs[0].std.double(),
        lower=torch.as_tensor(space.lower, dtype=torch.float64),
        upper=torch.as_tensor(space.upper, dtype=torch.float64),
    )
    e0, _ = as_code_batch(
        paper_start(space) if initial is None else initial, d, name="initial", dtype=torch.float64
    )
    free, fixed_vals = fixed_mask(cfg.fixed_features, space.names, d)
    e0 = torch.where(free, e0, fixed_vals)
    check_initial(e0, frame.lower, frame.upper, space.names)
    if cfg.strategy == "winner_takes_all":
        e0 = torch.as_tensor(space.round(e0.numpy()), dtype=torch.float64)
    # exact FLOPs: compiled polynomial of space.flops_torch, standardised
    flops_fn = exact_flops_fn(space, fkw) if space.has_exact_flops else None
    fx_mean = fx_std = 0.0
    if src == "exact":
        assert flops_fn is not None
        fx_mean, fx_std = flops_stats(space, flops_fn, fkw, cfg.flops_reference)
    model = LossModel(objs, src, frame, flops_fn, fx_mean, fx_std, cfg)
    return _Setup(cfg, space, objs, src, every, frame, model, flops_fn, fkw, e0, free)


@dataclass
class _Run:
    """The loop's outcome: continuous codes of every iteration, losses, active rows."""

    zs: list[Tensor]
    losses: list[Tensor]
    active: Tensor
    n_updates: int


class _Loop:
    """Algorithm 1's loop over all ``n`` rows at once (one instance per call)."""

    def __init__(self, s: _Setup) -> None:
        self.s, cfg = s, s.cfg
        n = s.e0.shape[0]
        self.z_lo, self.z_hi = s.frame.z_lo, s.frame.z_hi
        z = ((s.e0 - s.frame.mu) / s.frame.sigma).float()
        self.z = torch.minimum(torch.maximum(z, self.z_lo), self.z_hi)
        self.free32 = s.free.float()
        self.has_fixed = not bool(s.free.all())
        self.active = torch.ones(n, dtype=torch.bool)
        self.some_frozen = False  # == not active.all(), tracked where active changes
        self.grad_fn = s.model.analytic_gradient()
        self.loss_const = s.model.loss_const(n)
        self.tp0: Tensor | None = None
        self.tf0: Tensor | None = None
        if cfg.target_mode == "fixed":
            with torch.no_grad():
                p0, f0 = s.model.forward(self.z)
            self.tp0, self.tf0 = s.model.make_targets(p0, f0)
        self.opt: torch.optim.Optimizer | None = None
        self.zp: Tensor | None = None
        if cfg.optimizer is not None and cfg.strategy == "continuous":
            self.zp = self.z.clone().requires_grad_(True)
            self.opt = cfg.optimizer([self.zp], lr=cfg.lr, **dict(cfg.optimizer_options or {}))
        self.kstep = torch.as_tensor(s.space.grid_step(), dtype=torch.float64)  # d
        self.increments = (
            flops_increments(s.flops_fn, self.kstep)
            if cfg.strategy == "winner_takes_all" and s.flops_fn is not None
            else None
        )
        self.e_cur = s.e0.clone()  # winner-takes-all state (raw units, on the grid)

    def gradient(self) -> tuple[Tensor, Tensor]:
        """``(loss, grad)`` at the current code: ``n`` and ``n x d`` (standardised)."""
        if self.grad_fn is not None:
            return self.loss_const, self.grad_fn(self.z)
        m = self.s.model
        zg = self.z.clone().requires_grad_(True)
        p, f = m.forward(zg)
        if m.relative:
            loss = m.relative_loss(p, f)
        else:
            tp, tf = (self.tp0, self.tf0) if self.tp0 is not None else m.make_targets(p, f)
            if m.fixed_targets and self.s.cfg.stop_at_target:
                self.active &= ~m.targets_met(p.detach(), None if f is None else f.detach(), tp, tf)
                self.some_frozen = not bool(self.active.all())
            loss = m.loss_rows(p, f, tp, tf)
        (grad,) = torch.autograd.grad(loss.sum(), zg)
        return loss, grad

    def continuous_step(self, grad: Tensor, it: int) -> None:
        """Projected gradient step on ``z``, then the periodic rounding."""
        z, zp, fr = self.z, self.zp, self.s.frame
        if self.opt is not None and zp is not None:
            zp.grad = grad
            self.opt.step()
            with torch.no_grad():
                # projection, under no_grad like the optimizer's own update
                zp.copy_(torch.where(self.active.unsqueeze(1), zp.clamp(self.z_lo, self.z_hi), z))
            z = zp.detach().clone()
        else:
            z = torch.minimum(torch.maximum(z - self.s.cfg.lr * grad, self.z_lo), self.z_hi)
        every = self.s.every
        if every is not None and it % every == 0:
            e_r = torch.as_tensor(self.s.space.round((z.double() * fr.sigma + fr.mu).numpy()))
            z = ((e_r.double() - fr.mu) / fr.sigma).float()
            if zp is not None:
                with torch.no_grad():
                    zp.copy_(z)
        self.z = z

    def wta_step(self, grad: Tensor) -> None:
        """One winner-takes-all move per row (Eq. 4-6)."""
        fr = self.s.frame
        assert self.increments is not None
        moved = wta_step(
            self.e_cur,
            grad.double() / fr.sigma,
            self.kstep,
            fr.lower,
            fr.upper,
            self.s.free,
            self.active,
            self.increments,
        )
        self.active &= moved
        self.some_frozen = not bool(self.active.all())
        self.z = ((self.e_cur - fr.mu) / fr.sigma).float()

    def run(self, t_start: float) -> _Run:
        cfg = self.s.cfg
        zs, losses, n_updates = [self.z], [], 0
        for it in range(1, cfg.iterations + 1):
            if cfg.timeout_sec is not None and time.perf_counter() - t_start > cfg.timeout_sec:
                break
            loss, grad = self.gradient()
            if self.has_fixed:
                grad = grad * self.free32
            if self.some_frozen:
                grad = grad * self.active.unsqueeze(1)
            if cfg.callback is not None and cfg.callback(it, loss.detach(), grad):
                break
            losses.append(loss.detach())
            if cfg.strategy == "continuous":
                self.continuous_step(grad, it)
            else:
                self.wta_step(grad)
            n_updates = it
            zs.append(self.z)
            if self.some_frozen and not bool(self.active.any()):
                break
        return _Run(zs, losses, self.active, n_updates)


def _propagate(
    objectives: Any, space: CodeSpace, initial: Any | None, cfg: PropagationConfig
) -> PropagationResult:
    """The body of :func:`propagate` (thread count already set)."""
    t_start = time.perf_counter()
    s = _setup(objectives, space, initial, cfg)
    run = _Loop(s).run(t_start)
    return _result(s, run, t_start)


def _result(s: _Setup, run: _Run, t_start: float) -> PropagationResult:
    """Round, predict and cost the codes of every iteration in one batch."""
    cfg, space, fr = s.cfg, s.space, s.frame
    n, d = s.e0.shape[0], space.dim
    if cfg.record_trajectory:
        cont = (torch.stack(run.zs).double() * fr.sigma + fr.mu).numpy()  # T+1 x n x d
    else:
        cont = (run.zs[-1].double() * fr.sigma + fr.mu).numpy()[None]  # 1 x n x d
    t1 = cont.shape[0]
    rounded_all = space.round(cont.reshape(-1, d)).reshape(t1, n, d)
    m_all, fp_all, fl_all = _evaluate_rounded(
        s.objs, space, rounded_all, s.src == "predictor", s.fkw
    )
    final = rounded_all[-1]
    _, params = exact_costs(space, final, s.fkw, with_flops=False)
    trajectory = None
    if cfg.record_trajectory:
        trajectory = Trajectory(
            continuous=cont,
            rounded=rounded_all,
            metrics=m_all,
            flops_pred=fp_all,
            flops=fl_all,
            loss=(torch.stack(run.losses).double().numpy() if run.losses else np.empty((0, n))),
        )
    return PropagationResult(
        codes=np.asarray(final, dtype=np.int64),
        initial_codes=s.e0.numpy(),
        objective_names=[o.name for o in s.objs],
        metrics=m_all[-1],
        flops_pred=None if fp_all is None else fp_all[-1],
        flops=None if fl_all is None else fl_all[-1],
        params=params,
        stopped=(~run.active).numpy(),
        iterations=run.n_updates,
        elapsed=time.perf_counter() - t_start,
        trajectory=trajectory,
        settings=_settings(s),
    )


def _settings(s: _Setup) -> dict[str, Any]:
    """The JSON-able arguments of the call (provenance)."""
    cfg = s.cfg
    return {
        "strategy": cfg.strategy,
        "iterations": cfg.iterations,
        "lr": cfg.lr,
        "lam": cfg.lam,
        "step": cfg.step,
        "flops_step": cfg.effective_flops_step,
        "target_mode": cfg.target_mode,
        "target_tolerance": cfg.target_tolerance,
        "flops_source": s.src,
        "flops_kwargs": {key: _jsonable(v) for key, v in s.fkw.items()},
        "round_every": s.every,
        "weights": [o.weight for o in s.objs],
        "maximize": [o.sign > 0 for o in s.objs],
        "optimizer": None
        if cfg.optimizer is None
        else getattr(cfg.optimizer, "__name__", repr(cfg.optimizer)),
    }


def _evaluate_rounded(
    objs: list[ResolvedObjective],
    space: CodeSpace,
    rounded: np.ndarray,
    with_flops_pred: bool,
    fkw: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Predicted metrics (``T x n x k``), learned FLOPs (``T x n x k`` or ``None``) and exact
    FLOPs (``T x n`` or ``None``) of the rounded codes ``T x n x d``.

    Only codes that differ from the previous iteration's are evaluated (trajectories
    repeat codes a lot); the rest are carried forward.
    """
    t1, n, d = rounded.shape
    changed = np.ones((t1, n), dtype=bool)
    changed[1:] = (rounded[1:] != rounded[:-1]).any(-1)
    flat_idx = np.flatnonzero(changed.reshape(-1))
    codes = rounded.reshape(-1, d)[flat_idx]
    # position of the last change at or before each (t, i), as an index into flat_idx
    last = np.where(changed, np.arange(t1)[:, None], 0)
    last = np.maximum.accumulate(last, axis=0)  # t of the last change
    pos = np.searchsorted(flat_idx, last * n + np.arange(n)[None, :])
    with torch.no_grad():
        m, fp = predict_rounded(objs, codes, with_flops_pred)
    fl, _ = exact_costs(space, codes, fkw, with_params=False)
    k = len(objs)
    return (
        m[pos].reshape(t1, n, k),
        None if fp is None else fp[pos].reshape(t1, n, k),
        None if fl is None else fl[pos].reshape(t1, n),
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def transfer(
    source: PropagationResult | Any,
    objectives: Any,
    space: CodeSpace,
    *,
    row: int | None = None,
    **kwargs: Any,
) -> PropagationResult:
    """Cross-task transfer (paper Section 4.4): propagate from another task's optimum.

    Args:
        source: a :class:`PropagationResult` of the source task (its final codes are the
            start) or codes (``d`` / ``n x d``).
        objectives: the target task's objective(s), as for :func:`propagate`.
        space: the code space.
        row: start only from this row of ``source`` (e.g. ``source.best()``).
        **kwargs: passed to :func:`propagate`.
    """
    codes = source.codes if isinstance(source, PropagationResult) else np.asarray(source)
    if row is not None:
        codes = np.atleast_2d(codes)[row]
    return propagate(objectives, space, codes, **kwargs)
