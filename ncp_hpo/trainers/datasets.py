"""Offline datasets for real training trials, and adapters for the user's own data.

The embedded defaults need no download. Three are built from scikit-learn's bundled
handwritten digits (:func:`sklearn.datasets.load_digits`: 1,797 real 8x8 scans of the
digits 0-9); the fourth is a synthetic bird's-eye-view scene set:

============== ====== =========================================== ==================
name           task   sample                                      classes
============== ====== =========================================== ==================
digits-cls     cls    ``C x S x S`` upsampled digit (S=32)        10 digits
digits-seg     seg    ``C x S x S`` canvas of 2-4 digits (S=64),  11: background (0),
                      ``S x S`` mask of thresholded digit pixels  digit d -> d + 1
digits-video   video  ``C x T x S x S`` clip (T=8, S=32) of a     8 directions (or 4)
                      digit moving in a straight line
bev-det        bev-det ``3 x S x S`` BEV grid (S=64): occupancy,   3: car, pedestrian,
                      max height, mean intensity of sparse points cyclist
                      in boxes plus clutter; boxes ``M x 4`` and
                      labels ``M`` (-1 = padding)
============== ====== =========================================== ==================

Splits are deterministic functions of ``seed``: the 1,797 scans are split per class 80/20
into a train and a val pool first, and the val split of every dataset is made only from the
val pool, so no scan appears in both splits. Video clips come in pairs: a clip and its
time reversal, which has the opposite direction, so every frame (and every set of frames)
occurs under two labels and only the order of the frames tells the direction.

Inputs are ``float32`` scaled to ``[-1, 1]`` (digits) or ``[0, 1]`` (BEV channels);
digit images are grey scans repeated over ``channels`` (3 by default, for RGB stems).

User data:

* any map-style dataset returning ``(image tensor, target)`` (e.g. a torchvision dataset
  with a ``ToTensor`` transform): wrap it with :class:`DatasetAdapter` to attach the task
  metadata the trainers read (``task``, ``num_classes``, ``in_channels``), or pass it to a
  ``DataLoader`` directly and give ``num_classes`` to the trainer;
* an image folder for classification, ``root/<class name>/*.png|jpg`` (optionally
  ``root/train/...`` and ``root/val/...``): :class:`ImageFolderClassification`;
* an image folder for segmentation, ``root/images/<stem>.png|jpg`` with
  ``root/masks/<stem>.png`` (one class index per pixel, 255 = ignore; optionally under
  ``root/train`` and ``root/val``): :class:`ImageFolderSegmentation`.

``get_dataset(path, split, task="cls"|"seg")`` opens a folder the same way as a name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ncp_hpo.exceptions import NCPError

__all__ = [
    "BEV_CLASSES",
    "DATASETS",
    "BevDetection",
    "DatasetAdapter",
    "DatasetInfo",
    "DigitsClassification",
    "DigitsSegmentation",
    "DigitsVideo",
    "ImageFolderClassification",
    "ImageFolderSegmentation",
    "dataset_info",
    "get_dataset",
    "make_loaders",
]

SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
BEV_CLASSES = ("car", "pedestrian", "cyclist")
IGNORE_INDEX = 255
_DIRECTIONS_8 = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
_DIRECTIONS_4 = ((1, 0), (0, 1), (-1, 0), (0, -1))
_DIRECTION_NAMES_8 = ("E", "SE", "S", "SW", "W", "NW", "N", "NE")
_DIRECTION_NAMES_4 = ("E", "S", "W", "N")


@dataclass(frozen=True)
class DatasetInfo:
    """What a trainer needs to know about a dataset to build a model and its loss."""

    name: str
    task: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    class_names: tuple[str, ...]
    frames: int | None = None
    flip_invariant: bool = True
    """Mirrored inputs keep their labels (false for digits and motion directions)."""
    class_weights: tuple[float, ...] | None = None
    """Suggested per-class loss weights (segmentation), or ``None`` for uniform."""


class _InfoDataset(Dataset[Any]):
    """A map-style dataset that also carries :class:`DatasetInfo` attributes."""

    name: str = ""
    task: str = ""
    num_classes: int = 0
    in_channels: int = 3
    input_size: tuple[int, int] = (0, 0)
    class_names: tuple[str, ...] = ()
    frames: int | None = None
    flip_invariant: bool = True
    class_weights: tuple[float, ...] | None = None

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(
            name=self.name,
            task=self.task,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
            class_names=self.class_names,
            frames=self.frames,
            flip_invariant=self.flip_invariant,
            class_weights=self.class_weights,
        )

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, task={self.task!r}, len={len(self)})"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


_SPLIT_KEY = {"train": 1, "val": 2}


# -- the digit scans -----------------------------------------------------------------------
@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scans as float32 ``N x 8 x 8`` in ``[0, 1]`` and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (np.asarray(d.images, dtype=np.float32) / 16.0).clip(0, 1)
    images.flags.writeable = False
    labels = np.asarray(d.target, dtype=np.int64)
    labels.flags.writeable = False
    return images, labels


def _digit_pool(split: str, seed: int, val_fraction: float = 0.2) -> np.ndarray:
    """Indices of the scans of ``split``: a per-class ``val_fraction`` split, fixed by ``seed``."""
    _, labels = _digits()
    rng = _rng(seed, 0)
    train, val = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        k = round(val_fraction * idx.size)
        val.append(idx[:k])
        train.append(idx[k:])
    out = np.concatenate(train if split == "train" else val)
    return np.sort(out)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of ``N x 8 x 8`` scans to ``N x size x size``, clipped to ``[0, 1]``."""
    t = torch.from_numpy(np.ascontiguousarray(images))[:, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0].clamp(0, 1).numpy()


