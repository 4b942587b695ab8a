"""The one training loop every task shares (:func:`fit`).

A task is a small strategy object (:class:`~ncp_hpo.trainers.Task`, see :mod:`._task`):
its loss, its metric accumulator, its batch augmentation and its default recipe (the
paper's Appendix A optimiser and schedule). :func:`fit` runs any task over any
``DataLoader``: device placement, mixed precision, channels-last, seeded randomness under
``torch.random.fork_rng`` (the global RNG state is the same after the call as before), a
tqdm progress bar, per-epoch evaluation, Optuna reporting and pruning, and cost
measurement.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ncp_hpo.exceptions import NCPWarning
from ncp_hpo.trainers._cost import analytic_cost, code_string, measure_cost
from ncp_hpo.trainers._task import AmpMode, EpochCallback, Recipe, Task, TrainResult

if TYPE_CHECKING:
    import optuna

__all__ = ["fit", "resolve_amp", "resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def resolve_amp(amp: AmpMode | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``"auto"`` is bf16 on CUDA when supported, else fp16; off on CPU."""
    if amp in (None, "off"):
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU")
        return torch.float16
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")


def _to(obj: Any, device: torch.device, non_blocking: bool = True) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: _to(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to(v, device, non_blocking) for v in obj)
    return obj


def _first(obj: Any, n: int = 1) -> Any:
    """The first ``n`` samples of a batched input."""
    if isinstance(obj, Tensor):
        return obj[:n]
    if isinstance(obj, Mapping):
        return {k: _first(v, n) for k, v in obj.items()}
    return obj


def _batch_len(x: Any) -> int:
    if isinstance(x, Tensor):
        return int(x.shape[0])
    if isinstance(x, Mapping):
        return _batch_len(next(iter(x.values())))
    return len(x)


