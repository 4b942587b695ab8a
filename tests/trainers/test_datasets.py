"""Offline datasets: determinism, shapes, label semantics; adapters for user data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from ncp_hpo.exceptions import NCPError
from ncp_hpo.trainers import DatasetAdapter, get_dataset, make_loaders
from ncp_hpo.trainers._digits import _digit_pool
from ncp_hpo.trainers.datasets import (
    BevDetection,
    DigitsClassification,
    DigitsSegmentation,
    DigitsVideo,
    ImageFolderClassification,
    ImageFolderSegmentation,
    dataset_info,
)


def test_digit_pools_split_the_scans() -> None:
    train, val = _digit_pool("train", 0), _digit_pool("val", 0)
    assert len(train) + len(val) == 1797
    assert not set(train) & set(val)
    assert not np.array_equal(_digit_pool("val", 1), val)


@pytest.mark.parametrize("name", ["digits-cls", "digits-seg", "digits-video", "bev-det"])
def test_same_seed_same_data_other_seed_other_data(name: str) -> None:
    a = get_dataset(name, "val", seed=3, size=8)
    b = get_dataset(name, "val", seed=3, size=8)
    c = get_dataset(name, "val", seed=4, size=8)
    xa, xb, xc = (torch.stack([d[i][0] for i in range(8)]) for d in (a, b, c))
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, xc)


def test_shapes_and_info() -> None:
    x, y = DigitsClassification("train", image_size=24, size=5)[0]
    assert x.shape == (3, 24, 24) and y.dtype == torch.int64 and 0 <= int(y) < 10
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    seg = DigitsSegmentation("val", size=3, channels=1)
    x, m = seg[0]
    assert x.shape == (1, 64, 64) and m.shape == (64, 64) and int(m.max()) <= 10
    info = seg.info
    assert (info.task, info.num_classes, info.in_channels) == ("seg", 11, 1)
    assert info.class_weights is not None and info.class_weights[0] < min(info.class_weights[1:])
    vid = DigitsVideo("val", size=4, frames=6, directions=4)
    x, y = vid[0]
    assert x.shape == (3, 6, 32, 32) and vid.num_classes == 4
    bev = BevDetection("val", size=4)
    x, t = bev[0]
    assert x.shape == (3, 64, 64) and t["boxes"].shape == (8, 4) and t["labels"].shape == (8,)
    assert not DigitsClassification.flip_invariant and BevDetection.flip_invariant


def test_default_sizes() -> None:
    assert len(get_dataset("digits-cls", "train")) == 1438
    assert len(get_dataset("digits-cls", "val")) == 359
    assert len(get_dataset("bev-det", "val")) == 64


def test_segmentation_masks_match_the_digit_pixels() -> None:
    seg = DigitsSegmentation("train", size=16, seed=1)
    canvas = seg.images  # N x H x W in [0, 1]
    masks = seg.targets
    assert torch.equal(masks > 0, canvas > seg.threshold)
    counts = [len(torch.unique(m[m > 0])) for m in masks]
    assert max(counts) >= 2  # several digits per canvas


def test_video_direction_needs_time() -> None:
    vid = DigitsVideo("train", size=40, seed=2)
    clips, labels = vid.images, vid.targets  # N x T x H x W
    half = vid.num_classes // 2
    for i in range(0, len(vid), 2):
        # every clip has a twin with the same frames in reverse order and the opposite label
        assert torch.equal(clips[i + 1], clips[i].flip(0))
        assert int(labels[i + 1]) == (int(labels[i]) + half) % vid.num_classes
        # so the unordered set of frames (any single frame included) occurs under two labels
        assert sorted(f.sum().item() for f in clips[i]) == sorted(
            f.sum().item() for f in clips[i + 1]
        )
    # and the digit really moves: first and last frames differ
    assert not torch.equal(clips[0, 0], clips[0, -1])
    # the motion matches the label: centre of mass moves along the direction
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    for i in range(6):
        f0, f1 = clips[i, 0], clips[i, -1]
        dx = float((f1 * xs).sum() / f1.sum() - (f0 * xs).sum() / f0.sum())
        dy = float((f1 * ys).sum() / f1.sum() - (f0 * ys).sum() / f0.sum())
        ex, ey = vid.directions[int(labels[i])]
        assert np.sign(round(dx)) == ex and np.sign(round(dy)) == ey


def test_bev_boxes_hold_their_points() -> None:
    bev = BevDetection("train", size=12, seed=5)
    for i in range(len(bev)):
        grid, t = bev[i]
        keep = t["labels"] >= 0
        assert keep.any()
        assert torch.all(t["labels"][~keep] == -1)
        boxes = t["boxes"][keep]
        assert torch.all(boxes[:, 2] > boxes[:, 0]) and torch.all(boxes[:, 3] > boxes[:, 1])
        assert float(boxes.min()) >= 0 and float(boxes.max()) <= 64
        for x1, y1, x2, y2 in boxes.tolist():
            inside = grid[0, int(y1) : int(y2) + 1, int(x1) : int(x2) + 1]
            assert inside.sum() > 0  # occupied cells inside every box


def test_make_loaders_is_seeded_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, _ = make_loaders("digits-cls", batch_size=16, train_size=64, val_size=16, seed=7)
    b, _ = make_loaders("digits-cls", batch_size=16, train_size=64, val_size=16, seed=7)
    ya = torch.cat([y for _, y in a])
    yb = torch.cat([y for _, y in b])
    assert torch.equal(ya, yb)
    assert torch.equal(torch.get_rng_state(), state)
    info = dataset_info(a)
    assert info is not None and info.name == "digits-cls"


def test_get_dataset_errors() -> None:
    with pytest.raises(NCPError, match="unknown dataset"):
        get_dataset("nope")
    with pytest.raises(ValueError, match="split"):
        get_dataset("digits-cls", "test")
    with pytest.raises(ValueError, match="is for task"):
        get_dataset("digits-cls", task="seg")


def test_dataset_adapter_wraps_a_torchvision_style_dataset() -> None:
    base = TensorDataset(torch.rand(6, 1, 12, 12), torch.arange(6) % 3)
    ds = DatasetAdapter(base, task="cls", num_classes=3, name="mine")
    x, y = ds[4]
    assert x.shape == (1, 12, 12) and int(y) == 1
    assert ds.info.in_channels == 1 and ds.info.input_size == (12, 12)
    train, _val = make_loaders(ds, ds, batch_size=4)
    assert dataset_info(train) == ds.info


def _write_png(path: Path, array: np.ndarray, mode: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path)


def test_image_folder_classification(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        for i in range(5):
            _write_png(tmp_path / c / f"{i}.png", rng.integers(0, 255, (10, 14, 3)), "RGB")
    train = get_dataset(tmp_path, "train", image_size=8, seed=0)
    val = ImageFolderClassification(tmp_path, "val", image_size=8, seed=0)
    assert isinstance(train, ImageFolderClassification)
    assert len(train) + len(val) == 10 and len(val) == 2
    x, _y = train[0]
    assert x.shape == (3, 8, 8) and train.class_names == ("cat", "dog")
    assert {int(train[i][1]) for i in range(len(train))} <= {0, 1}


def test_image_folder_segmentation_with_split_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            _write_png(
                tmp_path / split / "images" / f"s{i}.jpg", rng.integers(0, 255, (16, 16, 3)), "RGB"
            )
            mask = rng.integers(0, 4, (16, 16))
            mask[0, 0] = 255
            _write_png(tmp_path / split / "masks" / f"s{i}.png", mask, "L")
    train = get_dataset(tmp_path, "train", task="seg", image_size=8)
    val = ImageFolderSegmentation(tmp_path, "val", image_size=8)
    assert isinstance(train, ImageFolderSegmentation)
    assert (len(train), len(val)) == (3, 2)
    assert train.num_classes == 4
    x, m = train[0]
    assert x.shape == (3, 8, 8) and m.shape == (8, 8) and m.dtype == torch.int64
    assert set(torch.unique(m).tolist()) <= {0, 1, 2, 3, 255}