def _subset_size(size: int | None, default: int, available: int | None = None) -> int:
    n = default if size is None else int(size)
    if n < 1:
        raise ValueError(f"size must be a positive number of samples, got {size!r}")
    return n if available is None else min(n, available)


class _GreyImages(_InfoDataset):
    """Stored ``N x H x W`` (or ``N x T x H x W``) grey images in ``[0, 1]`` + targets."""

    flip_invariant = False  # a mirrored digit is not that digit; a mirrored motion flips

    def __init__(self, images: np.ndarray, targets: Tensor, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.targets = targets
        self.in_channels = channels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _image(self, i: int) -> Tensor:
        x = self.images[i] * 2.0 - 1.0
        return x.unsqueeze(0).expand(self.in_channels, *x.shape).contiguous()

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self._image(i), self.targets[i]


class DigitsClassification(_GreyImages):
    """``digits-cls``: one upsampled scan per sample, label = the digit.

    Args:
        split: ``"train"`` (1,437 scans) or ``"val"`` (360).
        image_size: side ``S`` of the square image.
        seed: fixes the split.
        size: use only the first ``size`` samples (a seeded subset).
        channels: repetitions of the grey channel.
    """

    name = "digits-cls"
    task = "cls"
    num_classes = 10
    class_names = tuple(str(d) for d in range(10))

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 32,
        seed: int = 0,
        size: int | None = None,
        channels: int = 3,
    ) -> None:
        _check_split(split)
        images, labels = _digits()
        pool = _digit_pool(split, seed)
        pool = pool[_rng(seed, _SPLIT_KEY[split], 1).permutation(pool.size)]
        pool = pool[: _subset_size(size, pool.size, pool.size)]
        super().__init__(
            _resize(images[pool], image_size), torch.from_numpy(labels[pool]), channels
        )
        self.input_size = (image_size, image_size)


