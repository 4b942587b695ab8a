"""Exact, closed-form FLOPs and parameter counts of multi-resolution networks.

Every convolution of a :class:`~ncp_hpo.models.MultiResolutionNet` costs
``kernel_volume * c_in * c_out * pixels`` multiply-accumulates, so a network's cost is a
polynomial in its 27-integer code (degree 2 in the channels, linear in the block and unit
counts). This module evaluates that polynomial for many codes at once, in numpy
(:func:`flops`, :func:`params`, exact integers) and in torch (:func:`flops_torch`,
differentiable in real-valued codes, for gradient-based propagation).

The module is also the one home of the network's topology rules, which the model builder
imports: :func:`fusion_path` (how branch ``src`` reaches branch ``dst`` in a fusion module),
:data:`TASKS` (at which resolution each task head fuses the branches) and
:func:`level_sizes` (the feature-map size of every branch).

Counting conventions
--------------------
``convention="macs"`` (the default) counts the multiply-accumulates of convolutions and
linear layers, batch size 1, nothing else (no bias, normalisation, activation, pooling,
resizing or residual additions). It equals ``FlopCounterMode`` total / 2 exactly on the
built model, since ``torch.utils.flop_counter`` counts two FLOPs per multiply-accumulate
and only matrix products and convolutions.

``convention="thop"`` is how the NAS-Bench-MR ``flops`` column was counted (the upstream
repository measures with ``thop.profile``): multiply-accumulates, plus one operation per
output element of a convolution or linear layer that has a bias, plus two per output
element of every batch-norm layer. On the benchmark's network (the 50-class classifier,
``task="cls"``, 128x128 input) ``flops(codes, convention="thop") / 1e9`` reproduces the
column exactly; the ``macs`` convention is 0-3 % below it.

Both return raw counts (not G or M). Parameter counts are ``sum(p.numel())`` of the built
model, batch-norm affine weights included, running statistics (buffers) excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces.multires import DIM_NAMES, NUM_STAGES, STAGE_INDEX, MultiResolutionSpace

__all__ = [
    "TASKS",
    "FusionPath",
    "TaskGeometry",
    "flops",
    "flops_torch",
    "fusion_path",
    "level_sizes",
    "params",
]

Convention = Literal["macs", "thop"]
_CONVENTIONS = ("macs", "thop")

# --------------------------------------------------------------------------------------
# Topology (shared with ncp_hpo.models)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FusionPath:
    """How one branch's features reach another branch inside a fusion module.

    The path is ``conv(kernel, stride) -> batch norm -> ReLU``, followed by nearest
    upsampling to the target resolution when ``upsample`` is set. Its convolution runs at
    the source resolution when it upsamples, at the target resolution otherwise.
    """

    kernel: int
    stride: int
    upsample: bool


_SAME = FusionPath(kernel=3, stride=1, upsample=False)
_UP = FusionPath(kernel=1, stride=1, upsample=True)
_DOWN = FusionPath(kernel=3, stride=2, upsample=False)


def fusion_path(src: int, dst: int) -> FusionPath | None:
    """The path from branch ``src`` to branch ``dst`` (0 = highest resolution), or ``None``.

    Only neighbouring resolutions are fused: the same branch by a 3x3 convolution, the next
    lower resolution (``src = dst + 1``) by a 1x1 convolution and 2x upsampling, the next
    higher one (``src = dst - 1``) by a stride-2 3x3 convolution. A new branch created at a
    stage transition is reached the same way from the fused output of the branch above it.
    """
    if src == dst:
        return _SAME
    if src == dst + 1:
        return _UP
    if src == dst - 1:
        return _DOWN
    return None


@dataclass(frozen=True)
class TaskGeometry:
    """Where a task head fuses the branches.

    Attributes:
        fuse_level: branch whose resolution all branches are resized to before the final
            fusion convolution (0 = 1/4 of the input, 3 = 1/32).
        temporal: input has a time axis ``(B, C, T, H, W)``; the fusion convolution is a
            3x3x3 convolution over (time, height, width) instead of a 1x1.
    """

    fuse_level: int
    temporal: bool = False


TASKS: dict[str, TaskGeometry] = {
    # Classification fuses at the lowest resolution, as upstream does for every task but
    # segmentation; the benchmark's FLOPs column is counted on this network.
    "cls": TaskGeometry(fuse_level=NUM_STAGES - 1),
    # Dense tasks fuse at the highest resolution (HRNet's segmentation head).
    "seg": TaskGeometry(fuse_level=0),
    "bev-det": TaskGeometry(fuse_level=0),
    "video": TaskGeometry(fuse_level=NUM_STAGES - 1, temporal=True),
}
"""Task name -> :class:`TaskGeometry`, for every task head the model builder has."""


def _conv_out(n: int) -> int:
    """Output length of a stride-2, padding-1, 3x3 convolution."""
    return (n + 1) // 2


def _as_hw(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int | np.integer):
        h = w = int(input_size)
    else:
        try:
            h, w = (int(v) for v in input_size)
        except (TypeError, ValueError):
            raise ValueError(f"input_size must be an int or (H, W), got {input_size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"input_size must be positive, got {(h, w)}")
    return h, w


def level_sizes(input_size: int | Sequence[int]) -> list[tuple[int, int]]:
    """Feature-map ``(H, W)`` of the first stem convolution, then of branches 0..3.

    Each stride-2 convolution maps ``n`` to ``ceil(n / 2)``, so branch ``k`` is
    ``ceil(H / 2**(k + 2))`` high; 128 gives ``[64, 32, 16, 8, 4]``.
    """
    h, w = _as_hw(input_size)
    out = []
    for _ in range(NUM_STAGES + 1):
        h, w = _conv_out(h), _conv_out(w)
        out.append((h, w))
    return out


# --------------------------------------------------------------------------------------
# The polynomial, written once for numpy arrays and torch tensors
# --------------------------------------------------------------------------------------

A = TypeVar("A", np.ndarray, torch.Tensor)


class _Tally:
    """Running totals of one part of a network, each an array over codes.

    ``macs`` multiply-accumulates, ``norm`` batch-norm output elements, ``bias`` output
    elements of biased layers, ``params`` parameters.
    """

    def __init__(self) -> None:
        self.macs: Any = 0
        self.norm: Any = 0
        self.bias: Any = 0
        self.params: Any = 0

    def conv(
        self,
        cin: Any,
        cout: Any,
        *,
        kernel: int,
        pixels: int,
        times: Any = 1,
        norm: bool = True,
        bias: bool = False,
    ) -> None:
        """Add ``times`` convolutions of ``kernel`` volume producing ``pixels`` positions.

        A linear layer is a 1x1 convolution over one position.
        """
        weights = kernel * cin * cout
        self.macs = self.macs + times * weights * pixels
        self.params = self.params + times * weights
        if norm:
            self.norm = self.norm + times * cout * pixels
            self.params = self.params + times * 2 * cout
        if bias:
            self.bias = self.bias + times * cout * pixels
            self.params = self.params + times * cout

    def ops(self, convention: str) -> Any:
        if convention == "thop":
            return self.macs + self.bias + 2 * self.norm
        return self.macs


def _fusion(t: _Tally, cin: list[Any], cout: list[Any], pixels: list[int], times: Any) -> None:
    """A fusion module from ``len(cin)`` to ``len(cout)`` branches, ``times`` of them."""
    for dst in range(len(cout)):
        # Existing branches gather their neighbours; new ones come from the branch above.
        sources = range(len(cin)) if dst < len(cin) else [dst - 1]
        for src in sources:
            path = fusion_path(src, dst)
            if path is None:
                continue
            c_src = cin[src] if dst < len(cin) else cout[src]
            at = src if path.upsample else dst
            t.conv(c_src, cout[dst], kernel=path.kernel**2, pixels=pixels[at], times=times)


def _backbone(x: A, pixels: list[int], stem_pixels: int, in_chans: int) -> _Tally:
    """Stem and the four stages of one frame. ``x``: ``... x 27`` codes."""
    t = _Tally()
    t.conv(in_chans, x[..., 0], kernel=9, pixels=stem_pixels)
    t.conv(x[..., 0], x[..., 1], kernel=9, pixels=pixels[0])
    prev = [x[..., 1]]
    for s, (b_i, n_sl, c_sl) in enumerate(STAGE_INDEX, start=1):
        blocks = x[..., b_i]
        units = [x[..., n_sl.start + k] for k in range(s)]
        chans = [x[..., c_sl.start + k] for k in range(s)]
        _fusion(t, prev, chans, pixels, times=1)  # the first block's fusion is the transition
        _fusion(t, chans, chans, pixels, times=blocks - 1)
        for k in range(s):  # a basic residual unit is two 3x3 conv + BN at c channels
            t.conv(chans[k], chans[k], kernel=9, pixels=pixels[k], times=2 * blocks * units[k])
        prev = chans
    return t


def _head(
    x: A,
    pixels: list[int],
    *,
    task: str,
    num_classes: int,
    frames: int,
    box_channels: int,
) -> _Tally:
    """The final fusion convolution and the task head (all frames of a clip)."""
    t = _Tally()
    geo = TASKS[task]
    c4 = STAGE_INDEX[-1][2]
    concat = sum(x[..., c4.start + k] for k in range(NUM_STAGES))
    o1 = x[..., len(DIM_NAMES) - 1]
    at = pixels[geo.fuse_level]
    if geo.temporal:
        t.conv(concat, o1, kernel=27, pixels=at * frames)
    else:
        t.conv(concat, o1, kernel=1, pixels=at)
    if task in ("cls", "video"):
        t.conv(o1, num_classes, kernel=1, pixels=1, norm=False, bias=True)
    elif task == "seg":
        t.conv(o1, num_classes, kernel=1, pixels=at, norm=False, bias=True)
    elif task == "bev-det":
        t.conv(o1, num_classes, kernel=1, pixels=at, norm=False, bias=True)
        t.conv(o1, box_channels, kernel=1, pixels=at, norm=False, bias=True)
    else:  # pragma: no cover - TASKS and this function are kept in step by the tests
        raise AssertionError(task)
    return t


def _check_options(
    task: str, num_classes: int, frames: int, box_channels: int, in_chans: int, convention: str
) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    if convention not in _CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; expected one of {_CONVENTIONS}")
    for name, v in (
        ("num_classes", num_classes),
        ("frames", frames),
        ("box_channels", box_channels),
        ("in_chans", in_chans),
    ):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _evaluate(
    x: A,
    *,
    input_size: int | Sequence[int],
    task: str,
    num_classes: int,
    frames: int,
    box_channels: int,
    in_chans: int,
) -> tuple[_Tally, _Tally, int]:
    sizes = level_sizes(input_size)
    stem_pixels = sizes[0][0] * sizes[0][1]
    pixels = [h * w for h, w in sizes[1:]]
    frames = frames if TASKS[task].temporal else 1
    body = _backbone(x, pixels, stem_pixels, in_chans)
    head = _head(
        x, pixels, task=task, num_classes=num_classes, frames=frames, box_channels=box_channels
    )
    return body, head, frames


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def flops(
    codes: Any,
    *,
    input_size: int | Sequence[int] = (128, 128),
    task: str = "cls",
    num_classes: int = 50,
    frames: int = 8,
    box_channels: int = 6,
    in_chans: int = 3,
    convention: Convention = "macs",
) -> np.ndarray:
    """Exact FLOPs of the networks of ``codes`` for one input (batch size 1).

    Args:
        codes: valid codes, ``27`` or ``n x 27`` (anything
            :meth:`MultiResolutionSpace.validate` accepts).
        input_size: image ``(H, W)`` or one int for a square image.
        task: a key of :data:`TASKS` (``"cls"``, ``"seg"``, ``"video"``, ``"bev-det"``).
        num_classes: classes of the classifier / segmentation logits / detection heat-map.
        frames: clip length ``T``; only ``task="video"`` uses it.
        box_channels: box-regression channels; only ``task="bev-det"`` uses it.
        in_chans: input channels.
        convention: ``"macs"`` (multiply-accumulates, = ``FlopCounterMode`` / 2) or
            ``"thop"`` (the NAS-Bench-MR column's count); see the module docstring.

    Returns:
        int64 counts: shape ``()`` for one code of shape ``27``, ``n`` for ``n x 27``.

    Example:
        >>> code = MultiResolutionSpace().decode(
        ...     "16_16-1_1_1_16-1_2_1_1_16_16-1_3_1_1_1_16_16_16-1_4_1_1_1_1_16_16_16_16-16")
        >>> int(flops(code))
        40235808
    """
    _check_options(task, num_classes, frames, box_channels, in_chans, convention)
    x = MultiResolutionSpace().validate(codes)
    body, head, t = _evaluate(
        x,
        input_size=input_size,
        task=task,
        num_classes=num_classes,
        frames=frames,
        box_channels=box_channels,
        in_chans=in_chans,
    )
    out = t * body.ops(convention) + head.ops(convention)
    return np.asarray(out, dtype=np.int64)


def params(
    codes: Any,
    *,
    task: str = "cls",
    num_classes: int = 50,
    box_channels: int = 6,
    in_chans: int = 3,
) -> np.ndarray:
    """Exact parameter counts (``sum(p.numel())`` of the built model).

    Args:
        codes: valid codes, ``27`` or ``n x 27``.
        task, num_classes, box_channels, in_chans: as in :func:`flops`.

    Returns:
        int64 counts: shape ``()`` for one code of shape ``27``, ``n`` for ``n x 27``.
        ``params(codes) / 1e6`` is the NAS-Bench-MR ``params`` column.
    """
    _check_options(task, num_classes, 1, box_channels, in_chans, "macs")
    x = MultiResolutionSpace().validate(codes)
    body, head, _ = _evaluate(  # parameter counts do not depend on the input size
        x,
        input_size=1,
        task=task,
        num_classes=num_classes,
        frames=1,
        box_channels=box_channels,
        in_chans=in_chans,
    )
    return np.asarray(body.params + head.params, dtype=np.int64)


def flops_torch(
    x: torch.Tensor,
    *,
    input_size: int | Sequence[int] = (128, 128),
    task: str = "cls",
    num_classes: int = 50,
    frames: int = 8,
    box_channels: int = 6,
    in_chans: int = 3,
    convention: Convention = "macs",
) -> torch.Tensor:
    """:func:`flops` as a differentiable polynomial of real-valued codes.

    The same polynomial evaluated on floats: smooth (quadratic in the channels, linear in
    block and unit counts), equal to :func:`flops` on valid integer codes, and not range
    checked, so it can be used on any point gradient-based propagation visits.

    Args:
        x: ``batch_shape x 27`` floating-point codes (raw values, not normalised).
        input_size, task, num_classes, frames, box_channels, in_chans, convention: as in
            :func:`flops`.

    Returns:
        ``batch_shape`` tensor of counts, dtype and device of ``x``. Use float64 for exact
        integers above 2**24.
    """
    _check_options(task, num_classes, frames, box_channels, in_chans, convention)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"flops_torch expects a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != len(DIM_NAMES):
        raise InvalidCodeError(
            f"flops_torch expects codes of shape (..., {len(DIM_NAMES)}), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"flops_torch expects a floating-point tensor, got {x.dtype}")
    body, head, t = _evaluate(
        x,
        input_size=input_size,
        task=task,
        num_classes=num_classes,
        frames=frames,
        box_channels=box_channels,
        in_chans=in_chans,
    )
    out = t * body.ops(convention) + head.ops(convention)
    if not isinstance(out, torch.Tensor):  # pragma: no cover - every term depends on x
        out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
    return out
