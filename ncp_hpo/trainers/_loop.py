"""The one training loop every task shares, its recipe, task strategy and result types.

A task is a small strategy object (:class:`Task`): its loss, its metric accumulator, its
batch augmentation and its default :class:`Recipe` (the paper's Appendix A optimiser and
schedule). :func:`fit` runs any task over any ``DataLoader``: device placement, mixed
precision, channels-last, seeded randomness under ``torch.random.fork_rng`` (the global
RNG state is the same after the call as before), a tqdm progress bar, per-epoch evaluation,
Optuna reporting and pruning, and cost measurement.
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ncp_hpo.exceptions import NCPWarning

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Accumulator",
    "AmpMode",
    "EpochCallback",
    "Recipe",
    "Task",
    "TrainResult",
    "fit",
    "measure_cost",
    "resolve_amp",
    "resolve_device",
]

AmpMode = Literal["auto", "bf16", "fp16", "off"]
EpochCallback = Callable[[int, Mapping[str, float]], None]
"""Called after each epoch with ``(epoch, metrics)``; epochs count from 1."""


class Accumulator(Protocol):
    """Streaming metric: ``update`` per batch, ``compute`` at the end."""

    def update(self, output: Any, target: Any) -> None: ...

    def compute(self) -> dict[str, float]: ...


# -- recipe --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """Optimiser and learning-rate schedule of a task (paper Appendix A), stepped per batch.

    Attributes:
        optimizer: ``"sgd"`` (Nesterov off), ``"adam"`` or ``"adamw"``.
        lr: initial (cosine, poly) or peak (one-cycle) learning rate.
        weight_decay: L2 (SGD, Adam) or decoupled (AdamW) weight decay.
        momentum: SGD momentum, or Adam's ``beta1``.
        schedule: ``"cosine"`` (to ``min_lr``), ``"poly"`` (``(1 - t)^power`` to ``min_lr``),
            ``"onecycle"`` (from ``min_lr`` up to ``lr`` over ``pct_start`` of the steps,
            then cosine down; Adam's ``beta1`` cycles 0.95 -> 0.85) or ``"constant"``.
        min_lr: the schedule's floor (one-cycle: its starting learning rate).
        grad_clip: clip the gradient norm to this value, or ``None``.
    """

    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: Literal["cosine", "poly", "onecycle", "constant"] = "cosine"
    min_lr: float = 0.0
    power: float = 0.9
    pct_start: float = 0.4
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "poly", "onecycle", "constant"):
            raise ValueError(
                f"schedule must be 'cosine', 'poly', 'onecycle' or 'constant', "
                f"got {self.schedule!r}"
            )
        if not self.lr > 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(
                f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}"
            )

    def scaled(self, *, lr: float | None = None, weight_decay: float | None = None) -> Recipe:
        """A copy with another ``lr`` (``min_lr`` keeps its ratio to ``lr``) or weight decay."""
        out = self
        if lr is not None:
            out = replace(out, lr=float(lr), min_lr=self.min_lr * float(lr) / self.lr)
        if weight_decay is not None:
            out = replace(out, weight_decay=float(weight_decay))
        return out

    def build(
        self, params: Iterable[nn.Parameter], total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The optimiser and its per-step scheduler for ``total_steps`` optimiser steps."""
        total = max(int(total_steps), 1)
        opt: torch.optim.Optimizer
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        elif self.optimizer == "adam":
            opt = torch.optim.Adam(
                params, lr=self.lr, betas=(self.momentum, 0.999), weight_decay=self.weight_decay
            )
        else:
            opt = torch.optim.AdamW(
                params, lr=self.lr, betas=(self.momentum, 0.999), weight_decay=self.weight_decay
            )
        sched: torch.optim.lr_scheduler.LRScheduler
        if self.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=total, eta_min=self.min_lr
            )
        elif self.schedule == "poly":
            lr, lo, p = self.lr, self.min_lr, self.power

            def poly(step: int) -> float:
                frac = min(step, total) / total
                return ((lr - lo) * (1.0 - frac) ** p + lo) / lr

            sched = torch.optim.lr_scheduler.LambdaLR(opt, poly)
        elif self.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.lr,
                total_steps=total + 1,  # OneCycleLR raises if stepped past total_steps
                pct_start=self.pct_start,
                div_factor=self.lr / self.min_lr if self.min_lr > 0 else 25.0,
                cycle_momentum=self.optimizer != "sgd" or self.momentum > 0,
                base_momentum=0.85,
                max_momentum=0.95,
            )
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        return opt, sched


