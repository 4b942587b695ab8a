"""Evaluation metrics of the four tasks, as pure functions plus streaming accumulators.

* classification and video: top-k accuracy (:func:`topk_correct`, :class:`TopKAccumulator`);
* segmentation: a confusion matrix and mIoU / mAcc / aAcc from it (:func:`confusion_matrix`,
  :func:`segmentation_scores`, :class:`ConfusionAccumulator`), following the mmseg definitions;
* BEV detection: peaks of a centre heat-map decoded into boxes (:func:`decode_centers`),
  greedy IoU matching and VOC all-point average precision (:func:`average_precision`,
  :func:`detection_ap`, :class:`DetectionAccumulator`).

Accumulators share one small interface: ``update(output, target)`` per batch and
``compute() -> dict[str, float]``; the training loop uses nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ConfusionAccumulator",
    "DetectionAccumulator",
    "Detections",
    "TopKAccumulator",
    "average_precision",
    "box_iou",
    "confusion_matrix",
    "decode_centers",
    "detection_ap",
    "nms",
    "segmentation_scores",
    "topk_correct",
]


# -- classification ------------------------------------------------------------------------
def topk_correct(logits: Tensor, target: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose target is among the ``k`` highest logits, for each ``k``.

    Args:
        logits: ``B x K`` scores.
        target: ``B`` class indices.
        ks: the ``k`` values; a ``k`` above ``K`` counts every sample as correct.

    Returns:
        ``{k: correct count}``.
    """
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"topk_correct expects logits B x K and target B, got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # B x kmax
    hit = top.eq(target.view(-1, 1))
    return {k: int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks}


class TopKAccumulator:
    """Streaming top-k accuracy in percent: ``compute() -> {"top1": .., "top5": ..}``."""

    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        self.ks = tuple(ks)
        self.correct = dict.fromkeys(self.ks, 0)
        self.total = 0

    def update(self, output: Tensor, target: Tensor) -> None:
        for k, c in topk_correct(output.detach().float(), target, self.ks).items():
            self.correct[k] += c
        self.total += int(target.shape[0])

    def compute(self) -> dict[str, float]:
        n = max(self.total, 1)
        return {f"top{k}": 100.0 * self.correct[k] / n for k in self.ks}


# -- segmentation --------------------------------------------------------------------------
def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, *, ignore_index: int | None = 255
) -> Tensor:
    """``K x K`` int64 confusion matrix, rows = ground truth, columns = prediction.

    Args:
        pred: predicted class indices, any shape.
        target: ground-truth indices, same shape; pixels equal to ``ignore_index`` (or outside
            ``0..K-1``) are skipped.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    keep = (t >= 0) & (t < num_classes)
    if ignore_index is not None:
        keep &= t != ignore_index
    idx = t[keep] * num_classes + p[keep].clamp(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def segmentation_scores(cm: Tensor | np.ndarray) -> dict[str, float]:
    """mIoU, mAcc and aAcc (percent) of a confusion matrix (rows = ground truth).

    Per class ``c``: ``IoU = TP / (TP + FP + FN)``, ``Acc = TP / (TP + FN)``. Classes absent
    from the ground truth have no Acc; classes absent from both ground truth and prediction
    have no IoU; the means skip them (mmseg's ``nanmean``). ``aAcc = sum TP / sum cm``.
    Also returns ``IoU.<c>`` and ``Acc.<c>`` per class (NaN where undefined).
    """
    m = np.asarray(cm.cpu().numpy() if isinstance(cm, Tensor) else cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is K x K, got shape {m.shape}")
    tp = np.diag(m)
    gt = m.sum(axis=1)
    pr = m.sum(axis=0)
    union = gt + pr - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    total = m.sum()
    out = {
        "mIoU": 100.0 * float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mAcc": 100.0 * float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "aAcc": 100.0 * float(tp.sum() / total) if total > 0 else float("nan"),
    }
    for c in range(m.shape[0]):
        out[f"IoU.{c}"] = 100.0 * float(iou[c])
        out[f"Acc.{c}"] = 100.0 * float(acc[c])
    return out


class ConfusionAccumulator:
    """Streaming segmentation scores from ``B x K x H x W`` logits and ``B x H x W`` masks.

    ``compute()`` returns mIoU, mAcc and aAcc (percent); per-class values are left out to
    keep per-epoch logs short (call :func:`segmentation_scores` on :attr:`matrix` for them).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, output: Tensor, target: Tensor) -> None:
        if output.shape[-2:] != target.shape[-2:]:
            output = F.interpolate(
                output.float(), size=target.shape[-2:], mode="bilinear", align_corners=False
            )
        pred = output.argmax(dim=1)
        cm = confusion_matrix(pred, target, self.num_classes, ignore_index=self.ignore_index)
        self.matrix += cm.cpu()

    def compute(self) -> dict[str, float]:
        s = segmentation_scores(self.matrix)
        return {k: s[k] for k in ("mIoU", "mAcc", "aAcc")}


