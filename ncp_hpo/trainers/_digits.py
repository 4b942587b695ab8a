"""The embedded datasets built from scikit-learn's 1,797 handwritten digit scans:
``digits-cls``, ``digits-seg`` and ``digits-video`` (see :mod:`ncp_hpo.trainers.datasets`)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ncp_hpo.trainers._dataset_common import (
    IGNORE_INDEX,
    SPLIT_KEY,
    InfoDataset,
    check_split,
    seeded_rng,
    subset_size,
)

__all__ = ["DigitsClassification", "DigitsSegmentation", "DigitsVideo"]

_DIRECTIONS_8 = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
_DIRECTIONS_4 = ((1, 0), (0, 1), (-1, 0), (0, -1))
_DIRECTION_NAMES_8 = ("E", "SE", "S", "SW", "W", "NW", "N", "NE")
_DIRECTION_NAMES_4 = ("E", "S", "W", "N")


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
    rng = seeded_rng(seed, 0)
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


class _GreyImages(InfoDataset):
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
        check_split(split)
        images, labels = _digits()
        pool = _digit_pool(split, seed)
        pool = pool[seeded_rng(seed, SPLIT_KEY[split], 1).permutation(pool.size)]
        pool = pool[: subset_size(size, pool.size, pool.size)]
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
        check_split(split)
        if image_size < 16:
            raise ValueError(f"digits-seg needs image_size >= 16, got {image_size}")
        n = subset_size(size, 384 if split == "train" else 96)
        scans, labels = _digits()
        pool = _digit_pool(split, seed)
        rng = seeded_rng(seed, SPLIT_KEY[split], 2)
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
        check_split(split)
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
        n = subset_size(size, 384 if split == "train" else 96)
        n += n % 2
        scans, _ = _digits()
        pool = _digit_pool(split, seed)
        rng = seeded_rng(seed, SPLIT_KEY[split], 3)
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
