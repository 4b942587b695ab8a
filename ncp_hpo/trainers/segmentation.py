"""Semantic segmentation: per-pixel cross-entropy, mIoU / mAcc / aAcc.

Recipe (Appendix A, Cityscapes): SGD, momentum 0.9, weight decay 4e-5, initial lr 0.1
with the "poly" schedule (power 0.9) down to 1e-4; random resize-crop and horizontal flip
(here a batched random scale, translation and flip applied to image and mask alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.trainers._task import Recipe, Task, random_affine
from ncp_hpo.trainers.metrics import ConfusionAccumulator

__all__ = ["SEG_RECIPE", "SegmentationTask"]

SEG_RECIPE = Recipe(
    optimizer="sgd",
    lr=0.1,
    weight_decay=4e-5,
    momentum=0.9,
    schedule="poly",
    power=0.9,
    min_lr=1e-4,
)


class SegmentationTask(Task):
    """Logits ``B x K x H x W`` (resized to the mask if smaller) against masks ``B x H x W``.

    Main metric ``mIoU`` (percent). Pixels equal to ``ignore_index`` count nowhere.
    """

    name = "seg"
    main_metric = "mIoU"
    recipe = SEG_RECIPE

    def __init__(
        self,
        num_classes: int,
        *,
        flip: bool = True,
        ignore_index: int = 255,
        class_weights: Sequence[float] | Tensor | None = None,
    ) -> None:
        super().__init__(num_classes, flip=flip)
        self.ignore_index = ignore_index
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        if self.class_weights is not None and self.class_weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights needs {num_classes} values, got {tuple(self.class_weights.shape)}"
            )

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        out = output.float()
        if out.shape[-2:] != target.shape[-2:]:
            out = F.interpolate(out, size=target.shape[-2:], mode="bilinear", align_corners=False)
        w = None if self.class_weights is None else self.class_weights.to(out.device)
        return F.cross_entropy(out, target.long(), weight=w, ignore_index=self.ignore_index)

    def evaluator(self, input_size: tuple[int, int]) -> ConfusionAccumulator:
        return ConfusionAccumulator(self.num_classes, ignore_index=self.ignore_index)

    def augment(self, x: Tensor, target: Any, generator: torch.Generator) -> tuple[Tensor, Any]:
        out, masks = random_affine(x, generator, flip=self.flip, masks=target)
        return out, masks
