"""Pictures of propagation trajectories (paper Fig. 3 and Fig. 6) and of a lambda sweep.

Every function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot, no global
state, no display needed) and writes a PNG. matplotlib is imported inside the functions so
``import ncp_hpo`` stays fast.

* :func:`plot_code_trajectory`: the 27 multi-resolution code dimensions over the iterations,
  grouped into 8 panels (stem, blocks, units, channels, head) as in the paper's Fig. 3, plus
  a ninth panel with the predicted metric(s) and the exact FLOPs. Several stages (cross-task
  transfer: the source task's propagation, then the target's) are drawn one after the other.
* :func:`plot_nb201_steps`: NAS-Bench-201 accuracy vs FLOPs of every cell, with the cell of
  each propagation step (the arg-max every ``round_every`` iterations) marked and numbered,
  as in Fig. 6.
* :func:`plot_lambda_sweep`: FLOPs vs mIoU of the codes found at several ``lambda``, one line
  per strategy (the shape of the paper's Table 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CODE_PANELS",
    "PANEL_UNITS",
    "TrajectoryStage",
    "code_trajectory_figure",
    "lambda_sweep_figure",
    "plot_code_trajectory",
    "plot_lambda_sweep",
    "plot_nb201_steps",
]

PANEL_UNITS: dict[str, str] = {"i": "channels", "b": "blocks", "n": "units", "c": "channels",
                               "o": "channels"}  # fmt: skip
"""y-axis label of a code panel, by the first letter of its dimensions' names."""

CODE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stem channels (i)", ("i1", "i2")),
    ("blocks per stage (b)", ("b1", "b2", "b3", "b4")),
    ("units, stages 1-2 (n)", ("n1_1", "n2_1", "n2_2")),
    ("units, stages 3-4 (n)", ("n3_1", "n3_2", "n3_3", "n4_1", "n4_2", "n4_3", "n4_4")),
    ("channels, stages 1-2 (c)", ("c1_1", "c2_1", "c2_2")),
    ("channels, stage 3 (c)", ("c3_1", "c3_2", "c3_3")),
    ("channels, stage 4 (c)", ("c4_1", "c4_2", "c4_3", "c4_4")),
    ("head channels (o)", ("o1",)),
)
"""The 8 panels of the multi-resolution trajectory picture: title and dimension names.
Together they hold each of the 27 dimensions once."""


@dataclass(frozen=True)
class TrajectoryStage:
    """One propagation drawn by :func:`plot_code_trajectory`.

    Attributes:
        label: e.g. ``"seg"`` or ``"cls-50-1000 (transfer source)"``.
        continuous: ``(T+1) x 27`` continuous codes (raw units).
        rounded: ``(T+1) x 27`` valid codes (what is reported at each iteration).
        metrics: objective label -> ``T+1`` predicted values (original units).
        flops: ``T+1`` exact FLOPs of the rounded codes (G), or ``None``.
    """

    label: str
    continuous: np.ndarray
    rounded: np.ndarray
    metrics: Mapping[str, np.ndarray] = field(default_factory=dict)
    flops: np.ndarray | None = None


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def plot_code_trajectory(
    stages: Sequence[TrajectoryStage],
    path: str | Path,
    *,
    dim_names: Sequence[str] | None = None,
    title: str = "",
    flops_label: str = "exact FLOPs (G)",
    metric_label: str = "predicted metric",
) -> Path:
    """Draw the code dimensions over the iterations (paper Fig. 3) and write a PNG.

    Each panel shows its dimensions' valid (rounded) values as solid steps and the
    continuous values the gradient moves as thin dashed lines; a ninth panel shows the
    predicted metric of each objective and the exact FLOPs. Stages follow each other on
    the iteration axis, separated by a vertical line.

    Args:
        stages: one or more :class:`TrajectoryStage` (27-dim codes).
        path: the PNG to write (folders are created).
        dim_names: names of the code dimensions (default the multi-resolution ones).
        title: the figure's title.
        flops_label: axis label of the FLOPs curve.
        metric_label: axis label of the predicted metric (with its unit, e.g. ``"predicted
            mIoU (%)"``).

    Returns:
        the path written.
    """
    fig = code_trajectory_figure(
        stages, dim_names=dim_names, title=title, flops_label=flops_label,
        metric_label=metric_label,
    )  # fmt: skip
    return _save(fig, path)