# -- task strategy -------------------------------------------------------------------------
class Task(ABC):
    """What differs between tasks: loss, metrics, augmentation and recipe.

    Subclasses set the class attributes and implement :meth:`loss` and :meth:`evaluator`;
    :meth:`augment` defaults to no augmentation.

    Attributes:
        name: the task key (``"cls"``, ``"seg"``, ``"video"``, ``"bev-det"``).
        main_metric: the metric reported to Optuna (key of :meth:`evaluator`'s output).
        direction: ``"maximize"`` or ``"minimize"`` for ``main_metric``.
        recipe: the default :class:`Recipe`.
    """

    name: str = ""
    main_metric: str = ""
    direction: str = "maximize"
    recipe: Recipe = Recipe()

    def __init__(self, num_classes: int, *, flip: bool = True) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.flip = flip

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, flip={self.flip})"

    @abstractmethod
    def loss(self, output: Any, target: Any) -> Tensor:
        """Scalar training loss (computed in float32)."""

    @abstractmethod
    def evaluator(self, input_size: tuple[int, int]) -> Accumulator:
        """A fresh metric accumulator for one evaluation pass."""

    def setup(self, input_size: tuple[int, int], output: Any) -> None:  # noqa: B027
        """Called once before training with the input size and the output of one sample."""

    def augment(self, x: Tensor, target: Any, generator: torch.Generator) -> tuple[Tensor, Any]:
        """Augment one training batch on its device; randomness comes from ``generator``."""
        return x, target


def random_affine(
    x: Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.9, 1.1),
    translate: float = 0.1,
    flip: bool = False,
    masks: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Per-sample random scale, translation and horizontal flip of ``B x C x H x W`` images
    (any leading layout flattened into channels by the caller), with the same warp applied to
    ``B x H x W`` integer masks (nearest). Borders are replicated. The paper's
    resize-crop-flip augmentation in batch form."""
    b = x.shape[0]
    s = torch.empty(b).uniform_(scale[0], scale[1], generator=generator)
    t = torch.empty(b, 2).uniform_(-translate, translate, generator=generator) * 2
    f = torch.ones(b)
    if flip:
        f = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = f / s
    theta[:, 1, 1] = 1.0 / s
    theta[:, :, 2] = t
    theta = theta.to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid.to(x.dtype), padding_mode="border", align_corners=False)
    warped = None
    if masks is not None:
        m = masks[:, None].float()
        warped = F.grid_sample(m, grid, mode="nearest", padding_mode="border", align_corners=False)
        warped = warped[:, 0].to(masks.dtype)
    return out, warped


# -- result --------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        task: the task key.
        main_metric: name of the metric reported to Optuna; :attr:`value` is its final value.
        metrics: final validation metrics plus ``train_loss`` and ``val_loss``.
        history: one dict per epoch (``epoch`` from 1, ``train_loss``, ``val_loss``, ``lr``,
            the validation metrics, ``epoch_time_s``, ``train_samples_per_s``).
        flops: measured by ``torch.utils.flop_counter`` for one input (batch 1) at the
            training resolution; it counts 2 per multiply-accumulate.
        macs: ``flops / 2``, the convention of :func:`ncp_hpo.spaces.cost.flops`.
        params: number of parameters of the model.
        macs_analytic, params_analytic: the closed-form counts of the code, when known.
        wall_time_s: the whole call, evaluation and cost measurement included.
        samples_per_s: training throughput (training batches only).
        device: where it ran, e.g. ``"cpu"`` or ``"cuda:0"``.
        amp: the autocast dtype (``"bf16"``, ``"fp16"``) or ``None``.
        epochs: epochs completed.
        diverged: the training loss became NaN/inf and training stopped early.
        code: the architecture's code string, when known.
        model: the trained model (not serialised by :meth:`to_dict`).
    """

    task: str
    main_metric: str
    metrics: dict[str, float]
    history: list[dict[str, float]]
    flops: int
    macs: int
    params: int
    wall_time_s: float
    samples_per_s: float
    device: str
    amp: str | None
    epochs: int
    diverged: bool = False
    macs_analytic: int | None = None
    params_analytic: int | None = None
    code: str | None = None
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def value(self) -> float:
        """The final value of :attr:`main_metric`."""
        return float(self.metrics.get(self.main_metric, float("nan")))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of everything but the model."""
        d = asdict(replace(self, model=None))
        d.pop("model")
        return d


# -- helpers -------------------------------------------------------------------------------
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


def measure_cost(model: nn.Module, example: Tensor) -> tuple[int, int, Any]:
    """``(flops, params, output)`` of one forward pass of ``example`` in eval mode.

    ``flops`` is ``torch.utils.flop_counter.FlopCounterMode``'s total (2 per
    multiply-accumulate of convolutions and matrix products).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = model(example)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return int(counter.get_total_flops()), int(params), out


