"""The multi-resolution network of NAS-Bench-MR, built from a 27-integer code.

Layout (paper Fig. 2, Section 3.2), matching the upstream ``MultiResolutionNet`` layer for
layer so parameter counts equal the benchmark's:

* stem: two stride-2 3x3 conv-BN-ReLU with ``i1``, ``i2`` channels (1/4 resolution);
* stage ``s`` = 1..4: ``b_s`` :class:`~ncp_hpo.models.blocks.Block` s over ``s`` branches;
  the first block's fusion module is the transition from ``s - 1`` branches (from the stem
  for stage 1) and adds branch ``s``;
* head (:mod:`ncp_hpo.models.heads`): resize the branches to one resolution, concatenate,
  fuse to ``o1`` channels, map to the task output.

Example:
    >>> import torch
    >>> net = create_model("16_16-1_1_1_16-1_2_1_1_16_16-1_3_1_1_1_16_16_16-"
    ...                    "1_4_1_1_1_1_16_16_16_16-16", num_classes=10)
    >>> net(torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ncp_hpo.models.blocks import Block, ConvBNAct
from ncp_hpo.models.heads import TaskHead, create_head
from ncp_hpo.spaces.cost import TASKS
from ncp_hpo.spaces.multires import NetworkCode

__all__ = ["MultiResolutionNet", "create_model"]


class MultiResolutionNet(nn.Module):
    """A NAS-Bench-MR network for one task.

    Args:
        code: the architecture.
        task: ``"cls"``, ``"seg"``, ``"video"`` or ``"bev-det"`` (see
            :func:`~ncp_hpo.models.heads.list_tasks`).
        num_classes: classes of the classifier, segmentation logits or detection heat-map.
        in_chans: input channels (3 for images; the pseudo-image depth for BEV detection).
        **head_options: passed to the head, e.g. ``box_channels`` for ``"bev-det"``.

    Input: ``B x in_chans x H x W``, or ``B x in_chans x T x H x W`` for ``"video"``.
    Output: ``B x num_classes`` (cls, video), ``B x num_classes x H x W`` (seg), or a
    :class:`~ncp_hpo.models.heads.DetectionOutput` at ``H/4 x W/4`` (bev-det).

    Attributes:
        feature_info: per branch ``{"num_chs", "reduction"}`` of :meth:`forward_features`.
        num_features: channels of the fused feature (``o1``).
    """

    def __init__(
        self,
        code: NetworkCode,
        *,
        task: str = "cls",
        num_classes: int = 50,
        in_chans: int = 3,
        **head_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(code, NetworkCode):
            raise TypeError(
                f"code must be a NetworkCode, got {type(code).__name__}; use create_model() "
                "for vectors and strings"
            )
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
        self.code = code
        self.task = task
        self.in_chans = in_chans
        self.temporal = TASKS[task].temporal

        i1, i2 = code.stem
        self.stem = nn.Sequential(ConvBNAct(in_chans, i1, stride=2), ConvBNAct(i1, i2, stride=2))
        stages, prev = [], [i2]
        for st in code.stages:
            chs = list(st.channels)
            blocks = [Block(prev if b == 0 else chs, st.units, chs) for b in range(st.blocks)]
            stages.append(nn.Sequential(*blocks))
            prev = chs
        self.stages = nn.Sequential(*stages)
        self.feature_info = [{"num_chs": c, "reduction": 2 ** (k + 2)} for k, c in enumerate(prev)]
        self.num_features = code.head_channels
        self.head: TaskHead = create_head(
            task,
            in_chs=prev,
            fuse_chs=code.head_channels,
            num_classes=num_classes,
            **head_options,
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # As upstream: He-normal (fan-out) convolutions, unit/zero batch norms; conv and
        # linear biases keep their defaults (heads may have set their own).
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Images ``B x in_chans x H x W`` -> four branch features, highest resolution
        first: ``B x c4_k x ceil(H/2**(k+2)) x ceil(W/2**(k+2))``."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"forward_features expects images of shape (B, {self.in_chans}, H, W), got "
                f"{tuple(x.shape)}"
            )
        out: list[Tensor] = self.stages([self.stem(x)])
        return out

    def forward_head(
        self, features: list[Tensor], *, image_size: tuple[int, int], frames: int = 1
    ) -> Any:
        """Branch features (of ``B*frames`` frames) -> the task output."""
        return self.head(features, image_size=image_size, frames=frames)

    def forward(self, x: Tensor) -> Any:
        if self.temporal:
            if x.ndim != 5:
                raise ValueError(
                    f"task {self.task!r} expects clips of shape (B, C, T, H, W), got "
                    f"{tuple(x.shape)}"
                )
            b, c, t, h, w = x.shape
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            return self.forward_head(self.forward_features(frames), image_size=(h, w), frames=t)
        if x.ndim != 4:
            raise ValueError(
                f"task {self.task!r} expects images of shape (B, C, H, W), got {tuple(x.shape)}"
            )
        size = (int(x.shape[-2]), int(x.shape[-1]))
        return self.forward_head(self.forward_features(x), image_size=size)


def create_model(
    code: NetworkCode | str | Any,
    *,
    task: str = "cls",
    num_classes: int = 50,
    in_chans: int = 3,
    **head_options: Any,
) -> MultiResolutionNet:
    """Build a :class:`MultiResolutionNet` from a code in any of its forms.

    Args:
        code: a :class:`NetworkCode`, an upstream code string (``'96_128-1_1_1_48-...-64'``)
            or 27 integers (sequence, array or tensor).
        task, num_classes, in_chans, head_options: as in :class:`MultiResolutionNet`.

    Raises:
        InvalidCodeError: if the code is malformed or out of range.
    """
    if isinstance(code, str):
        net_code = NetworkCode.from_string(code)
    elif isinstance(code, NetworkCode):
        net_code = code
    else:
        net_code = NetworkCode.from_vector(code)
    return MultiResolutionNet(
        net_code, task=task, num_classes=num_classes, in_chans=in_chans, **head_options
    )