# -- detection -----------------------------------------------------------------------------
def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of axis-aligned boxes ``N x 4``, ``M x 4`` (x1, y1, x2, y2) -> ``N x M``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy axis-aligned non-maximum suppression; indices kept, highest score first."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    if order.numel() == 0:
        return order
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


@dataclass
class Detections:
    """Boxes of one image: ``boxes`` ``N x 4`` (x1, y1, x2, y2), ``scores`` and ``labels`` ``N``."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def decode_centers(
    heatmap: Tensor,
    regression: Tensor,
    *,
    stride: float = 1.0,
    max_detections: int = 50,
    score_threshold: float = 0.05,
    nms_threshold: float | None = 0.5,
    kernel: int = 3,
) -> list[Detections]:
    """Decode a CenterNet-style output into boxes, one :class:`Detections` per image.

    Peaks are cells equal to the max of their ``kernel x kernel`` neighbourhood; the
    ``max_detections`` best above ``score_threshold`` become boxes, then (optionally)
    class-wise axis-aligned NMS, as in the paper's KITTI protocol.

    Args:
        heatmap: ``B x K x h x w`` centre probabilities in ``[0, 1]`` (apply the sigmoid first).
        regression: ``B x R x h x w`` with ``R >= 4``: ``(dx, dy, log w, log l)`` per cell, the
            centre offset inside the cell and the log box size, all in output cells.
        stride: input cells per output cell; boxes are returned in input coordinates.
    """
    b, k, h, w = heatmap.shape
    if regression.shape[0] != b or regression.shape[1] < 4 or regression.shape[-2:] != (h, w):
        raise ValueError(
            f"regression must be B x >=4 x h x w matching the heat-map {tuple(heatmap.shape)}, "
            f"got {tuple(regression.shape)}"
        )
    hm = heatmap.detach().float()
    reg = regression.detach().float()
    peaks = F.max_pool2d(hm, kernel, stride=1, padding=kernel // 2)
    hm = torch.where(peaks == hm, hm, torch.zeros_like(hm))
    out = []
    n = min(max_detections, k * h * w)
    for i in range(b):
        scores, idx = hm[i].reshape(-1).topk(n)
        keep = scores > score_threshold
        scores, idx = scores[keep], idx[keep]
        labels = idx // (h * w)
        cell = idx % (h * w)
        ys = (cell // w).float()
        xs = (cell % w).float()
        r = reg[i, :4].reshape(4, -1)[:, cell]
        cx = xs + r[0]
        cy = ys + r[1]
        bw = r[2].clamp(-6, 6).exp()
        bl = r[3].clamp(-6, 6).exp()
        boxes = torch.stack([cx - bw / 2, cy - bl / 2, cx + bw / 2, cy + bl / 2], dim=1) * stride
        if nms_threshold is not None and boxes.shape[0] > 1:
            kept = []
            for c in labels.unique():
                sel = torch.nonzero(labels == c).flatten()
                kept.append(sel[nms(boxes[sel].cpu(), scores[sel].cpu(), nms_threshold)])
            order = torch.cat(kept)
            boxes, scores, labels = boxes[order], scores[order], labels[order]
        out.append(Detections(boxes.cpu(), scores.cpu(), labels.cpu()))
    return out


def average_precision(scores: Sequence[float], is_tp: Sequence[bool], num_gt: int) -> float:
    """VOC all-point interpolated AP (VOC 2010+): area under the monotone precision envelope.

    Args:
        scores: confidence of each detection (any order).
        is_tp: whether each detection matched a ground truth.
        num_gt: number of ground-truth objects; AP is NaN when it is 0.
    """
    if num_gt <= 0:
        return float("nan")
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(is_tp, dtype=bool)
    if s.size == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(t[order])
    fp = np.cumsum(~t[order])
    recall = tp / num_gt
    precision = tp / np.maximum(tp + fp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def detection_ap(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[Tensor, Tensor]],
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """Per-class AP (percent) at ``iou_threshold`` and their mean over classes with objects.

    Detections of a class are visited from the highest score down over all images; each is a
    true positive if its best-IoU unmatched ground truth of that class in the same image
    reaches the threshold (greedy VOC matching), else a false positive.

    Args:
        detections: per image.
        ground_truth: per image, ``(boxes N x 4, labels N)``; labels below 0 are padding.

    Returns:
        ``{"AP50": mean, "AP50.<c>": per class}``.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    out: dict[str, float] = {}
    aps = []
    for c in range(num_classes):
        recs: list[tuple[float, int, int]] = []  # (score, image, det index)
        gts = []
        num_gt = 0
        for img, (det, (gb, gl)) in enumerate(zip(detections, ground_truth, strict=True)):
            g = gb[gl == c].float()
            gts.append(g)
            num_gt += g.shape[0]
            for j in torch.nonzero(det.labels == c).flatten().tolist():
                recs.append((float(det.scores[j]), img, j))
        recs.sort(key=lambda r: -r[0])
        used = [torch.zeros(g.shape[0], dtype=torch.bool) for g in gts]
        tps = []
        for _, img, j in recs:
            g = gts[img]
            ok = False
            if g.shape[0]:
                iou = box_iou(detections[img].boxes[j : j + 1].float(), g)[0]
                iou = torch.where(used[img], torch.full_like(iou, -1.0), iou)
                best = int(iou.argmax())
                if iou[best] >= iou_threshold:
                    used[img][best] = True
                    ok = True
            tps.append(ok)
        ap = average_precision([r[0] for r in recs], tps, num_gt)
        out[f"AP50.{c}"] = 100.0 * ap
        if num_gt > 0:
            aps.append(ap)
    out["AP50"] = 100.0 * float(np.mean(aps)) if aps else float("nan")
    return out


