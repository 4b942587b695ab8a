"""What every dataset of the trainers shares: :class:`DatasetInfo`, the base class that
carries it, split names and the seeded generators the splits are drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = [
    "BEV_CLASSES",
    "IGNORE_INDEX",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "SPLIT_KEY",
    "DatasetInfo",
    "InfoDataset",
    "check_split",
    "seeded_rng",
    "subset_size",
]

SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
BEV_CLASSES = ("car", "pedestrian", "cyclist")
IGNORE_INDEX = 255


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


class InfoDataset(Dataset[Any]):
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


def check_split(split: str) -> None:
    """Refuse a split other than ``train`` and ``val``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def seeded_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator fixed by ``seed`` and the stream ``keys`` (a split, a dataset)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


SPLIT_KEY = {"train": 1, "val": 2}


def subset_size(size: int | None, default: int, available: int | None = None) -> int:
    """``size`` samples (``default`` when ``None``), at most ``available``."""
    n = default if size is None else int(size)
    if n < 1:
        raise ValueError(f"size must be a positive number of samples, got {size!r}")
    return n if available is None else min(n, available)
