"""The NAS-Bench-201 network (Dong & Yang, ICLR 2020), built from an :class:`NB201Space` code.

Topology, as published for the benchmark (``C = 16`` channels, ``N = 5`` cells per stage):

* stem: 3x3 convolution ``3 -> 16`` (no bias) + batch norm;
* stage 1: 5 cells at 16 channels; a residual reduction block ``16 -> 32``;
  stage 2: 5 cells at 32 channels; a residual reduction block ``32 -> 64``;
  stage 3: 5 cells at 64 channels;
* head: batch norm + ReLU, global average pool, linear layer to ``num_classes``.

A cell is the 4-node DAG of :mod:`ncp_hpo.spaces.nb201`: node 0 is the cell input, node
``t`` (1..3) is the sum of the operations on its incoming edges ``t <- f``, node 3 is the
output. Operations: ``none`` (zero; the edge is left out of the sum), ``skip_connect``
(identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU, convolution without bias, batch
norm), ``avg_pool_3x3`` (stride 1, padding 1, padding not counted). The reduction block is
the ResNet basic block of NAS-Bench-201: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a
shortcut of 2x2 average pooling and a 1x1 convolution (no batch norm).

Parameter count: with ``num_classes=100`` the network has exactly
``NB201Space().params(code)`` parameters (the CIFAR-100 network whose cost the benchmark
file reports). The default head has 120 classes: the file's accuracy is ImageNet16-120
(16x16 inputs), so that is the network the accuracy belongs to.

Example:
    >>> import torch
    >>> from ncp_hpo.spaces.nb201 import NB201Space
    >>> code = NB201Space().decode("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+"
    ...                            "|skip_connect~0|none~1|skip_connect~2|")
    >>> net = create_nb201_model(code)
    >>> net(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 120])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ncp_hpo.spaces.nb201 import EDGES, OPS, NB201Space

__all__ = ["NB201Network", "create_nb201_model"]

STAGE_CELLS = 5
"""Cells per stage (``N`` in NAS-Bench-201)."""

STEM_CHANNELS = 16
"""Channels of the stem and the first stage (``C``); the stages have C, 2C, 4C."""


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class ReLUConvBN(nn.Sequential):
    """ReLU, ``k x k`` convolution (no bias), batch norm: ``B x cin x H x W`` ->
    ``B x cout x H/stride x W/stride``."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, *, batch_norm: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            _norm(cout, batch_norm),
        )


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual reduction block: ``B x cin x H x W`` ->
    ``B x cout x H/2 x W/2`` (ResNet basic block, stride 2, pooled 1x1 shortcut)."""

    def __init__(self, cin: int, cout: int, *, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2, batch_norm=batch_norm)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1, batch_norm=batch_norm)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(cin, cout, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv_b(self.conv_a(x)) + self.shortcut(x)
        return out


def _edge_op(op: str, channels: int, batch_norm: bool) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, batch_norm=batch_norm)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, batch_norm=batch_norm)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"no module for operation {op!r}")  # pragma: no cover - 'none' is skipped


class NB201Cell(nn.Module):
    """One cell: ``B x C x H x W`` -> ``B x C x H x W``.

    Args:
        ops: the operation name of each edge, in :data:`~ncp_hpo.spaces.nb201.EDGES` order.
        channels: ``C``.
        batch_norm: ``False`` replaces every batch norm by the identity.
    """

    def __init__(self, ops: tuple[str, ...], channels: int, *, batch_norm: bool = True) -> None:
        super().__init__()
        self.ops = ops
        self.edges = nn.ModuleDict()
        # (to, from, key) of each non-``none`` edge; node t sums its incoming edges
        self._wiring: list[tuple[int, int, str]] = []
        for (to, frm), op in zip(EDGES, ops, strict=True):
            if op == "none":
                continue
            key = f"e{to}_{frm}"
            self.edges[key] = _edge_op(op, channels, batch_norm)
            self._wiring.append((to, frm, key))

    def forward(self, x: Tensor) -> Tensor:
        nodes: list[Tensor | None] = [x, None, None, None]
        for to, frm, key in self._wiring:
            src = nodes[frm]
            if src is None:  # an input node with only ``none`` edges is all zeros
                continue
            y = self.edges[key](src)
            prev = nodes[to]
            nodes[to] = y if prev is None else prev + y
        out = nodes[3]
        return torch.zeros_like(x) if out is None else out


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell.

    Args:
        code: a valid :class:`NB201Space` code (``30`` one-hot values).
        num_classes: classes of the linear head (120: ImageNet16-120, the table's accuracy;
            100 reproduces :meth:`NB201Space.params`; 10: CIFAR-10).
        channels: ``C``, the channels of the first stage (16 in the benchmark).
        cells_per_stage: ``N`` (5 in the benchmark).
        batch_norm: ``False`` builds the network without batch norm (each one an identity),
            as the zero-cost proxies of Abdelfattah et al. (2021) score it.

    Input ``B x 3 x H x W`` (H, W divisible by 4); output logits ``B x num_classes``.
    """

    def __init__(
        self,
        code: Any,
        *,
        num_classes: int = 120,
        channels: int = STEM_CHANNELS,
        cells_per_stage: int = STAGE_CELLS,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        idx = NB201Space().to_indices(code)
        if idx.ndim != 1:
            raise ValueError(f"NB201Network takes one code, got {idx.shape[0]} codes")
        self.ops = tuple(OPS[int(k)] for k in idx)
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False), _norm(channels, batch_norm)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ReductionBlock(width, 2 * width, batch_norm=batch_norm))
                width *= 2
            layers.extend(
                NB201Cell(self.ops, width, batch_norm=batch_norm) for _ in range(cells_per_stage)
            )
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(_norm(width, batch_norm), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)
        self.num_features = width

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``B x 3 x H x W`` -> pre-pool features ``B x 4C x H/4 x W/4``."""
        out: Tensor = self.lastact(self.cells(self.stem(x)))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Images ``B x 3 x H x W`` -> logits ``B x num_classes``."""
        out: Tensor = self.classifier(self.pool(self.forward_features(x)).flatten(1))
        return out


def create_nb201_model(
    code: Any,
    *,
    num_classes: int = 120,
    batch_norm: bool = True,
    seed: int | None = None,
) -> NB201Network:
    """Build an :class:`NB201Network` from a code or an arch string.

    Args:
        code: an :class:`NB201Space` code (``30``) or a ``|op~0|+|op~0|op~1|+...`` string.
        num_classes, batch_norm: as in :class:`NB201Network`.
        seed: when given, the weights are initialised (PyTorch's default initialisers)
            from a private generator seeded with it; the global RNG is left alone.

    Raises:
        InvalidCodeError: malformed code or arch string.
    """
    if isinstance(code, str):
        code = NB201Space().decode(code)
    if seed is None:
        return NB201Network(code, num_classes=num_classes, batch_norm=batch_norm)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NB201Network(code, num_classes=num_classes, batch_norm=batch_norm)
