"""The predictor's training loop: Adam with a one-cycle schedule, per-member checkpoint
selection on validation data, and the process-wide torch thread setting."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncp_hpo.predictor._network import EnsembleMLP

__all__ = ["TrainConfig", "TrainHistory", "fresh_seed", "torch_threads", "train_module"]

_LOSS_FNS = {"smooth_l1": F.smooth_l1_loss, "mse": F.mse_loss, "l1": F.l1_loss}


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation parameters of :class:`~ncp_hpo.predictor.NeuralPredictor`."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    pct_start: float
    div_factor: float
    final_div_factor: float
    loss: str
    verbose: bool


@dataclass
class TrainHistory:
    """Mean training loss per epoch and validation MAE per epoch and metric."""

    train_loss: list[float] = field(default_factory=list)
    val_mae: list[list[float]] = field(default_factory=list)


def fresh_seed() -> int:
    """A seed from OS entropy, for ``seed=None`` (recorded in ``seed_``)."""
    return int(np.random.default_rng().integers(0, 2**63 - 1))


def _adam(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused where the build supports it (faster steps on CPU, same update rule)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch / unsupported device
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads`` (``None`` leaves it alone).

    The setting is process-global, and samplers call in from several threads (Optuna's
    ``n_jobs``): the first caller in saves the user's value and the last one out restores
    it; callers that overlap share the first caller's count.
    """
    if n is None:
        yield
        return
    global _THREADS_DEPTH, _THREADS_SAVED
    with _THREADS_LOCK:
        if _THREADS_DEPTH == 0:
            _THREADS_SAVED = torch.get_num_threads()
            if _THREADS_SAVED != n:
                torch.set_num_threads(n)
        _THREADS_DEPTH += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_DEPTH -= 1
            if _THREADS_DEPTH == 0 and torch.get_num_threads() != _THREADS_SAVED:
                torch.set_num_threads(_THREADS_SAVED)


_THREADS_LOCK = threading.Lock()
_THREADS_DEPTH = 0
_THREADS_SAVED = 1


class _BestSnapshot:
    """Per member, the weights of the epoch with the lowest validation MAE of one metric."""

    def __init__(self, module: EnsembleMLP) -> None:
        e = module.n_members
        self.mae = torch.full((e,), float("inf"))
        self.state = {k: v.detach().clone() for k, v in module.named_parameters()}
        self.epoch = [-1] * e

    def update(self, module: EnsembleMLP, mae: Tensor, epoch: int) -> None:
        """Keep the members whose ``mae`` (``E``) improved at ``epoch``."""
        improved = mae < self.mae
        if not improved.any():
            return
        self.mae = torch.where(improved, mae, self.mae)
        for k, p in module.named_parameters():
            mask = improved.view(-1, *([1] * (p.ndim - 1)))
            self.state[k] = torch.where(mask, p.detach(), self.state[k])
        for i in torch.nonzero(improved).flatten().tolist():
            self.epoch[i] = epoch

    def restore(self, module: EnsembleMLP) -> None:
        with torch.no_grad():
            for k, p in module.named_parameters():
                p.copy_(self.state[k])


def _run_epoch(
    module: EnsembleMLP,
    x: Tensor,
    y: Tensor,
    bs: int,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loss_name: str,
    gen: torch.Generator,
) -> float:
    """One epoch over a fresh permutation per member; returns the summed loss."""
    loss_fn = _LOSS_FNS[loss_name]
    e, n = module.n_members, x.shape[0]
    perm = torch.rand(e, n, generator=gen).argsort(dim=1)  # E x n
    xs, ys = x[perm], y[perm]  # E x n x d, E x n x m
    epoch_loss = torch.zeros(())
    for s in range(0, n, bs):
        out = module(xs[:, s : s + bs], gen)  # E x b x m
        # mean over batch and metrics per member, summed over members
        loss = loss_fn(out, ys[:, s : s + bs], reduction="mean") * e
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        epoch_loss += loss.detach()
    return float(epoch_loss)


def train_module(
    module: EnsembleMLP,
    x_np: np.ndarray,
    y_np: np.ndarray,
    val: tuple[np.ndarray, np.ndarray] | None,
    main_idx: int,
    gen: torch.Generator,
    cfg: TrainConfig,
) -> tuple[TrainHistory, list[int] | None]:
    """Train ``module`` in place on ``x_np`` (``n x d``) and ``y_np`` (``n x m``, original units).

    With ``val`` (``n_val x d`` codes, ``n_val x m`` targets) each member ends with the
    weights of its epoch of lowest validation MAE on metric ``main_idx``.

    Returns:
        the history and the best epoch per member (``None`` without ``val``).
    """
    x = (torch.from_numpy(x_np).float() - module.input_mean) / module.input_std  # n x d
    y = (torch.from_numpy(y_np).float() - module.target_mean) / module.target_std  # n x m
    n, e = x.shape[0], module.n_members
    bs = min(int(cfg.batch_size), n)
    steps_per_epoch = -(-n // bs)
    opt = _adam(module, float(cfg.lr), float(cfg.weight_decay))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=float(cfg.lr),
        total_steps=steps_per_epoch * int(cfg.epochs),
        pct_start=float(cfg.pct_start),
        div_factor=float(cfg.div_factor),
        final_div_factor=float(cfg.final_div_factor),
    )
    history = TrainHistory()
    best: _BestSnapshot | None = None
    if val is not None:
        xv = (torch.from_numpy(val[0]).float() - module.input_mean) / module.input_std
        yv = torch.from_numpy(val[1]).float()  # original units
        best = _BestSnapshot(module)
    module.train()
    for epoch in range(int(cfg.epochs)):
        loss = _run_epoch(module, x, y, bs, opt, sched, cfg.loss, gen)
        history.train_loss.append(loss / (steps_per_epoch * e))
        if best is not None:
            with torch.no_grad():
                pred = module(xv) * module.target_std + module.target_mean  # E x nv x m
                mae = (pred - yv).abs().mean(1)  # E x m
            history.val_mae.append(mae.mean(0).tolist())
            best.update(module, mae[:, main_idx], epoch)
        if cfg.verbose and (epoch % 20 == 0 or epoch == cfg.epochs - 1):
            msg = f"epoch {epoch:4d}  train loss {history.train_loss[-1]:.5f}"
            if history.val_mae:
                msg += f"  val MAE {history.val_mae[-1][main_idx]:.4f}"
            print(msg)
    if best is None:
        return history, None
    best.restore(module)
    return history, best.epoch
