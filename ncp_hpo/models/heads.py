"""Task heads and their registry.

A head receives the four branch features (highest resolution first), resizes them to the
resolution :data:`~ncp_hpo.spaces.cost.TASKS` names for its task, concatenates them, fuses
them with one convolution to ``fuse_chs`` channels (``o1`` of the code) and maps the result
to the task's output. The cost model in :mod:`ncp_hpo.spaces.cost` has the closed form of
each head registered here; the tests check the two agree.

Add a task by registering a :class:`TaskHead` subclass with :func:`register_head` and its
geometry and cost terms in :mod:`ncp_hpo.spaces.cost`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncp_hpo.models.blocks import ConvBNAct
from ncp_hpo.spaces.cost import TASKS

__all__ = [
    "BEVDetectionHead",
    "ClassificationHead",
    "DetectionOutput",
    "SegmentationHead",
    "TaskHead",
    "VideoHead",
    "create_head",
    "list_tasks",
    "register_head",
    "resize_concat",
]


def resize_concat(features: Sequence[Tensor], level: int) -> Tensor:
    """Resize every branch to branch ``level``'s size (bilinear) and concatenate channels.

    Shapes: tensors ``B x c_k x h_k x w_k`` -> ``B x sum(c_k) x h_level x w_level``.
    """
    size = features[level].shape[-2:]
    return torch.cat(
        [
            f
            if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            for f in features
        ],
        dim=1,
    )


class TaskHead(nn.Module):
    """Base class of task heads: fuse the branches, then map to the task's output.

    Subclasses implement :meth:`forward`. ``task`` is set by :func:`register_head`.
    """

    task: str = ""

    @property
    def fuse_level(self) -> int:
        return TASKS[self.task].fuse_level

    def forward(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> Any:  # pragma: no cover - abstract
        """Map branch features (``B*frames x c_k x h_k x w_k``) to the task output."""
        raise NotImplementedError


H = TypeVar("H", bound=type[TaskHead])
_HEADS: dict[str, type[TaskHead]] = {}


def register_head(task: str) -> Callable[[H], H]:
    """Class decorator registering a head under ``task`` (a key of ``cost.TASKS``)."""

    def wrap(cls: H) -> H:
        if task not in TASKS:
            raise ValueError(f"task {task!r} has no cost model; add it to cost.TASKS first")
        if task in _HEADS:
            raise ValueError(f"a head for task {task!r} is already registered")
        cls.task = task
        _HEADS[task] = cls
        return cls

    return wrap


def list_tasks() -> tuple[str, ...]:
    """Names of the registered task heads."""
    return tuple(_HEADS)


def create_head(
    task: str, *, in_chs: Sequence[int], fuse_chs: int, num_classes: int, **options: Any
) -> TaskHead:
    """Build the head registered for ``task``; ``options`` go to its constructor."""
    try:
        cls = _HEADS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {list(_HEADS)}") from None
    return cls(in_chs=in_chs, fuse_chs=fuse_chs, num_classes=num_classes, **options)


@register_head("cls")
class ClassificationHead(TaskHead):
    """Fuse at the lowest resolution, global average pool, linear classifier.

    Shapes: branch features -> logits ``B x num_classes``.
    """

    def __init__(self, *, in_chs: Sequence[int], fuse_chs: int, num_classes: int) -> None:
        super().__init__()
        self.fuse = ConvBNAct(sum(in_chs), fuse_chs, kernel=1)
        self.fc = nn.Linear(fuse_chs, num_classes)

    def forward(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> Tensor:
        x = self.fuse(resize_concat(features, self.fuse_level))
        return self.fc(x.mean(dim=(-2, -1)))


@register_head("seg")
class SegmentationHead(TaskHead):
    """Fuse at the highest resolution, 1x1 classifier, upsample to the input size.

    Shapes: branch features -> per-pixel logits ``B x num_classes x H x W``.
    """

    def __init__(self, *, in_chs: Sequence[int], fuse_chs: int, num_classes: int) -> None:
        super().__init__()
        self.fuse = ConvBNAct(sum(in_chs), fuse_chs, kernel=1)
        self.classifier = nn.Conv2d(fuse_chs, num_classes, kernel_size=1)

    def forward(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> Tensor:
        x = self.classifier(self.fuse(resize_concat(features, self.fuse_level)))
        return F.interpolate(x, size=image_size, mode="bilinear", align_corners=False)


@register_head("video")
class VideoHead(TaskHead):
    """Fuse the frames at the lowest resolution with a 3x3x3 convolution over time, pool,
    classify. The 3D convolution replaces the 1x1 fusion convolution of the image network.

    Shapes: branch features of ``B*frames`` frames (time-major within a clip) -> logits
    ``B x num_classes``.
    """

    def __init__(self, *, in_chs: Sequence[int], fuse_chs: int, num_classes: int) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv3d(sum(in_chs), fuse_chs, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(fuse_chs),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(fuse_chs, num_classes)

    def forward(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> Tensor:
        x = resize_concat(features, self.fuse_level)  # B*T x C x h x w
        bt, c, h, w = x.shape
        if bt % frames:
            raise ValueError(f"{bt} feature maps are not a whole number of {frames}-frame clips")
        x = x.reshape(bt // frames, frames, c, h, w).transpose(1, 2)  # B x C x T x h x w
        x = self.fuse(x)
        return self.fc(x.mean(dim=(-3, -2, -1)))


class DetectionOutput(NamedTuple):
    """Dense bird's-eye-view detection maps at the fused (1/4 input) resolution.

    Attributes:
        heatmap: ``B x num_classes x h x w`` centre heat-map logits.
        boxes: ``B x box_channels x h x w`` box regression, by default
            ``(dx, dy, log w, log l, sin yaw, cos yaw)``.
    """

    heatmap: Tensor
    boxes: Tensor


@register_head("bev-det")
class BEVDetectionHead(TaskHead):
    """Centre-point style BEV detection: fuse at the highest resolution, then a 1x1 heat-map
    convolution and a 1x1 box-regression convolution.

    The input is a bird's-eye-view pseudo-image (e.g. PointPillars features, set
    ``in_chans`` of the model accordingly).

    Shapes: branch features -> :class:`DetectionOutput` at ``ceil(H/4) x ceil(W/4)``.
    """

    def __init__(
        self, *, in_chs: Sequence[int], fuse_chs: int, num_classes: int, box_channels: int = 6
    ) -> None:
        super().__init__()
        self.fuse = ConvBNAct(sum(in_chs), fuse_chs, kernel=1)
        self.heatmap = nn.Conv2d(fuse_chs, num_classes, kernel_size=1, bias=True)
        self.boxes = nn.Conv2d(fuse_chs, box_channels, kernel_size=1)
        # Focal-loss prior: start at ~10% centre probability so early training is stable.
        nn.init.constant_(cast(Tensor, self.heatmap.bias), -2.19)

    def forward(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> DetectionOutput:
        x = self.fuse(resize_concat(features, self.fuse_level))
        return DetectionOutput(heatmap=self.heatmap(x), boxes=self.boxes(x))
