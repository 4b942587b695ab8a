"""Bird's-eye-view detection: centre heat-map + box regression, AP at IoU 0.5.

The model output is a pair ``(heatmap, boxes)`` (e.g. :class:`ncp_hpo.models.DetectionOutput`)
at a stride ``s`` of the input grid: ``heatmap`` ``B x K x h x w`` centre logits and ``boxes``
``B x R x h x w`` whose first four channels are ``(dx, dy, log w, log l)``: the centre's offset
inside its cell and the log box extent along x and y, in output cells. Further channels
(e.g. ``sin``/``cos`` yaw) are left unsupervised: the boxes here are axis-aligned.

Targets are dicts with ``boxes`` ``B x M x 4`` (``x1, y1, x2, y2`` in input cells) and
``labels`` ``B x M`` (-1 = padding), as :class:`ncp_hpo.trainers.datasets.BevDetection` gives.

Loss (CenterNet / CenterPoint): penalty-reduced focal loss on the heat-map against Gaussian
bumps at the box centres, plus L1 on the four regression channels at the centre cells.

Recipe (Appendix A, KITTI / PointPillars): AdamW (beta1 0.9), weight decay 1e-2, one-cycle
schedule peaking at 2e-3 from 2e-4, gradient-norm clipping at 10 (as OpenPCDet); random
mirroring/flipping (here flips along x and y, boxes flipped with the grid).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.trainers._task import Recipe, Task
from ncp_hpo.trainers.metrics import DetectionAccumulator

__all__ = ["DET_RECIPE", "DetectionTask", "encode_targets", "gaussian_radius"]

DET_RECIPE = Recipe(
    optimizer="adamw",
    lr=2e-3,
    weight_decay=1e-2,
    momentum=0.9,
    schedule="onecycle",
    min_lr=2e-4,
    grad_clip=10.0,
)


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float = 0.7) -> Tensor:
    """CenterNet's radius: the largest centre shift keeping IoU >= ``min_overlap``."""
    m = min_overlap
    b1 = height + width
    c1 = width * height * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt((b1**2 - 4 * c1).clamp(min=0))) / 2
    b2 = 2 * (height + width)
    c2 = (1 - m) * width * height
    r2 = (b2 + torch.sqrt((b2**2 - 16 * c2).clamp(min=0))) / 2
    a3 = 4 * m
    b3 = -2 * m * (height + width)
    c3 = (m - 1) * width * height
    r3 = (b3 + torch.sqrt((b3**2 - 4 * a3 * c3).clamp(min=0))) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def encode_targets(
    boxes: Tensor, labels: Tensor, num_classes: int, size: tuple[int, int], stride: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dense training targets of padded boxes.

    Args:
        boxes: ``B x M x 4`` input-cell boxes; labels: ``B x M`` (-1 = padding).
        size: ``(h, w)`` of the output maps; stride: input cells per output cell.

    Returns:
        ``heatmap`` ``B x K x h x w`` (1 at each centre cell, Gaussian around it),
        ``index`` ``B x M`` (flat centre cell), ``regression`` ``B x M x 4``
        (``dx, dy, log w, log l``) and ``valid`` ``B x M``.
    """
    h, w = size
    valid = labels >= 0
    b = boxes.float() / stride
    cx = (b[..., 0] + b[..., 2]) / 2
    cy = (b[..., 1] + b[..., 3]) / 2
    bw = (b[..., 2] - b[..., 0]).clamp(min=1e-3)
    bl = (b[..., 3] - b[..., 1]).clamp(min=1e-3)
    ix = cx.floor().clamp(0, w - 1)
    iy = cy.floor().clamp(0, h - 1)
    radius = gaussian_radius(bl, bw).floor().clamp(min=0)
    sigma = (2 * radius + 1) / 6
    xs = torch.arange(w, device=boxes.device, dtype=torch.float32)
    ys = torch.arange(h, device=boxes.device, dtype=torch.float32)
    dx2 = (xs.view(1, 1, 1, w) - ix[..., None, None]) ** 2
    dy2 = (ys.view(1, 1, h, 1) - iy[..., None, None]) ** 2
    gauss = torch.exp(-(dx2 + dy2) / (2 * sigma[..., None, None] ** 2))  # B x M x h x w
    gauss = gauss * valid[..., None, None]
    onehot = F.one_hot(labels.clamp(min=0), num_classes).float() * valid[..., None]
    heatmap = (gauss[:, :, None] * onehot[..., None, None]).amax(dim=1)
    index = (iy * w + ix).long()
    regression = torch.stack([cx - ix, cy - iy, bw.log(), bl.log()], dim=-1)
    return heatmap, index, regression, valid


def focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the centres."""
    logits = logits.float()
    p = logits.sigmoid()
    pos = target.eq(1).float()
    pos_loss = -((1 - p) ** 2) * F.logsigmoid(logits) * pos
    neg_loss = -((1 - target) ** 4) * p**2 * F.logsigmoid(-logits) * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


class DetectionTask(Task):
    """Centre heat-map detection on a BEV grid; main metric ``AP50`` (mean over classes).

    Args:
        num_classes: heat-map channels ``K``.
        flip: random flips along x and y in augmentation.
        regression_weight: weight of the L1 box-regression term.
        max_detections: boxes kept per image at evaluation.
    """

    name = "bev-det"
    main_metric = "AP50"
    recipe = DET_RECIPE

    def __init__(
        self,
        num_classes: int,
        *,
        flip: bool = True,
        regression_weight: float = 1.0,
        max_detections: int = 50,
    ) -> None:
        super().__init__(num_classes, flip=flip)
        self.regression_weight = regression_weight
        self.max_detections = max_detections

    @staticmethod
    def _split(output: Any) -> tuple[Tensor, Tensor]:
        if isinstance(output, dict):
            return output["heatmap"], output["boxes"]
        heat, boxes = output
        return heat, boxes

    def loss(
        self, output: Any, target: dict[str, Tensor], *, stride: float | None = None
    ) -> Tensor:
        heat, reg = self._split(output)
        h, w = heat.shape[-2:]
        if stride is None:
            stride = self.stride if self.stride is not None else 4.0
        hm_t, index, reg_t, valid = encode_targets(
            target["boxes"], target["labels"], self.num_classes, (h, w), stride
        )
        loss = focal_loss(heat, hm_t)
        r = reg.float().flatten(2)[:, :4]  # B x 4 x hw
        pred = r.gather(2, index[:, None, :].expand(-1, 4, -1)).transpose(1, 2)  # B x M x 4
        l1 = (pred - reg_t).abs().sum(-1) * valid
        return loss + self.regression_weight * l1.sum() / valid.sum().clamp(min=1)

    stride: float | None = None

    def evaluator(self, input_size: tuple[int, int]) -> DetectionAccumulator:
        return DetectionAccumulator(
            self.num_classes, input_size, max_detections=self.max_detections
        )

    def setup(self, input_size: tuple[int, int], output: Any) -> None:
        heat, _ = self._split(output)
        self.stride = input_size[0] / heat.shape[-2]

    def augment(
        self, x: Tensor, target: dict[str, Tensor], generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if not self.flip:
            return x, target
        b = x.shape[0]
        h, w = x.shape[-2:]
        fx = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        fy = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(fx.view(b, 1, 1, 1), x.flip(-1), x)
        x = torch.where(fy.view(b, 1, 1, 1), x.flip(-2), x)
        bx = target["boxes"].clone()
        x1, y1, x2, y2 = bx.unbind(-1)
        fxm, fym = fx.view(b, 1), fy.view(b, 1)
        bx = torch.stack(
            [
                torch.where(fxm, w - x2, x1),
                torch.where(fym, h - y2, y1),
                torch.where(fxm, w - x1, x2),
                torch.where(fym, h - y1, y2),
            ],
            dim=-1,
        )
        return x, {**target, "boxes": bx}