@dataclass
class DetectionAccumulator:
    """Streaming AP@0.5 of a centre heat-map detector.

    ``update(output, target)`` takes the model output (``heatmap`` logits ``B x K x h x w`` and
    box maps, see :func:`decode_centers`) and the target dict (``boxes`` ``B x M x 4`` in input
    cells, ``labels`` ``B x M`` with -1 padding).
    """

    num_classes: int
    input_size: tuple[int, int]
    iou_threshold: float = 0.5
    max_detections: int = 50
    score_threshold: float = 0.01
    detections: list[Detections] = field(default_factory=list)
    ground_truth: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    def update(self, output: tuple[Tensor, Tensor], target: dict[str, Tensor]) -> None:
        heatmap, regression = output
        stride = self.input_size[0] / heatmap.shape[-2]
        dets = decode_centers(
            heatmap.float().sigmoid(),
            regression,
            stride=stride,
            max_detections=self.max_detections,
            score_threshold=self.score_threshold,
        )
        self.detections += dets
        for boxes, labels in zip(target["boxes"], target["labels"], strict=True):
            keep = labels >= 0
            self.ground_truth.append((boxes[keep].cpu().float(), labels[keep].cpu()))

    def compute(self) -> dict[str, float]:
        res = detection_ap(
            self.detections,
            self.ground_truth,
            self.num_classes,
            iou_threshold=self.iou_threshold,
        )
        return res