def code_trajectory_figure(
    stages: Sequence[TrajectoryStage],
    *,
    dim_names: Sequence[str] | None = None,
    title: str = "",
    flops_label: str = "exact FLOPs (G)",
    metric_label: str = "predicted metric",
) -> Figure:
    """The figure :func:`plot_code_trajectory` writes (same arguments, no path)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not stages:
        raise ValueError("plot_code_trajectory needs at least one stage")
    if dim_names is None:
        from ncp_hpo.spaces.multires import DIM_NAMES

        dim_names = DIM_NAMES
    index = {n: i for i, n in enumerate(dim_names)}
    missing = [n for _, dims in CODE_PANELS for n in dims if n not in index]
    if missing:
        raise ValueError(f"dimension names {missing} are not in dim_names")

    # concatenate the stages on one iteration axis (a stage starts where the last ended)
    xs, offsets = [], []
    x0 = 0
    for st in stages:
        t = len(st.rounded)
        if st.continuous.shape != st.rounded.shape or st.rounded.shape[1] != len(dim_names):
            raise ValueError(
                f"stage {st.label!r}: continuous {st.continuous.shape} and rounded "
                f"{st.rounded.shape} must both be (T+1) x {len(dim_names)}"
            )
        xs.append(np.arange(x0, x0 + t))
        offsets.append(x0)
        x0 += t - 1

    fig = _new_figure(16, 11)
    axes = fig.subplots(3, 3, sharex=True)
    colors = [f"C{k}" for k in range(10)]
    for ax, (panel, dims) in zip(axes.flat, CODE_PANELS, strict=False):
        for k, name in enumerate(dims):
            j = index[name]
            color = colors[k % len(colors)]
            for s, (st, x) in enumerate(zip(stages, xs, strict=True)):
                ax.step(
                    x,
                    st.rounded[:, j],
                    where="post",
                    color=color,
                    lw=1.8,
                    label=name if s == 0 else None,
                )
                ax.plot(x, st.continuous[:, j], color=color, lw=0.8, ls="--", alpha=0.6)
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel(PANEL_UNITS.get(dims[0][0], ""))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # code values are integers
        # beside the panel, not over the lines
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        _stage_lines(ax, offsets[1:])
    _metrics_panel(axes.flat[8], stages, xs, offsets, flops_label, metric_label)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("iteration")
    key = [
        Line2D([], [], color="0.2", lw=1.8, label="valid (rounded) code"),
        Line2D([], [], color="0.2", lw=0.8, ls="--", label="continuous code"),
    ]
    if len(stages) > 1:
        key.append(Line2D([], [], color="0.4", lw=1.0, ls=":", label="next stage starts"))
    fig.legend(handles=key, loc="outside lower center", ncol=len(key), fontsize=9)
    fig.suptitle(title or "code propagation", fontsize=12)
    return fig


def _stage_lines(ax: Axes, offsets: Sequence[int]) -> None:
    for x in offsets:
        ax.axvline(x, color="0.4", lw=1.0, ls=":")


def _metrics_panel(
    ax: Axes,
    stages: Sequence[TrajectoryStage],
    xs: Sequence[np.ndarray],
    offsets: Sequence[int],
    flops_label: str,
    metric_label: str = "predicted metric",
) -> None:
    labels: dict[str, str] = {}
    names = {n for st in stages for n in st.metrics}
    relative = len(names) > 1  # metrics of several tasks: plot changes, their scales differ
    for st, x in zip(stages, xs, strict=True):
        for name, values in st.metrics.items():
            v = np.asarray(values, dtype=float)
            color = labels.setdefault(name, f"C{len(labels)}")
            label = f"{name} (predicted" + (f", start {v[0]:.2f})" if relative else ")")
            ax.plot(x, v - v[0] if relative else v, color=color, lw=1.6, label=label)
    ax.set_title("predicted metric and exact FLOPs", fontsize=10)
    ax.set_ylabel(metric_label + (": change from its start" if relative else ""))
    handles, legend_names = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}
    for h, n in zip(handles, legend_names, strict=True):
        seen.setdefault(n, h)
    if any(st.flops is not None for st in stages):
        ax2 = ax.twinx()
        for s, (st, x) in enumerate(zip(stages, xs, strict=True)):
            if st.flops is not None:
                ax2.plot(
                    x,
                    st.flops,
                    color="k",
                    lw=1.2,
                    ls="-.",
                    label=flops_label if s == 0 else None,
                )
        ax2.set_ylabel(flops_label)
        h2, n2 = ax2.get_legend_handles_labels()
        for h, n in zip(h2, n2, strict=True):
            seen.setdefault(n, h)
    # below the panel (the twin FLOPs axis takes its right side)
    ax.legend(
        list(seen.values()), list(seen), fontsize=7, loc="upper center",
        bbox_to_anchor=(0.5, -0.16), ncol=2, borderaxespad=0,
    )  # fmt: skip
    _stage_lines(ax, offsets[1:])
    for st, off in zip(stages[1:], offsets[1:], strict=True):
        ax.annotate(
            st.label,
            (off, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="top",
            ha="left",
        )


def plot_nb201_steps(
    table_acc: np.ndarray,
    table_flops: np.ndarray,
    step_acc: Sequence[float],
    step_flops: Sequence[float],
    path: str | Path,
    *,
    step_iterations: Sequence[int] | None = None,
    reference: Mapping[str, tuple[float, float]] | None = None,
    title: str = "",
    acc_label: str = "accuracy (%)",
    flops_label: str = "FLOPs (M)",
) -> Path:
    """NAS-Bench-201 accuracy vs FLOPs with the propagation's steps marked (paper Fig. 6).

    Args:
        table_acc, table_flops: every cell of the table (grey background).
        step_acc, step_flops: the true accuracy and FLOPs of the cell at each step (step 0
            is the start), drawn as numbered stars joined by arrows.
        path: the PNG to write.
        step_iterations: iteration of each step, for the legend.
        reference: extra labelled points, ``{label: (flops, acc)}`` (e.g. the table's best
            and the paper's reported cell).
        title: the figure's title.
        acc_label, flops_label: axis labels.

    Returns:
        the path written.
    """
    sa, sf = np.asarray(step_acc, dtype=float), np.asarray(step_flops, dtype=float)
    if sa.shape != sf.shape or sa.ndim != 1 or len(sa) == 0:
        raise ValueError("step_acc and step_flops must be 1-d and of equal, non-zero length")
    fig = _new_figure(10.5, 6)
    ax = fig.subplots()
    ax.scatter(table_flops, table_acc, s=4, color="0.75", alpha=0.35, lw=0, label="all cells")
    for k in range(len(sa) - 1):
        ax.annotate(
            "",
            xy=(sf[k + 1], sa[k + 1]),
            xytext=(sf[k], sa[k]),
            arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.0, "alpha": 0.8},
        )
    ax.scatter(
        sf,
        sa,
        marker="*",
        s=160,
        color=[_step_color(k, len(sa)) for k in range(len(sa))],
        edgecolors="k",
        linewidths=0.6,
        zorder=3,
        label="propagated cell per step",
    )
    groups: dict[tuple[float, float], list[int]] = {}
    for k, (f, a) in enumerate(zip(sf, sa, strict=True)):
        groups.setdefault((float(f), float(a)), []).append(k)
    for (f, a), ks in groups.items():
        tag = "steps " + _ranges(ks) if len(ks) > 1 else f"step {ks[0]}"
        if step_iterations is not None:
            tag += f" (it {_ranges([int(step_iterations[k]) for k in ks], sep='-')})"
        ax.annotate(tag, (f, a), textcoords="offset points", xytext=(6, 4), fontsize=8)
    markers = ["^", "x", "s", "D"]
    for m, (label, (f, a)) in enumerate((reference or {}).items()):
        ax.scatter([f], [a], marker=markers[m % len(markers)], s=60, color=f"C{m}", label=label)
    ax.set_xlabel(flops_label)
    ax.set_ylabel(acc_label)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title or "NAS-Bench-201: propagation steps (arg-max every 10 iterations)")
    return _save(fig, path)


def _ranges(values: Sequence[int], sep: str = "-") -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"`` (consecutive runs of a sorted list)."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}{sep}{r[-1]}" for r in runs)


def _step_color(k: int, n: int) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    return tuple(colormaps["viridis"](k / max(n - 1, 1)))  # type: ignore[return-value]


def plot_lambda_sweep(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path: str | Path,
    *,
    reference: Mapping[str, tuple[float, float]] | None = None,
    background: tuple[np.ndarray, np.ndarray, str] | None = None,
    title: str = "",
    flops_label: str = "exact FLOPs (G)",
    metric_label: str = "mIoU (%)",
) -> Path:
    """FLOPs vs metric of the codes found at several ``lambda``, one line per series.

    Args:
        series: label -> ``[(lambda, flops, metric), ...]``; each point is annotated with
            its lambda.
        path: the PNG to write.
        reference: extra labelled points ``{label: (flops, metric)}``.
        background: ``(flops, metric, label)`` of other codes drawn as grey dots (e.g. the
            benchmark table).
        title, flops_label, metric_label: text.

    Returns:
        the path written.
    """
    fig = lambda_sweep_figure(
        series, reference=reference, background=background, title=title,
        flops_label=flops_label, metric_label=metric_label,
    )  # fmt: skip
    return _save(fig, path)


def lambda_sweep_figure(
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    *,
    reference: Mapping[str, tuple[float, float]] | None = None,
    background: tuple[np.ndarray, np.ndarray, str] | None = None,
    title: str = "",
    flops_label: str = "exact FLOPs (G)",
    metric_label: str = "mIoU (%)",
) -> Figure:
    """The figure :func:`plot_lambda_sweep` writes (same arguments, no path).

    Lambdas that found the same code (winner-takes-all often does) share one label,
    ``λ=0.3, 0.5``; the labels of successive series sit on alternate sides of their points.
    """
    fig = _new_figure(10.5, 5.5)
    ax = fig.subplots()
    if background is not None:
        bx, by, blabel = background
        ax.scatter(bx, by, s=4, color="0.7", alpha=0.4, lw=0, label=blabel)
    markers = ["o", "s", "^", "D", "v"]
    for k, (label, pts) in enumerate(series.items()):
        arr = np.asarray(pts, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"series {label!r} must be a list of (lambda, flops, metric)")
        order = np.argsort(arr[:, 1])
        ax.plot(
            arr[order, 1],
            arr[order, 2],
            marker=markers[k % len(markers)],
            color=f"C{k}",
            label=label,
            lw=1.2,
        )
        groups: dict[tuple[float, float], list[float]] = {}
        for lam, f, m in arr:
            groups.setdefault((round(float(f), 9), round(float(m), 9)), []).append(float(lam))
        below = k % 2 == 0
        for (f, m), lams in groups.items():
            ax.annotate(
                "λ=" + ", ".join(f"{lam:g}" for lam in lams),
                (f, m),
                textcoords="offset points",
                xytext=(4, -11) if below else (4, 5),
                fontsize=7,
                color=f"C{k}",
            )
    for m, (label, (f, v)) in enumerate((reference or {}).items()):
        ax.scatter([f], [v], marker="x", s=50, color=f"C{m + len(series)}", label=label)
    if background is not None:  # zoom on the found codes; the background fills the window
        pts = [p for v in series.values() for p in v]
        xs = [p[1] for p in pts] + [f for f, _ in (reference or {}).values()]
        ys = [p[2] for p in pts] + [m for _, m in (reference or {}).values()]
        ax.set_xlim(0, 1.1 * max(xs))
        ax.set_ylim(min(ys) - 3, max(ys) + 1)
    ax.set_xlabel(flops_label)
    ax.set_ylabel(metric_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title or "lambda sweep")
    return fig
