"""Image classification: cross-entropy, top-1/top-5, the paper's ImageNet recipe.

Recipe (Appendix A): SGD, momentum 0.9, weight decay 1e-4, initial lr 0.1 with cosine
annealing to 0; random resize-crop and horizontal flip (here a batched random scale,
translation and flip).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.trainers._task import Recipe, Task, random_affine
from ncp_hpo.trainers.metrics import TopKAccumulator

__all__ = ["CLS_RECIPE", "ClassificationTask"]

CLS_RECIPE = Recipe(optimizer="sgd", lr=0.1, weight_decay=1e-4, momentum=0.9, schedule="cosine")


class ClassificationTask(Task):
    """Logits ``B x K`` against class indices ``B``; main metric ``top1`` (percent).

    Args:
        num_classes: ``K``.
        flip: random horizontal flips in augmentation (off for digits, which flips change).
        label_smoothing: of the cross-entropy.
    """

    name = "cls"
    main_metric = "top1"
    recipe = CLS_RECIPE

    def __init__(self, num_classes: int, *, flip: bool = True, label_smoothing: float = 0.0):
        super().__init__(num_classes, flip=flip)
        self.label_smoothing = label_smoothing

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.float(), target, label_smoothing=self.label_smoothing)

    def evaluator(self, input_size: tuple[int, int]) -> TopKAccumulator:
        return TopKAccumulator((1, 5))

    def augment(self, x: Tensor, target: Any, generator: torch.Generator) -> tuple[Tensor, Any]:
        out, _ = random_affine(x, generator, flip=self.flip)
        return out, target
