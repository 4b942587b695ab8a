"""The user's own data for the trainers: any map-style dataset (:class:`DatasetAdapter`)
and image folders for classification and segmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.exceptions import NCPError
from ncp_hpo.trainers._dataset_common import (
    IGNORE_INDEX,
    IMAGE_EXTENSIONS,
    InfoDataset,
    check_split,
    seeded_rng,
    subset_size,
)

__all__ = ["DatasetAdapter", "ImageFolderClassification", "ImageFolderSegmentation"]


class DatasetAdapter(InfoDataset):
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
    perm = seeded_rng(seed, 5).permutation(n)
    k = round(val_fraction * n)
    return np.sort(perm[:k] if split == "val" else perm[k:])


def _as_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


class ImageFolderClassification(InfoDataset):
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
        check_split(split)
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
            files = files[: subset_size(size, len(files), len(files))]
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


class ImageFolderSegmentation(InfoDataset):
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
        check_split(split)
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
            pairs = pairs[: subset_size(size, len(pairs), len(pairs))]
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
