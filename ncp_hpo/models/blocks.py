"""Building blocks of the multi-resolution network (paper Fig. 2, Section 3.2).

Features travel between modules as a list of tensors, one per branch, highest resolution
first: branch ``k`` is ``B x c_k x H/2**(k+2) x W/2**(k+2)`` (rounded up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from ncp_hpo.spaces.cost import FusionPath, fusion_path

__all__ = ["BasicBlock", "Block", "ConvBNAct", "FusionModule", "ParallelModule", "Route"]


class ConvBNAct(nn.Sequential):
    """``Conv2d`` (no bias, "same" padding) -> ``BatchNorm2d`` -> optional ``ReLU``.

    Shapes: ``B x in_chs x H x W`` -> ``B x out_chs x ceil(H/stride) x ceil(W/stride)``.
    """

    def __init__(
        self, in_chs: int, out_chs: int, *, kernel: int = 3, stride: int = 1, act: bool = True
    ) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_chs),
        )
        if act:
            self.append(nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic residual unit: two 3x3 conv-BN, identity or 1x1 projection shortcut.

    Shapes: ``B x in_chs x H x W`` -> ``B x out_chs x H x W``. In a
    :class:`ParallelModule` the channels never change (the fusion module before it already
    outputs the branch width), so the shortcut is the identity.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_chs, out_chs)
        self.conv2 = ConvBNAct(out_chs, out_chs, act=False)
        self.shortcut: nn.Module = (
            nn.Identity() if in_chs == out_chs else ConvBNAct(in_chs, out_chs, kernel=1, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Route(nn.Module):
    """One :class:`~ncp_hpo.spaces.cost.FusionPath`: conv-BN-ReLU, then upsampling if asked.

    Shapes: ``B x in_chs x h x w`` -> ``B x out_chs x h' x w'``, where ``(h', w')`` is
    ``size`` for an upsampling route (the target branch's size, so odd sizes line up) and
    the convolution's output size otherwise.
    """

    def __init__(self, path: FusionPath, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_chs, out_chs, kernel=path.kernel, stride=path.stride)
        self.upsample = path.upsample

    def forward(self, x: Tensor, size: Sequence[int] | None = None) -> Tensor:
        y = self.conv(x)
        if self.upsample:
            if size is None:
                raise ValueError("an upsampling route needs the target size")
            y = F.interpolate(y, size=tuple(size), mode="nearest")
        return y


class FusionModule(nn.Module):
    """Exchanges information between neighbouring resolutions, adding new branches.

    Output branch ``i < len(in_chs)`` is the sum of :func:`fusion_path` routes from input
    branches ``i-1, i, i+1``; a new output branch ``i >= len(in_chs)`` (stage transition)
    is a route from the fused output ``i - 1``. Every route ends in a ReLU, so the sum is
    non-negative and needs no further activation.

    Shapes: list of ``len(in_chs)`` tensors ``B x in_chs[k] x h_k x w_k`` -> list of
    ``len(out_chs)`` tensors ``B x out_chs[k] x h_k x w_k``.
    """

    def __init__(self, in_chs: Sequence[int], out_chs: Sequence[int]) -> None:
        super().__init__()
        if not 0 < len(in_chs) <= len(out_chs):
            raise ValueError(
                f"a fusion module maps n to at least n branches, got {len(in_chs)} -> "
                f"{len(out_chs)}"
            )
        self.num_in = len(in_chs)
        # routes[dst] maps str(src) to the route src -> dst.
        self.routes = nn.ModuleList()
        for dst in range(len(out_chs)):
            if dst < len(in_chs):
                sources = {src: in_chs[src] for src in range(len(in_chs))}
            else:
                sources = {dst - 1: out_chs[dst - 1]}
            into = nn.ModuleDict()
            for src, c_src in sources.items():
                path = fusion_path(src, dst)
                if path is not None:
                    into[str(src)] = Route(path, c_src, out_chs[dst])
            self.routes.append(into)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        if len(xs) != self.num_in:
            raise ValueError(f"expected {self.num_in} branches, got {len(xs)}")
        out: list[Tensor] = []
        for dst, module in enumerate(self.routes):
            into = cast(nn.ModuleDict, module)
            if dst < self.num_in:
                size = xs[dst].shape[-2:]
                terms = [route(xs[int(src)], size) for src, route in into.items()]
                out.append(sum(terms[1:], terms[0]))
            else:
                (route,) = into.values()
                out.append(route(out[dst - 1]))
        return out


class ParallelModule(nn.Module):
    """``units[k]`` :class:`BasicBlock` s on branch ``k`` at ``chs[k]`` channels.

    Shapes: list of tensors ``B x chs[k] x h_k x w_k`` -> the same shapes.
    """

    def __init__(self, units: Sequence[int], chs: Sequence[int]) -> None:
        super().__init__()
        if len(units) != len(chs):
            raise ValueError(f"{len(units)} unit counts for {len(chs)} branch widths")
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(n)))
            for n, c in zip(units, chs, strict=True)
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return [branch(x) for branch, x in zip(self.branches, xs, strict=True)]


class Block(nn.Module):
    """A modular block: :class:`FusionModule` then :class:`ParallelModule`.

    Shapes: list of ``len(in_chs)`` branch tensors -> list of ``len(chs)`` branch tensors.
    """

    def __init__(self, in_chs: Sequence[int], units: Sequence[int], chs: Sequence[int]) -> None:
        super().__init__()
        self.fusion = FusionModule(in_chs, chs)
        self.parallel = ParallelModule(units, chs)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        return self.parallel(self.fusion(xs))