class DigitsSegmentation(_GreyImages):
    """``digits-seg``: canvases with 2-4 digits at random places and sizes.

    The mask is 0 for background and ``d + 1`` where a digit ``d``'s upsampled scan exceeds
    ``threshold``; a later digit overwrites an earlier one where they overlap, and canvas
    pixels are the maximum of the digits, so ``mask > 0`` exactly where the canvas (in
    ``[0, 1]``) exceeds ``threshold``.

    Background covers ~89% of the pixels, so the dataset suggests class weights for the
    cross-entropy (:attr:`class_weights`: square root of median-frequency balancing over its
    masks, as HRNet's Cityscapes recipe weights its classes); without them SGD needs far more
    steps than a short trial has before it predicts any digit pixel.

    Args:
        split, seed, channels: as :class:`DigitsClassification`.
        image_size: canvas side ``S``; digits are ``S/4 .. 3S/8`` pixels tall.
        size: number of canvases (default 384 train, 96 val).
        digits: ``(min, max)`` digits per canvas.
        digit_size: ``(min, max)`` digit height as a fraction of ``S``.
        threshold: pixel level (in ``[0, 1]``) above which a digit pixel is labelled.
    """

    name = "digits-seg"
    task = "seg"
    num_classes = 11
    class_names = ("background", *(str(d) for d in range(10)))
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 64,
        seed: int = 0,
        size: int | None = None,
        channels: int = 3,
        digits: tuple[int, int] = (2, 4),
        digit_size: tuple[float, float] = (0.25, 0.375),
        threshold: float = 0.4,
    ) -> None:
        _check_split(split)
        if image_size < 16:
            raise ValueError(f"digits-seg needs image_size >= 16, got {image_size}")
        n = _subset_size(size, 384 if split == "train" else 96)
        scans, labels = _digits()
        pool = _digit_pool(split, seed)
        rng = _rng(seed, _SPLIT_KEY[split], 2)
        lo, hi = (max(round(f * image_size), 8) for f in digit_size)
        resized = {s: _resize(scans[pool], s) for s in range(lo, hi + 1)}
        canvas = np.zeros((n, image_size, image_size), dtype=np.float32)
        masks = np.zeros((n, image_size, image_size), dtype=np.int64)
        for i in range(n):
            placed: list[tuple[int, int, int]] = []
            for _ in range(int(rng.integers(digits[0], digits[1] + 1))):
                j = int(rng.integers(pool.size))
                s = int(rng.integers(lo, hi + 1))
                # A few tries for a place that does not overlap the digits already placed.
                for _ in range(10):
                    y, x = (int(v) for v in rng.integers(0, image_size - s + 1, size=2))
                    if all(
                        y + s <= py or py + ps <= y or x + s <= px or px + ps <= x
                        for py, px, ps in placed
                    ):
                        break
                placed.append((y, x, s))
                d = resized[s][j]
                win = canvas[i, y : y + s, x : x + s]
                np.maximum(win, d, out=win)
                masks[i, y : y + s, x : x + s][d > threshold] = int(labels[pool[j]]) + 1
        super().__init__(canvas, torch.from_numpy(masks), channels)
        self.input_size = (image_size, image_size)
        self.threshold = threshold
        freq = np.bincount(masks.ravel(), minlength=self.num_classes).astype(np.float64)
        freq = np.maximum(freq / freq.sum(), 1e-6)
        self.class_weights = tuple(float(w) for w in np.sqrt(np.median(freq) / freq))


