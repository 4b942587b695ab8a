"""Video recognition: clips ``B x C x T x H x W``, cross-entropy, top-1/top-5.

Recipe (Appendix A, HMDB51): Adam (beta1 0.9), weight decay 1e-5, initial lr 0.01 with
cosine annealing to 0; random resize-crop plus brightness/contrast jitter (here one random
scale/translation per clip, the same for all its frames, and per-clip brightness and
contrast). Flips are off by default: they change a motion direction label.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ncp_hpo.trainers._task import Recipe, random_affine
from ncp_hpo.trainers.classification import ClassificationTask

__all__ = ["VIDEO_RECIPE", "VideoTask"]

VIDEO_RECIPE = Recipe(optimizer="adam", lr=0.01, weight_decay=1e-5, momentum=0.9, schedule="cosine")


class VideoTask(ClassificationTask):
    """Clip logits ``B x K`` against class indices ``B``; main metric ``top1`` (percent).

    Args:
        num_classes: ``K``.
        flip: random horizontal flips (default off: they swap left and right motion).
        jitter: maximum relative change of brightness and contrast.
    """

    name = "video"
    recipe = VIDEO_RECIPE

    def __init__(self, num_classes: int, *, flip: bool = False, jitter: float = 0.2) -> None:
        super().__init__(num_classes, flip=flip)
        self.jitter = jitter

    def augment(self, x: Tensor, target: Any, generator: torch.Generator) -> tuple[Tensor, Any]:
        if x.ndim != 5:
            raise ValueError(f"video clips are B x C x T x H x W, got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        out, _ = random_affine(x.reshape(b, c * t, h, w), generator, flip=self.flip)
        out = out.reshape(b, c, t, h, w)
        if self.jitter > 0:
            j = self.jitter
            bright = torch.empty(b, 1, 1, 1, 1).uniform_(-j, j, generator=generator)
            contrast = torch.empty(b, 1, 1, 1, 1).uniform_(1 - j, 1 + j, generator=generator)
            mean = out.mean(dim=(1, 2, 3, 4), keepdim=True)
            out = (out - mean) * contrast.to(out) + mean + bright.to(out)
        return out, target
