"""Metric code against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncp_hpo.trainers.detection import encode_targets, focal_loss
from ncp_hpo.trainers.metrics import (
    ConfusionAccumulator,
    DetectionAccumulator,
    Detections,
    TopKAccumulator,
    average_precision,
    box_iou,
    confusion_matrix,
    decode_centers,
    detection_ap,
    nms,
    segmentation_scores,
    topk_correct,
)


def test_topk_counts_by_hand() -> None:
    logits = torch.tensor([[0.1, 0.5, 0.2, 0.9], [0.8, 0.1, 0.7, 0.0], [0.2, 0.3, 0.4, 0.1]])
    target = torch.tensor([3, 2, 3])
    # ranks of the targets: 1, 2, 4
    assert topk_correct(logits, target, (1, 2, 3, 5)) == {1: 1, 2: 2, 3: 2, 5: 3}
    acc = TopKAccumulator((1, 5))
    acc.update(logits[:2], target[:2])
    acc.update(logits[2:], target[2:])
    assert acc.compute() == pytest.approx({"top1": 100 / 3, "top5": 100.0})


def test_topk_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="B x K"):
        topk_correct(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_segmentation_scores_of_a_known_matrix() -> None:
    # rows = ground truth, columns = prediction
    cm = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
    s = segmentation_scores(cm)
    # IoU = TP / (gt + pred - TP): 3/5, 2/5, 1/4; Acc = TP / gt: 3/4, 2/4, 1/2
    assert s["mIoU"] == pytest.approx(100 * (0.6 + 0.4 + 0.25) / 3)
    assert s["mAcc"] == pytest.approx(100 * (0.75 + 0.5 + 0.5) / 3)
    assert s["aAcc"] == pytest.approx(60.0)
    assert s["IoU.2"] == pytest.approx(25.0)


def test_segmentation_scores_skip_undefined_classes() -> None:
    # class 2 absent from ground truth and prediction: no IoU, no Acc
    s = segmentation_scores(np.array([[2, 1, 0], [1, 2, 0], [0, 0, 0]]))
    assert s["mIoU"] == pytest.approx(50.0)
    assert math.isnan(s["IoU.2"])
    # class 2 predicted but absent from ground truth: IoU 0 counts, Acc is undefined
    s = segmentation_scores(np.array([[2, 0, 1], [0, 2, 0], [0, 0, 0]]))
    assert s["mIoU"] == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)
    assert s["mAcc"] == pytest.approx(100 * (2 / 3 + 1) / 2)


def test_confusion_matrix_and_accumulator_ignore_pixels() -> None:
    target = torch.tensor([[0, 0, 1, 255], [2, 1, 1, 0]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 2, 1, 0]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]
    logits = torch.nn.functional.one_hot(pred, 3).permute(2, 0, 1)[None].float()
    acc = ConfusionAccumulator(3)
    acc.update(logits, target[None])
    assert acc.compute()["aAcc"] == pytest.approx(100 * 5 / 7)


def test_box_iou_and_nms() -> None:
    a = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10]])
    iou = box_iou(a, a)
    assert iou[0, 1] == pytest.approx(90 / 110)
    assert torch.allclose(iou.diagonal(), torch.ones(2))
    keep = nms(torch.cat([a, torch.tensor([[50.0, 50, 60, 60]])]), torch.tensor([0.9, 0.8, 0.7]))
    assert keep.tolist() == [0, 2]


def test_average_precision_voc_all_point_by_hand() -> None:
    # TP, FP, TP, FP with 3 objects: precision envelope 1 on [0, 1/3], 2/3 on [1/3, 2/3]
    ap = average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3)
    assert ap == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision([], [], 2) == 0.0
    assert math.isnan(average_precision([0.5], [False], 0))


def test_detection_ap_greedy_matching_by_hand() -> None:
    box = torch.tensor
    dets = [
        Detections(  # image A
            boxes=box([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 5, 5]]),
            scores=box([0.9, 0.8, 0.6, 0.5]),
            labels=box([0, 0, 0, 2]),
        ),
        Detections(boxes=box([[0.0, 0, 10, 10]]), scores=box([0.7]), labels=box([0])),  # B
    ]
    gts = [
        (box([[0.0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 9, 9]]), box([0, 0, 1])),
        (box([[0.0, 0, 10, 10]]), box([0])),
    ]
    # class 0: d(0.9) TP, d(0.8) duplicate FP, d(0.7) TP in B, d(0.6) FP; 3 objects -> 5/9
    # class 1: one object, no detection -> 0; class 2: no object -> NaN, left out of the mean
    out = detection_ap(dets, gts, 3)
    assert out["AP50.0"] == pytest.approx(100 * 5 / 9)
    assert out["AP50.1"] == 0.0
    assert math.isnan(out["AP50.2"])
    assert out["AP50"] == pytest.approx(100 * 5 / 18)


def test_decode_centers_by_hand() -> None:
    heat = torch.zeros(1, 2, 6, 8)
    heat[0, 1, 2, 3] = 0.9
    heat[0, 1, 2, 4] = 0.5  # a neighbour, not a peak
    reg = torch.zeros(1, 6, 6, 8)
    reg[0, :4, 2, 3] = torch.tensor([0.5, 0.25, math.log(2), math.log(4)])
    (d,) = decode_centers(heat, reg, stride=4, score_threshold=0.1)
    assert d.labels.tolist() == [1]
    assert d.scores.tolist() == pytest.approx([0.9])
    # centre (3.5, 2.25) cells * 4 = (14, 9); size (2, 4) cells * 4 = (8, 16)
    assert d.boxes[0].tolist() == pytest.approx([10.0, 1.0, 18.0, 17.0])


def test_encoded_targets_decode_to_perfect_ap() -> None:
    boxes = torch.tensor(
        [
            [[4.0, 4, 12, 20], [30, 40, 33, 43], [0, 0, 0, 0]],
            [[40.0, 8, 47, 14], [0, 0, 0, 0], [0, 0, 0, 0]],
        ]
    )
    labels = torch.tensor([[0, 1, -1], [2, -1, -1]])
    heat, index, reg, valid = encode_targets(boxes, labels, 3, (16, 16), 4.0)
    assert heat.shape == (2, 3, 16, 16)
    assert int(heat.eq(1).sum()) == 3  # one exact peak per object
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    maps = torch.zeros(2, 6, 16 * 16)
    for b in range(2):
        for m in range(3):
            if valid[b, m]:
                maps[b, :4, index[b, m]] = reg[b, m]
    acc = DetectionAccumulator(3, (64, 64))
    acc.update((logits, maps.view(2, 6, 16, 16)), {"boxes": boxes, "labels": labels})
    assert acc.compute()["AP50"] == pytest.approx(100.0)
    # the focal loss is small for the perfect map and large for an empty one
    assert focal_loss(logits, heat) < 0.05 < focal_loss(torch.full_like(logits, -2.0), heat)