class DigitsVideo(_GreyImages):
    """``digits-video``: clips of a digit moving in a straight line; label = direction.

    Clips come in pairs, a clip and its time reversal (the opposite direction), so the frames
    of a clip occur under two labels: no single frame, and no unordered set of frames, tells
    the direction; only their order does. Direction ``k`` of ``directions=8`` is
    ``E, SE, S, SW, W, NW, N, NE`` (image coordinates, y down); of ``directions=4``
    ``E, S, W, N``.

    Args:
        split, seed, channels: as :class:`DigitsClassification`.
        image_size: frame side ``S``; the digit is ``3S/8`` pixels.
        size: number of clips, rounded up to even (default 384 train, 96 val).
        frames: clip length ``T``.
        directions: 8 or 4.
        speed: pixels per frame along each moving axis (default: as fast as fits).
    """

    name = "digits-video"
    task = "video"

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int = 32,
        seed: int = 0,
        size: int | None = None,
        channels: int = 3,
        frames: int = 8,
        directions: int = 8,
        speed: int | None = None,
    ) -> None:
        _check_split(split)
        if directions not in (4, 8):
            raise ValueError(f"directions must be 4 or 8, got {directions}")
        if frames < 2:
            raise ValueError(f"a clip needs at least 2 frames, got {frames}")
        dirs = _DIRECTIONS_8 if directions == 8 else _DIRECTIONS_4
        s = max(3 * image_size // 8, 4)
        room = image_size - s
        v = room // (frames - 1) if speed is None else int(speed)
        if v < 1 or v * (frames - 1) > room:
            raise ValueError(
                f"a {s}-pixel digit moving {v} px/frame for {frames} frames does not fit a "
                f"{image_size}-pixel frame; lower frames or speed, or raise image_size"
            )
        n = _subset_size(size, 384 if split == "train" else 96)
        n += n % 2
        scans, _ = _digits()
        pool = _digit_pool(split, seed)
        rng = _rng(seed, _SPLIT_KEY[split], 3)
        small = _resize(scans[pool], s)
        clips = np.zeros((n, frames, image_size, image_size), dtype=np.float32)
        labels = np.zeros(n, dtype=np.int64)
        half = directions // 2
        for i in range(0, n, 2):
            k = int(rng.integers(half))  # the pair {k, k + half} of opposite directions
            dx, dy = dirs[k]
            span = v * (frames - 1)
            x0 = int(rng.integers(0, room - span * abs(dx) + 1)) + (span if dx < 0 else 0)
            y0 = int(rng.integers(0, room - span * abs(dy) + 1)) + (span if dy < 0 else 0)
            d = small[int(rng.integers(pool.size))]
            for t in range(frames):
                x, y = x0 + dx * v * t, y0 + dy * v * t
                clips[i, t, y : y + s, x : x + s] = d
            clips[i + 1] = clips[i, ::-1]
            labels[i], labels[i + 1] = k, k + half
        super().__init__(clips, torch.from_numpy(labels), channels)
        self.input_size = (image_size, image_size)
        self.frames = frames
        self.num_classes = directions
        self.class_names = _DIRECTION_NAMES_8 if directions == 8 else _DIRECTION_NAMES_4
        self.directions = dirs


# Per class: (width range, length range) in grid cells at 64 cells, point height range (m),
# mean intensity. Sizes scale with the grid.
_BEV_SHAPES = {
    "car": ((6, 8), (10, 14), (0.2, 1.6), 0.75),
    "pedestrian": ((2, 3), (2, 3), (0.2, 1.8), 0.3),
    "cyclist": ((2, 3), (5, 7), (0.2, 1.7), 0.5),
}


class BevDetection(_InfoDataset):
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
        _check_split(split)
        if image_size < 32:
            raise ValueError(f"bev-det needs image_size >= 32, got {image_size}")
        if objects[1] > max_objects:
            raise ValueError(f"objects {objects} exceed max_objects={max_objects}")
        n = _subset_size(size, 256 if split == "train" else 64)
        rng = _rng(seed, _SPLIT_KEY[split], 4)
        scale = image_size / 64.0
        grids = np.zeros((n, 3, image_size, image_size), dtype=np.float32)
        boxes = np.zeros((n, max_objects, 4), dtype=np.float32)
        labels = np.full((n, max_objects), -1, dtype=np.int64)
        for i in range(n):
            pts: list[np.ndarray] = []  # rows: x, y, z, intensity
            taken: list[tuple[float, float, float, float]] = []
            for m in range(int(rng.integers(objects[0], objects[1] + 1))):
                c = int(rng.integers(self.num_classes))
                (wl, wh), (ll, lh), (zl, zh), inten = _BEV_SHAPES[BEV_CLASSES[c]]
                for _ in range(20):
                    w = rng.uniform(wl, wh) * scale
                    length = rng.uniform(ll, lh) * scale
                    if rng.random() < 0.5:
                        w, length = length, w
                    x1 = rng.uniform(1, image_size - 1 - w)
                    y1 = rng.uniform(1, image_size - 1 - length)
                    box = (x1, y1, x1 + w, y1 + length)
                    if all(
                        box[2] + 1 <= b[0]
                        or b[2] + 1 <= box[0]
                        or box[3] + 1 <= b[1]
                        or b[3] + 1 <= box[1]
                        for b in taken
                    ):
                        break
                else:
                    continue
                taken.append(box)
                boxes[i, m] = box
                labels[i, m] = c
                k = max(4, int(rng.poisson(density * w * length)))
                pts.append(
                    np.stack(
                        [
                            rng.uniform(box[0], box[2], k),
                            rng.uniform(box[1], box[3], k),
                            rng.uniform(zl, zh, k),
                            np.clip(rng.normal(inten, 0.08, k), 0, 1),
                        ],
                        axis=1,
                    )
                )
            k = int(rng.poisson(0.02 * image_size * image_size))
            pts.append(
                np.stack(
                    [
                        rng.uniform(0, image_size, k),
                        rng.uniform(0, image_size, k),
                        rng.uniform(0.0, 0.3, k),
                        rng.uniform(0, 1, k),
                    ],
                    axis=1,
                )
            )
            for _ in range(int(rng.integers(1, 4))):
                r = rng.uniform(1.5, 3.0) * scale
                cx, cy = rng.uniform(r, image_size - r, 2)
                k = int(rng.poisson(density * r * r * 2))
                pts.append(
                    np.stack(
                        [
                            rng.uniform(cx - r, cx + r, k),
                            rng.uniform(cy - r, cy + r, k),
                            rng.uniform(0.0, 1.0, k),
                            rng.uniform(0.1, 0.4, k),
                        ],
                        axis=1,
                    )
                )
            grids[i] = _rasterise(np.concatenate(pts), image_size)
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


# -- user data -----------------------------------------------------------------------------
class DatasetAdapter(_InfoDataset):
    """Wrap any map-style dataset of ``(image, target)`` pairs for the trainers.

    ``image`` may be a tensor (``C x H x W``, or ``C x T x H x W`` for video), a PIL image or
    a numpy ``H x W [x C]`` array; ``target`` an int, a tensor (a mask for segmentation), or a
    dict of tensors (detection). Nothing is copied: items are converted when read.

    Example:
        >>> import torchvision  # doctest: +SKIP
        >>> to_tensor = torchvision.transforms.ToTensor()  # doctest: +SKIP
        >>> cifar = torchvision.datasets.CIFAR10("data", transform=to_tensor)  # doctest: +SKIP
        >>> train = DatasetAdapter(cifar, task="cls", num_classes=10)  # doctest: +SKIP

    Args:
        dataset: an object with ``__getitem__`` and ``__len__``.
        task: ``"cls"``, ``"seg"``, ``"video"`` or ``"bev-det"``.
        num_classes: number of classes (segmentation: including background).
        transform: optional callable applied to each ``(image, target)`` after conversion.
        name: a label for logs.
        flip_invariant: whether mirrored images keep their targets (enables flips).
    """

    def __init__(
        self,
        dataset: Any,
        *,
        task: str,
        num_classes: int,
        transform: Callable[[Tensor, Any], tuple[Tensor, Any]] | None = None,
        name: str = "custom",
        flip_invariant: bool = True,
    ) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"{type(dataset).__name__} has no __getitem__/__len__")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.dataset = dataset
        self.task = task
        self.num_classes = int(num_classes)
        self.transform = transform
        self.name = name
        self.flip_invariant = flip_invariant
        self.class_names = tuple(getattr(dataset, "classes", ())) or tuple(
            str(c) for c in range(num_classes)
        )
        if len(dataset):
            x, _ = self[0]
            self.in_channels = int(x.shape[0])
            self.input_size = (int(x.shape[-2]), int(x.shape[-1]))
            if task == "video":
                self.frames = int(x.shape[1])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Tensor, Any]:
        image, target = self.dataset[i]
        x = _to_image_tensor(image)
        if isinstance(target, int | np.integer):
            target = torch.tensor(int(target), dtype=torch.long)
        elif isinstance(target, np.ndarray):
            target = torch.from_numpy(target).long()
        elif _is_pil(target):
            target = torch.from_numpy(np.array(target, dtype=np.int64))
        if self.transform is not None:
            x, target = self.transform(x, target)
        return x, target


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.")


