"""A picture of a multi-resolution architecture: branches, stages, blocks and channels.

Columns are the stem, the four stages and the head; rows are the branches (resolution
1/4 at the top to 1/32 at the bottom). Each stage cell shows ``blocks x units`` and the
channels, its height proportional to the channels. Drawn with matplotlib's object API (no
``pyplot`` state), so it is safe in worker threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo.spaces import NetworkCode

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_architecture"]

_COLOURS = ("#4C72B0", "#55A868", "#C44E52", "#8172B2")


def _as_code(code: Any) -> NetworkCode:
    if isinstance(code, NetworkCode):
        return code
    if isinstance(code, str):
        return NetworkCode.from_string(code)
    return NetworkCode.from_vector(code)


def plot_architecture(
    code: Any,
    path: str | Path | None = None,
    *,
    task: str | None = None,
    title: str | None = None,
    dpi: int = 110,
) -> Figure:
    """Draw ``code`` (a :class:`NetworkCode`, code string or 27 integers).

    Args:
        path: save the figure there (PNG by its suffix) when given.
        task: shown in the head column.
        title: figure title (default: the code string).

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, Rectangle

    net = _as_code(code)
    fig = Figure(figsize=(11, 4.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(-0.6, 6.6)
    ax.set_ylim(4.3, -0.9)
    ax.axis("off")

    def box(x: float, y: float, chans: int, text: str, colour: str) -> None:
        h = 0.25 + 0.55 * min(chans, 128) / 128
        ax.add_patch(
            Rectangle((x - 0.4, y - h / 2), 0.8, h, facecolor=colour, alpha=0.8, edgecolor="k")
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, color="white")

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.add_patch(
            FancyArrowPatch(
                (x0 + 0.42, y0),
                (x1 - 0.42, y1),
                arrowstyle="-|>",
                mutation_scale=8,
                color="0.35",
                lw=0.8,
            )
        )

    for k in range(4):
        ax.text(-0.55, k, f"1/{4 * 2**k}", ha="right", va="center", fontsize=8)
    ax.text(0, -0.7, "stem", ha="center", fontsize=9, weight="bold")
    box(0, 0, max(net.stem), f"{net.stem[0]}, {net.stem[1]}ch", "0.45")
    for s, st in enumerate(net.stages, start=1):
        ax.text(s, -0.7, f"stage {s}  ×{st.blocks}", ha="center", fontsize=9, weight="bold")
        for k in range(st.branches):
            box(s, k, st.channels[k], f"{st.units[k]}u · {st.channels[k]}ch", _COLOURS[k])
            if k < s - 1:
                arrow(s - 1, k, s, k)
            else:  # a new branch, made from the lowest branch of the previous stage
                arrow(s - 1, k - 1 if k > 0 else 0, s, k)
    head = 5.3
    ax.text(
        head, -0.7, f"head{f' ({task})' if task else ''}", ha="center", fontsize=9, weight="bold"
    )
    box(head, 1.5, net.head_channels, f"fuse {net.head_channels}ch", "0.3")
    for k in range(4):
        arrow(4, k, head, 1.5)
    ax.text(
        3,
        4.1,
        "u = residual units per branch and block; height ∝ channels",
        ha="center",
        fontsize=7.5,
        color="0.3",
    )
    fig.suptitle(title if title is not None else net.to_string(), fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(str(path), dpi=dpi)
    return fig
