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

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ncp_hpo.exceptions import NCPError
from ncp_hpo.trainers._bev import BevDetection
from ncp_hpo.trainers._dataset_common import BEV_CLASSES, DatasetInfo, InfoDataset
from ncp_hpo.trainers._digits import DigitsClassification, DigitsSegmentation, DigitsVideo
from ncp_hpo.trainers._folders import (
    DatasetAdapter,
    ImageFolderClassification,
    ImageFolderSegmentation,
)

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

# -- registry ------------------------------------------------------------------------------
DATASETS: dict[str, type[InfoDataset]] = {
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
) -> InfoDataset:
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
        out: InfoDataset = factory(split, **opts)
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