def _to_image_tensor(image: Any) -> Tensor:
    if isinstance(image, Tensor):
        return image.float()
    if _is_pil(image):
        image = np.asarray(image)
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float32)
        if image.dtype == np.uint8:
            arr /= 255.0
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))
    raise TypeError(f"cannot turn a {type(image).__name__} into an image tensor")


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_image(path: Path, size: tuple[int, int], grayscale: bool) -> Tensor:
    from PIL import Image

    with Image.open(path) as src:
        im = src.convert("L" if grayscale else "RGB").resize(
            (size[1], size[0]), Image.Resampling.BILINEAR
        )
        arr = np.asarray(im, dtype=np.float32) / 255.0
    x = torch.from_numpy(arr[None] if grayscale else arr.transpose(2, 0, 1).copy())
    if grayscale:
        return (x - 0.5) / 0.5
    mean = torch.tensor(_IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _split_root(root: Path, split: str) -> tuple[Path, bool]:
    """``root/split`` when it exists (pre-split folder), else ``root`` and a seeded split."""
    if (root / split).is_dir():
        return root / split, False
    return root, True


def _seeded_split(n: int, split: str, seed: int, val_fraction: float) -> np.ndarray:
    perm = _rng(seed, 5).permutation(n)
    k = round(val_fraction * n)
    return np.sort(perm[:k] if split == "val" else perm[k:])


def _as_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


class ImageFolderClassification(_InfoDataset):
    """Classification images in class subfolders, read with PIL.

    ``root/<class>/<image>`` with ``.png``/``.jpg``/``.jpeg``/``.bmp`` files; class indices
    follow the sorted folder names. If ``root/train`` and ``root/val`` exist they are the
    splits, otherwise a seeded ``val_fraction`` of the images is the val split. Images are
    resized to ``image_size`` and normalised with ImageNet mean/std (RGB) or to ``[-1, 1]``
    (``grayscale=True``).
    """

    task = "cls"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: int | Sequence[int] = 64,
        seed: int = 0,
        val_fraction: float = 0.2,
        grayscale: bool = False,
        size: int | None = None,
    ) -> None:
        _check_split(split)
        base, resplit = _split_root(Path(root), split)
        classes = sorted(p.name for p in base.iterdir() if p.is_dir())
        if not classes:
            raise NCPError(f"no class subfolders in {base}; expected {base}/<class>/<image>.png")
        files = [
            (f, c)
            for c, name in enumerate(classes)
            for f in sorted((base / name).iterdir())
            if f.suffix.lower() in IMAGE_EXTENSIONS
        ]
        if not files:
            raise NCPError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {base}")
        if resplit:
            files = [files[i] for i in _seeded_split(len(files), split, seed, val_fraction)]
        if size is not None:
            files = files[: _subset_size(size, len(files), len(files))]
        self.files = files
        self.name = f"folder:{Path(root).name}"
        self.class_names = tuple(classes)
        self.num_classes = len(classes)
        self.in_channels = 1 if grayscale else 3
        self.input_size = _as_hw(image_size)
        self.grayscale = grayscale

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        path, c = self.files[i]
        return _load_image(path, self.input_size, self.grayscale), torch.tensor(c)