def _analytic(code: Any, task: str, example: Tensor, output: Any) -> tuple[int | None, int | None]:
    """Closed-form MACs and params of ``code`` at the example's geometry, or ``None``s."""
    if code is None:
        return None, None
    try:
        from ncp_hpo.spaces.cost import flops as cost_flops
        from ncp_hpo.spaces.cost import params as cost_params
    except ImportError:  # pragma: no cover - the cost model ships with the package
        return None, None
    kw: dict[str, Any] = {"task": task, "in_chans": int(example.shape[1])}
    if task == "bev-det":
        heat, boxes = output
        kw.update(num_classes=int(heat.shape[1]), box_channels=int(boxes.shape[1]))
    else:
        kw["num_classes"] = int(output.shape[1])
    fkw = dict(kw, input_size=tuple(int(s) for s in example.shape[-2:]))
    if task == "video":
        fkw["frames"] = int(example.shape[2])
    try:
        vec = _code_vector(code)
        return int(cost_flops(vec, **fkw)), int(cost_params(vec, **kw))
    except (ValueError, TypeError) as exc:
        warnings.warn(f"no analytic cost for this model: {exc}", NCPWarning, stacklevel=3)
        return None, None


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
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    aug_gen = torch.Generator().manual_seed(int(seed) + 1)
    use_scaler = amp_dtype == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def autocast() -> Any:
        if amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    def prepare(x: Tensor) -> Tensor:
        x = x.to(device, non_blocking=True)
        if channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # Cost of one input, measured before training (on an unshuffled val sample).
    x0, _ = next(iter(val_loader))
    example = prepare(_first(x0))
    flops, n_params, out0 = measure_cost(model, example)
    macs_a, params_a = _analytic(code, task.name, example, out0)
    input_size = (int(example.shape[-2]), int(example.shape[-1]))
    task.setup(input_size, out0)

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
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"{task.name} epoch {epoch}/{epochs}",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        for step, (x, y) in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            x = prepare(x)
            y = _to(y, device)
            if augment:
                x, y = task.augment(x, y, aug_gen)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                out = model(x)
            loss = task.loss(out, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            n = _batch_len(x)
            loss_sum += loss.detach().float() * n
            seen += n
            bar.update(1)
            if progress and step % 10 == 0:
                bar.set_postfix(loss=f"{loss.detach().item():.4g}")
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        train_time += dt
        train_samples += seen
        train_loss = float(loss_sum) / max(seen, 1)
        val = _evaluate(model, task, val_loader, prepare, device, autocast, input_size)
        metrics = {"train_loss": train_loss, **val}
        row = {
            "epoch": float(epoch),
            **metrics,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "epoch_time_s": dt,
            "train_samples_per_s": seen / dt if dt > 0 else float("nan"),
        }
        history.append(row)
        if callback is not None:
            callback(epoch, row)
        if not math.isfinite(train_loss):
            diverged = True
            warnings.warn(
                f"{task.name} training diverged at epoch {epoch} (train loss {train_loss}); "
                "stopping. Lower the learning rate (lr=...).",
                NCPWarning,
                stacklevel=3,
            )
        if trial is not None and _report(trial, metrics.get(task.main_metric), epoch):
            import optuna

            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned after epoch {epoch}: {task.main_metric}="
                    f"{metrics.get(task.main_metric, float('nan')):.4g}"
                )
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
        amp={torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_dtype)  # type: ignore[arg-type]
        if amp_dtype is not None
        else None,
        epochs=len(history),
        diverged=diverged,
        code=_code_string(code),
        model=model,
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
    prepare: Callable[[Tensor], Tensor],
    device: torch.device,
    autocast: Callable[[], Any],
    input_size: tuple[int, int],
) -> dict[str, float]:
    model.eval()
    acc = task.evaluator(input_size)
    loss_sum, seen = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            xb = prepare(x)
            yb = _to(y, device)
            with autocast():
                out = model(xb)
            n = _batch_len(xb)
            loss_sum += float(task.loss(out, yb)) * n
            seen += n
            acc.update(out, yb)
    return {"val_loss": loss_sum / max(seen, 1), **acc.compute()}


def _code_vector(code: Any) -> Any:
    """A multi-resolution code as its 27 integers (strings are decoded)."""
    from ncp_hpo.spaces import MultiResolutionSpace, NetworkCode

    if isinstance(code, str):
        return MultiResolutionSpace().decode(code)
    if isinstance(code, NetworkCode):
        return code.to_vector()
    return code


def _code_string(code: Any) -> str | None:
    if code is None:
        return None
    if isinstance(code, str):
        return code
    try:
        from ncp_hpo.spaces import MultiResolutionSpace

        out = MultiResolutionSpace().encode(code)
        return out if isinstance(out, str) else None
    except Exception:  # a code of another space: keep its repr
        return str(code)