# -- the loop ------------------------------------------------------------------------------
def fit(
    model: nn.Module,
    task: Task,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    *,
    epochs: int = 1,
    recipe: Recipe | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    device: str | torch.device | None = None,
    amp: AmpMode | None = "auto",
    channels_last: bool | None = None,
    seed: int = 0,
    augment: bool = True,
    max_steps_per_epoch: int | None = None,
    trial: optuna.trial.BaseTrial | None = None,
    callback: EpochCallback | None = None,
    progress: bool = True,
    code: Any = None,
) -> TrainResult:
    """Train ``model`` on ``task`` for ``epochs`` epochs, evaluating after each.

    Args:
        model: any module with the task's output convention (see the task classes).
        task: the task strategy.
        train_loader, val_loader: batches of ``(inputs, targets)``.
        epochs: number of passes over ``train_loader``.
        recipe: optimiser and schedule (default ``task.recipe``); ``lr`` / ``weight_decay``
            override its values (the schedule's floor keeps its ratio to ``lr``).
        device: ``None`` picks CUDA when available, else the CPU.
        amp: autocast dtype on CUDA (``"auto"``: bf16 where supported, else fp16 with a
            ``GradScaler``); ``"off"`` or ``None`` disables. Off on the CPU unless ``"bf16"``.
        channels_last: NHWC memory format for models and 4-D inputs (default: on CUDA).
        seed: seeds the augmentation generator and the global RNGs used inside the call
            (dropout, ...) under ``torch.random.fork_rng``; the caller's RNG state is restored.
        augment: apply ``task.augment`` to training batches.
        max_steps_per_epoch: stop an epoch after this many batches (smoke tests, budgets).
        trial: an Optuna trial: ``trial.report(main_metric, epoch)`` after every epoch and
            :class:`optuna.TrialPruned` when ``trial.should_prune()``.
        callback: ``callback(epoch, metrics)`` after every epoch (before pruning), e.g.
            :meth:`ncp_hpo.tracking.TrialRun.log_epoch`.
        progress: show a tqdm bar over the batches of each epoch.
        code: the architecture code (any form ``create_model`` takes), for the analytic cost.

    Returns:
        A :class:`TrainResult` holding the trained model.

    Raises:
        optuna.TrialPruned: when ``trial`` says so.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dev = resolve_device(device)
    amp_dtype = resolve_amp(amp, dev)
    rec = (recipe or task.recipe).scaled(lr=lr, weight_decay=weight_decay)
    cl = dev.type == "cuda" if channels_last is None else channels_last
    cuda_devices = [dev.index] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.default_generator.manual_seed(int(seed))
        if dev.type == "cuda":
            torch.cuda.manual_seed(int(seed))
        return _fit(
            model,
            task,
            train_loader,
            val_loader,
            epochs=epochs,
            recipe=rec,
            device=dev,
            amp_dtype=amp_dtype,
            channels_last=cl,
            seed=seed,
            augment=augment,
            max_steps=max_steps_per_epoch,
            trial=trial,
            callback=callback,
            progress=progress,
            code=code,
        )


class _Device:
    """Where and how batches run: device, autocast dtype, memory format."""

    def __init__(
        self, device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool
    ) -> None:
        self.device, self.amp_dtype, self.channels_last = device, amp_dtype, channels_last

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def prepare(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class _Stepper:
    """One optimiser step per training batch: augmentation, forward, loss, scaled backward,
    clipping, optimiser and schedule."""

    def __init__(
        self, model: nn.Module, task: Task, recipe: Recipe, run: _Device, *, seed: int
    ) -> None:
        self.model, self.task, self.recipe, self.run = model, task, recipe, run
        self.aug_gen = torch.Generator().manual_seed(int(seed) + 1)
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.amp_dtype == torch.float16)

    def step(self, x: Tensor, y: Any, optimizer: Any, scheduler: Any, augment: bool) -> Any:
        """Train on one batch; ``(loss, batch size)``."""
        run, task = self.run, self.task
        x = run.prepare(x)
        y = _to(y, run.device)
        if augment:
            x, y = task.augment(x, y, self.aug_gen)
            if run.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
        with run.autocast():
            out = self.model(x)
        loss = task.loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()
        scheduler.step()
        return loss, _batch_len(x)


def _train_epoch(
    stepper: _Stepper,
    loader: DataLoader[Any],
    optimizer: Any,
    scheduler: Any,
    *,
    steps: int,
    desc: str,
    augment: bool,
    progress: bool,
) -> tuple[float, int, float]:
    """One pass over ``loader`` (at most ``steps`` batches): mean training loss, samples
    seen and seconds taken."""
    from tqdm.auto import tqdm

    stepper.model.train()
    device = stepper.run.device
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    seen = 0
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for step, (x, y) in enumerate(loader):
        if step >= steps:
            break
        loss, n = stepper.step(x, y, optimizer, scheduler, augment)
        loss_sum += loss.detach().float() * n
        seen += n
        bar.update(1)
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.detach().item():.4g}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    return float(loss_sum) / max(seen, 1), seen, dt


def _fit(
    model: nn.Module,
    task: Task,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    *,
    epochs: int,
    recipe: Recipe,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    seed: int,
    augment: bool,
    max_steps: int | None,
    trial: Any,
    callback: EpochCallback | None,
    progress: bool,
    code: Any,
) -> TrainResult:
    start = time.perf_counter()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    run = _Device(device, amp_dtype, channels_last)
    stepper = _Stepper(model, task, recipe, run, seed=seed)

    flops, n_params, macs_a, params_a, input_size = _measure(model, task, val_loader, run, code)

    steps_per_epoch = len(train_loader)
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    optimizer, scheduler = recipe.build(model.parameters(), epochs * steps_per_epoch)

    history: list[dict[str, float]] = []
    train_time = 0.0
    train_samples = 0
    diverged = False
    metrics: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        train_loss, seen, dt = _train_epoch(
            stepper,
            train_loader,
            optimizer,
            scheduler,
            steps=steps_per_epoch,
            desc=f"{task.name} epoch {epoch}/{epochs}",
            augment=augment,
            progress=progress,
        )
        train_time += dt
        train_samples += seen
        val = _evaluate(model, task, val_loader, run, input_size)
        metrics = {"train_loss": train_loss, **val}
        row = _epoch_row(epoch, metrics, optimizer, dt=dt, seen=seen)
        history.append(row)
        if callback is not None:
            callback(epoch, row)
        diverged = _diverged(task, epoch, train_loss)
        _maybe_prune(trial, task, metrics, epoch)
        if diverged:
            break

    return TrainResult(
        task=task.name,
        main_metric=task.main_metric,
        metrics=metrics,
        history=history,
        flops=flops,
        macs=flops // 2,
        params=n_params,
        macs_analytic=macs_a,
        params_analytic=params_a,
        wall_time_s=time.perf_counter() - start,
        samples_per_s=train_samples / train_time if train_time > 0 else float("nan"),
        device=str(device),
        amp=_AMP_NAMES.get(amp_dtype) if amp_dtype is not None else None,
        epochs=len(history),
        diverged=diverged,
        code=code_string(code),
        model=model,
    )


_AMP_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _diverged(task: Task, epoch: int, train_loss: float) -> bool:
    """Whether the training loss became NaN/inf (with a warning naming the fix)."""
    if math.isfinite(train_loss):
        return False
    warnings.warn(
        f"{task.name} training diverged at epoch {epoch} (train loss {train_loss}); "
        "stopping. Lower the learning rate (lr=...).",
        NCPWarning,
        stacklevel=4,
    )
    return True


def _measure(
    model: nn.Module, task: Task, val_loader: DataLoader[Any], run: _Device, code: Any
) -> tuple[int, int, int | None, int | None, tuple[int, int]]:
    """Cost of one input, measured before training on an unshuffled val sample: measured
    FLOPs and params, closed-form MACs and params, and the input size (the task is set up
    for it)."""
    x0, _ = next(iter(val_loader))
    example = run.prepare(_first(x0))
    flops, n_params, out0 = measure_cost(model, example)
    macs_a, params_a = analytic_cost(code, task.name, example, out0)
    input_size = (int(example.shape[-2]), int(example.shape[-1]))
    task.setup(input_size, out0)
    return flops, n_params, macs_a, params_a, input_size


def _epoch_row(
    epoch: int, metrics: Mapping[str, float], optimizer: Any, *, dt: float, seen: int
) -> dict[str, float]:
    """One entry of :attr:`TrainResult.history`."""
    return {
        "epoch": float(epoch),
        **metrics,
        "lr": float(optimizer.param_groups[0]["lr"]),
        "epoch_time_s": dt,
        "train_samples_per_s": seen / dt if dt > 0 else float("nan"),
    }


def _maybe_prune(trial: Any, task: Task, metrics: Mapping[str, float], epoch: int) -> None:
    """Report the epoch's main metric to ``trial``; :class:`optuna.TrialPruned` if it says so."""
    if trial is not None and _report(trial, metrics.get(task.main_metric), epoch):
        import optuna

        if trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch}: {task.main_metric}="
                f"{metrics.get(task.main_metric, float('nan')):.4g}"
            )


def _report(trial: Any, value: float | None, epoch: int) -> bool:
    """``trial.report``; False for multi-objective studies, which Optuna cannot prune."""
    try:
        trial.report(float("nan") if value is None else float(value), epoch)
    except NotImplementedError:
        return False
    return True


def _evaluate(
    model: nn.Module,
    task: Task,
    loader: DataLoader[Any],
    run: _Device,
    input_size: tuple[int, int],
) -> dict[str, float]:
    model.eval()
    acc = task.evaluator(input_size)
    loss_sum, seen = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            xb = run.prepare(x)
            yb = _to(y, run.device)
            with run.autocast():
                out = model(xb)
            n = _batch_len(xb)
            loss_sum += float(task.loss(out, yb)) * n
            seen += n
            acc.update(out, yb)
    return {"val_loss": loss_sum / max(seen, 1), **acc.compute()}