class ImageFolderSegmentation(_InfoDataset):
    """Segmentation pairs ``root/images/<stem>.<ext>`` + ``root/masks/<stem>.png``.

    A mask holds one class index per pixel (mode ``L`` or ``P``; 255 = ignore). Images are
    resized bilinearly, masks by nearest neighbour. ``num_classes`` defaults to the largest
    label found + 1 (reads every mask once). Splits as :class:`ImageFolderClassification`.
    """

    task = "seg"
    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: int | Sequence[int] = 64,
        seed: int = 0,
        val_fraction: float = 0.2,
        num_classes: int | None = None,
        grayscale: bool = False,
        size: int | None = None,
    ) -> None:
        _check_split(split)
        base, resplit = _split_root(Path(root), split)
        img_dir, mask_dir = base / "images", base / "masks"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise NCPError(f"expected {img_dir} and {mask_dir} folders")
        masks = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
        pairs = [
            (p, masks[p.stem])
            for p in sorted(img_dir.iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem in masks
        ]
        if not pairs:
            raise NCPError(f"no image/mask pairs with matching names in {img_dir} and {mask_dir}")
        if resplit:
            pairs = [pairs[i] for i in _seeded_split(len(pairs), split, seed, val_fraction)]
        if size is not None:
            pairs = pairs[: _subset_size(size, len(pairs), len(pairs))]
        self.pairs = pairs
        self.input_size = _as_hw(image_size)
        self.grayscale = grayscale
        self.in_channels = 1 if grayscale else 3
        self.name = f"folder:{Path(root).name}"
        if num_classes is None:
            top = 0
            for _, m in pairs:
                labels = np.unique(self._mask(m))
                labels = labels[labels != IGNORE_INDEX]
                top = max(top, int(labels.max()) if labels.size else 0)
            num_classes = top + 1
        self.num_classes = int(num_classes)
        self.class_names = tuple(str(c) for c in range(self.num_classes))

    def _mask(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as src:
            im = src if src.mode in ("L", "P", "I") else src.convert("L")
            im = im.resize((self.input_size[1], self.input_size[0]), Image.Resampling.NEAREST)
            return np.asarray(im, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        img, mask = self.pairs[i]
        x = _load_image(img, self.input_size, self.grayscale)
        return x, torch.from_numpy(self._mask(mask))


# -- registry ------------------------------------------------------------------------------
DATASETS: dict[str, type[_InfoDataset]] = {
    "digits-cls": DigitsClassification,
    "digits-seg": DigitsSegmentation,
    "digits-video": DigitsVideo,
    "bev-det": BevDetection,
}
"""Embedded dataset name -> class."""

DEFAULT_DATASET = {
    "cls": "digits-cls",
    "seg": "digits-seg",
    "video": "digits-video",
    "bev-det": "bev-det",
}
"""Task -> its embedded default dataset."""


def get_dataset(
    name: str | Path,
    split: str = "train",
    *,
    image_size: int | None = None,
    seed: int = 0,
    size: int | None = None,
    task: str | None = None,
    **kwargs: Any,
) -> _InfoDataset:
    """One split of an embedded dataset (by name) or of an image folder (by path).

    Args:
        name: a key of :data:`DATASETS` or a folder path (then ``task`` is ``"cls"``, the
            default, or ``"seg"``).
        split: ``"train"`` or ``"val"``.
        image_size: side of the (square) inputs; ``None`` keeps the dataset's default.
        seed: fixes the data and the split; the same seed gives the same tensors.
        size: number of samples (a deterministic subset or count).
        kwargs: dataset-specific options (see each class).
    """
    opts: dict[str, Any] = dict(kwargs, seed=seed, size=size)
    if image_size is not None:
        opts["image_size"] = image_size
    key = str(name)
    if key in DATASETS:
        if task is not None and DATASETS[key].task != task:
            raise ValueError(f"dataset {key!r} is for task {DATASETS[key].task!r}, not {task!r}")
        factory: Any = DATASETS[key]
        out: _InfoDataset = factory(split, **opts)
        return out
    path = Path(key)
    if path.is_dir():
        if task in (None, "cls"):
            return ImageFolderClassification(path, split, **opts)
        if task == "seg":
            return ImageFolderSegmentation(path, split, **opts)
        raise ValueError(f"image folders are for task 'cls' or 'seg', not {task!r}")
    raise NCPError(
        f"unknown dataset {key!r}: expected one of {sorted(DATASETS)} or an existing folder"
    )


def dataset_info(dataset: Any) -> DatasetInfo | None:
    """The :class:`DatasetInfo` of a dataset, a ``DataLoader`` over one, or ``None``."""
    ds = getattr(dataset, "dataset", dataset)
    while isinstance(ds, torch.utils.data.Subset):
        ds = ds.dataset
    info = getattr(ds, "info", None)
    return info if isinstance(info, DatasetInfo) else None


def make_loaders(
    train: str | Path | Dataset[Any],
    val: Dataset[Any] | None = None,
    *,
    batch_size: int = 32,
    seed: int = 0,
    image_size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    task: str | None = None,
    **dataset_kwargs: Any,
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Train and val ``DataLoader``s with seeded shuffling.

    ``train`` is a dataset name or folder (both splits are then made by :func:`get_dataset`
    with ``seed``, ``image_size`` and the sizes) or a dataset object (then ``val`` is
    required). The train loader shuffles with its own ``torch.Generator`` seeded from
    ``seed`` (worker seeds derive from it too), so batches repeat exactly run to run without
    touching the global RNG; the val loader keeps order.
    """
    train_ds: Dataset[Any]
    val_ds: Dataset[Any]
    if isinstance(train, str | Path):
        opts = dict(dataset_kwargs, seed=seed, image_size=image_size, task=task)
        train_ds = get_dataset(train, "train", size=train_size, **opts)
        val_ds = get_dataset(train, "val", size=val_size, **opts)
    else:
        if val is None:
            raise ValueError("make_loaders(dataset, val) needs the val dataset too")
        if dataset_kwargs or image_size is not None:
            raise ValueError("dataset options apply only when train is a dataset name or folder")
        train_ds, val_ds = train, val
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    gen = torch.Generator().manual_seed(int(seed))
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "pin_memory": pin,
        "persistent_workers": num_workers > 0,
    }
    # Drop a last partial batch (a batch of one breaks batch norm) unless it is the only one.
    drop = len(train_ds) > batch_size  # type: ignore[arg-type]
    train_loader = DataLoader(train_ds, shuffle=True, generator=gen, drop_last=drop, **common)
    val_loader = DataLoader(val_ds, shuffle=False, **common)
    return train_loader, val_loader
