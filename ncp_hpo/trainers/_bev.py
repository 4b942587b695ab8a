"""The embedded ``bev-det`` dataset: synthetic bird's-eye-view scenes of boxes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.trainers._dataset_common import (
    BEV_CLASSES,
    SPLIT_KEY,
    InfoDataset,
    check_split,
    seeded_rng,
    subset_size,
)

__all__ = ["BevDetection"]


# Per class: (width range, length range) in grid cells at 64 cells, point height range (m),
# mean intensity. Sizes scale with the grid.
_BEV_SHAPES = {
    "car": ((6, 8), (10, 14), (0.2, 1.6), 0.75),
    "pedestrian": ((2, 3), (2, 3), (0.2, 1.8), 0.3),
    "cyclist": ((2, 3), (5, 7), (0.2, 1.7), 0.5),
}


class BevDetection(InfoDataset):
    """``bev-det``: synthetic bird's-eye-view scenes of axis-aligned boxes of 3 classes.

    Each scene is a point cloud rasterised to a ``3 x S x S`` grid: channel 0 occupancy
    (points per cell / 4, capped at 1), 1 the highest point (/2 m), 2 the mean intensity.
    Objects are sparse points inside non-overlapping boxes, a car long and wide, a
    pedestrian small and square, a cyclist thin and long, each with its own height and
    intensity profile; scenes add ground clutter points and 1-3 clutter blobs (bushes).

    Targets are dicts with ``boxes`` ``M x 4`` (``x1, y1, x2, y2`` in grid cells, x = column)
    and ``labels`` ``M`` (class index, -1 = padding), ``M = max_objects``, so the default
    ``DataLoader`` collate works.

    Args:
        split, seed: as :class:`DigitsClassification` (scenes of the two splits come from
            different random streams).
        image_size: grid side ``S``.
        size: number of scenes (default 256 train, 64 val).
        objects: ``(min, max)`` objects per scene.
        max_objects: padding length ``M`` of the targets.
        density: object points per cell of box area.
    """

    name = "bev-det"
    task = "bev-det"
    num_classes = len(BEV_CLASSES)
    in_channels = 3
    class_names = BEV_CLASSES

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 64,
        seed: int = 0,
        size: int | None = None,
        objects: tuple[int, int] = (2, 6),
        max_objects: int = 8,
        density: float = 0.7,
    ) -> None:
        check_split(split)
        if image_size < 32:
            raise ValueError(f"bev-det needs image_size >= 32, got {image_size}")
        if objects[1] > max_objects:
            raise ValueError(f"objects {objects} exceed max_objects={max_objects}")
        n = subset_size(size, 256 if split == "train" else 64)
        rng = seeded_rng(seed, SPLIT_KEY[split], 4)
        grids = np.zeros((n, 3, image_size, image_size), dtype=np.float32)
        boxes = np.zeros((n, max_objects, 4), dtype=np.float32)
        labels = np.full((n, max_objects), -1, dtype=np.int64)
        for i in range(n):
            grids[i] = _scene(
                rng,
                image_size=image_size,
                objects=objects,
                density=density,
                boxes=boxes[i],
                labels=labels[i],
            )
        # Compact the boxes of each scene to the front (skipped placements leave holes).
        order = np.argsort(labels < 0, axis=1, kind="stable")
        labels = np.take_along_axis(labels, order, axis=1)
        boxes = np.take_along_axis(boxes, order[..., None], axis=1)
        self.grids = torch.from_numpy(grids)
        self.boxes = torch.from_numpy(boxes)
        self.labels = torch.from_numpy(labels)
        self.input_size = (image_size, image_size)

    def __len__(self) -> int:
        return int(self.grids.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.grids[i], {"boxes": self.boxes[i], "labels": self.labels[i]}


Box = tuple[float, float, float, float]


def _place(
    rng: np.random.Generator, cls: int, image_size: int, taken: list[Box]
) -> tuple[Box, float, float] | None:
    """A box of class ``cls`` clear of the ``taken`` ones (20 tries), with its width and
    length; ``None`` when none fits."""
    (wl, wh), (ll, lh), _, _ = _BEV_SHAPES[BEV_CLASSES[cls]]
    scale = image_size / 64.0
    for _ in range(20):
        w = rng.uniform(wl, wh) * scale
        length = rng.uniform(ll, lh) * scale
        if rng.random() < 0.5:
            w, length = length, w
        x1 = rng.uniform(1, image_size - 1 - w)
        y1 = rng.uniform(1, image_size - 1 - length)
        box = (x1, y1, x1 + w, y1 + length)
        if all(
            box[2] + 1 <= b[0] or b[2] + 1 <= box[0] or box[3] + 1 <= b[1] or b[3] + 1 <= box[1]
            for b in taken
        ):
            return box, w, length
    return None


def _points(rng: np.random.Generator, k: int, x: Any, y: Any, z: Any) -> np.ndarray:
    """``k x 3`` points uniform in the ``(low, high)`` ranges ``x``, ``y``, ``z`` (drawn
    in that order); the caller draws the intensity column next."""
    return np.stack(
        [rng.uniform(x[0], x[1], k), rng.uniform(y[0], y[1], k), rng.uniform(z[0], z[1], k)], axis=1
    )


def _with(xyz: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    return np.column_stack([xyz, intensity])


def _scene(
    rng: np.random.Generator,
    *,
    image_size: int,
    objects: tuple[int, int],
    density: float,
    boxes: np.ndarray,
    labels: np.ndarray,
) -> np.ndarray:
    """One scene: objects written to ``boxes``/``labels`` (``M x 4``, ``M``), clutter
    around them; the ``3 x S x S`` grid."""
    pts: list[np.ndarray] = []  # rows: x, y, z, intensity
    taken: list[Box] = []
    for m in range(int(rng.integers(objects[0], objects[1] + 1))):
        c = int(rng.integers(len(BEV_CLASSES)))
        placed = _place(rng, c, image_size, taken)
        if placed is None:
            continue
        box, w, length = placed
        taken.append(box)
        boxes[m] = box
        labels[m] = c
        _, _, z, inten = _BEV_SHAPES[BEV_CLASSES[c]]
        k = max(4, int(rng.poisson(density * w * length)))
        xyz = _points(rng, k, (box[0], box[2]), (box[1], box[3]), z)
        pts.append(_with(xyz, np.clip(rng.normal(inten, 0.08, k), 0, 1)))
    k = int(rng.poisson(0.02 * image_size * image_size))
    xyz = _points(rng, k, (0, image_size), (0, image_size), (0.0, 0.3))
    pts.append(_with(xyz, rng.uniform(0, 1, k)))
    scale = image_size / 64.0
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(1.5, 3.0) * scale
        cx, cy = rng.uniform(r, image_size - r, 2)
        k = int(rng.poisson(density * r * r * 2))
        xyz = _points(rng, k, (cx - r, cx + r), (cy - r, cy + r), (0.0, 1.0))
        pts.append(_with(xyz, rng.uniform(0.1, 0.4, k)))
    return _rasterise(np.concatenate(pts), image_size)


def _rasterise(pts: np.ndarray, size: int) -> np.ndarray:
    """Points ``P x 4`` (x, y, z, intensity) -> ``3 x size x size`` occupancy/height/intensity."""
    xi = np.clip(pts[:, 0].astype(np.int64), 0, size - 1)
    yi = np.clip(pts[:, 1].astype(np.int64), 0, size - 1)
    flat = yi * size + xi
    count = np.bincount(flat, minlength=size * size).astype(np.float32)
    height = np.zeros(size * size, dtype=np.float32)
    np.maximum.at(height, flat, pts[:, 2].astype(np.float32))
    inten = np.bincount(flat, weights=pts[:, 3], minlength=size * size).astype(np.float32)
    inten = np.divide(inten, count, out=np.zeros_like(inten), where=count > 0)
    out = np.stack([np.minimum(count / 4.0, 1.0), height / 2.0, inten])
    return out.reshape(3, size, size)
