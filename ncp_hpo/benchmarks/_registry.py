"""The registry of known benchmark result files (NAS-Bench-MR and NAS-Bench-201).

Every file lives in the upstream repository ``dingmyu/NCP`` under ``data/`` at one pinned
commit; the registry records where, its SHA-256 where known, and what its rows hold. The
registry is data only: reading, verifying and converting files is done by
:mod:`ncp_hpo.benchmarks._store`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ncp_hpo.exceptions import UnknownSettingError

__all__ = [
    "SEARCH_LIST",
    "SETTINGS",
    "UPSTREAM_COMMIT",
    "UPSTREAM_REPO",
    "Resource",
    "Setting",
    "get_setting",
    "upstream_url",
]

UPSTREAM_REPO = "dingmyu/NCP"
UPSTREAM_COMMIT = "5259acdf9876c3adf4b8b1133afc3ac0d1077d65"


def upstream_url(path: str) -> str:
    """Raw-download URL of ``path`` (e.g. ``data/seg/trainval.pkl``) at the pinned commit."""
    return f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}/{path}"


@dataclass(frozen=True)
class Resource:
    """A file of the upstream repository: its path there and its pinned SHA-256.

    ``sha256`` is ``None`` when no checksum is known; such a file is only used after an
    explicit opt-in (``allow_unverified=True`` / ``--allow-unverified``).
    """

    name: str
    upstream_path: str
    sha256: str | None
    description: str = ""

    @property
    def url(self) -> str:
        return upstream_url(self.upstream_path)

    @property
    def local_name(self) -> str:
        """Path of the file relative to a data folder holding the upstream ``data/`` layout."""
        return self.upstream_path.removeprefix("data/")


@dataclass(frozen=True)
class Setting(Resource):
    """One benchmark setting: a pickled list of result records.

    Attributes:
        kind: ``"multires"`` (2,507 NAS-Bench-MR records, 27-integer ``embedding``) or
            ``"nb201"`` (15,625 NAS-Bench-201 records, 30-float one-hot ``embedding``).
        metrics: metric names in the loaded table, main metric first; always ends with
            ``flops`` and ``params``.
        main_metric: the metric a search maximises.
        units: unit of each metric as stored (``%``, ``GFLOPs``, ``M`` ...).
        rows: expected number of records (a converted file with another count is refused).
        source_metrics: record key of each metric where it differs from the table name.
    """

    kind: Literal["multires", "nb201"] = "multires"
    metrics: tuple[str, ...] = ()
    main_metric: str = ""
    units: Mapping[str, str] = field(default_factory=dict)
    rows: int = 0
    source_metrics: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.main_metric not in self.metrics:
            raise ValueError(f"{self.name}: main metric {self.main_metric!r} not in {self.metrics}")
        if self.metrics[-2:] != ("flops", "params"):
            raise ValueError(f"{self.name}: metrics must end with flops, params")

    @property
    def verified(self) -> bool:
        """Whether a pinned checksum exists for this setting."""
        return self.sha256 is not None


_MR_COST_UNITS = {"flops": "GFLOPs (128x128 input)", "params": "M"}


def _mr(name: str, sha256: str | None, task_metrics: tuple[str, ...], description: str) -> Setting:
    units = {m: "%" for m in task_metrics} | _MR_COST_UNITS
    return Setting(
        name=name,
        upstream_path=f"data/{name}/trainval.pkl",
        sha256=sha256,
        description=description,
        kind="multires",
        metrics=(*task_metrics, "flops", "params"),
        main_metric=task_metrics[0],
        units=MappingProxyType(units),
        rows=2507,
    )


_CLS = ("top1", "top5")
_SEG = ("mIoU", "mAcc", "aAcc")

_ALL: tuple[Setting, ...] = (
    _mr(
        "cls-50-1000",
        "ce6588f4ee339b49b2fa2acf2ca55fa92a75bd813b5590796f5a5fc7cc280a6c",
        _CLS,
        "ImageNet, 50 classes x 1000 images (Cls-A)",
    ),
    _mr(
        "cls-50-100",
        "f6c7f8d67c84abc3aa226f5c5115c6c35adf576f41dd4d157b683148486f559b",
        _CLS,
        "ImageNet, 50 classes x 100 images (Cls-B)",
    ),
    _mr(
        "cls-10-1000",
        "423e0a511b72b47587fb418f91122b8a7b0e6ea6d89e029a2703374916fca4ca",
        _CLS,
        "ImageNet, 10 classes x 1000 images (Cls-C)",
    ),
    _mr(
        "cls-10c",
        "99d8e31680794790ef6e01dc65d7ba714786b3c15cbf97ee25cf61ea2bef34d6",
        _CLS,
        "ImageNet, 50 classes x 1000 images, 10 epochs",
    ),
    _mr(
        "seg",
        "1854e1ec044c8416cc53d4068cdef4d019a24bcd1e72d07020255550f56ea729",
        _SEG,
        "Cityscapes segmentation, 512x1024 input",
    ),
    _mr(
        "seg-4x",
        "c111b4ad884e63fd16a1fd2d91fe5eb25ef39a9f3c8b5534a34b025aed06d434",
        _SEG,
        "Cityscapes segmentation, 128x256 input",
    ),
    _mr(
        "video",
        "ec40f09230374c5cb80fa689b16e8c0767060dac7312fb3a6c48610972df2e4d",
        _CLS,
        "HMDB51 video recognition, from scratch",
    ),
    _mr(
        "video-p",
        "f004d8a270712858ea166a609f619e577287c5fabe8f46979364565bdddbb1b0",
        _CLS,
        "HMDB51 video recognition, ImageNet-50-1000 pretrained",
    ),
    # KITTI: no checksum is known (upstream blob f08f87a66e58bc74552632fd05b6363763ca4ae8,
    # over 4 MiB, not mirrored). The metric name comes from upstream configs/3ddet.yaml
    # (``metrics: [[moderate], [flops, params]]``): the moderate-difficulty AP, which paper
    # Table 6 calls "car-3D AP". Other numeric keys found in the file load as extra metrics.
    _mr("3ddet", None, ("moderate",), "KITTI 3D detection (PointPillars), car-3D AP moderate"),
    Setting(
        name="nas-bench-201",
        upstream_path="data/nas-bench-201/trainval.pkl",
        sha256="6048b2ce2ae8f466c9c2fafd0cb9065edbe94db36f7804790beab0e845fa40d0",
        description="NAS-Bench-201 cells, ImageNet16-120 accuracy",
        kind="nb201",
        metrics=("Acc", "flops", "params"),
        main_metric="Acc",
        units=MappingProxyType(
            {
                "Acc": "% (ImageNet16-120)",
                "flops": "MFLOPs (NB201 CIFAR-100 network, 32x32)",
                "params": "M (NB201 CIFAR-100 network)",
            }
        ),
        rows=15625,
        source_metrics=MappingProxyType({"flops": "Flops", "params": "Params"}),
    ),
)

SETTINGS: Mapping[str, Setting] = MappingProxyType({s.name: s for s in _ALL})
"""Every known setting by name (read-only)."""

SEARCH_LIST = Resource(
    name="search_list",
    upstream_path="data/search_list.txt",
    sha256="9dd9201f9d223a17e17db7adc2af5220dcbcca7e11af1f0d1bd2a18b5fa9a957",
    description="2,510 NAS-Bench-MR code strings ('i1_i2-b1_1_n_c-...-o1')",
)
"""The upstream list of code strings (plain text, no pickle)."""

RESOURCES: Mapping[str, Resource] = MappingProxyType({**SETTINGS, SEARCH_LIST.name: SEARCH_LIST})


def get_setting(name: str) -> Setting:
    """The registered setting called ``name``.

    Raises:
        UnknownSettingError: listing the known names.
    """
    try:
        return SETTINGS[name]
    except (KeyError, TypeError):
        raise UnknownSettingError(
            f"unknown benchmark setting {name!r}; known: {', '.join(SETTINGS)}"
        ) from None


def get_resource(name: str) -> Resource:
    """A setting or ``search_list`` by name (for ``fetch``)."""
    try:
        return RESOURCES[name]
    except (KeyError, TypeError):
        raise UnknownSettingError(
            f"unknown benchmark setting {name!r}; known: {', '.join(RESOURCES)}"
        ) from None
