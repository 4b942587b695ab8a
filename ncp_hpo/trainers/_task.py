"""What the training loop is given and gives back: a task's strategy (:class:`Task`), its
optimiser and schedule (:class:`Recipe`), metric accumulators, the batch augmentation the
image tasks share (:func:`random_affine`) and the result of a run (:class:`TrainResult`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Accumulator",
    "AmpMode",
    "EpochCallback",
    "Recipe",
    "Task",
    "TrainResult",
    "random_affine",
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
