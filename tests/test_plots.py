"""Plots: units on the axes, integer ticks on integer axes, a key for the line styles, one
label per distinct point, legends beside the lines (ncp_hpo._plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ncp_hpo import _plots


def _stage(label: str, rng: np.random.Generator, t: int = 12) -> _plots.TrajectoryStage:
    cont = np.clip(np.cumsum(rng.normal(0, 3, (t + 1, 27)), 0) + 40, 1, 128)
    return _plots.TrajectoryStage(
        label=label, continuous=cont, rounded=np.round(cont),
        metrics={"mIoU": np.linspace(70, 75, t + 1)}, flops=np.linspace(3, 2, t + 1),
    )  # fmt: skip


def test_code_trajectory_has_units_integer_ticks_and_a_line_style_key(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fig = _plots.code_trajectory_figure(
        [_stage("cls", rng), _stage("seg", rng)], metric_label="predicted mIoU (%)"
    )
    axes = fig.axes[:9]
    for ax, (_, dims) in zip(axes[:8], _plots.CODE_PANELS, strict=True):
        assert ax.get_ylabel() in ("channels", "blocks", "units"), ax.get_title()
        assert isinstance(ax.yaxis.get_major_locator(), MaxNLocator)
        ticks = ax.get_yticks()
        assert np.allclose(ticks, np.round(ticks)), (ax.get_title(), ticks)
        legend = ax.get_legend()
        assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.bbox.x1 - 1  # outside
        assert [t.get_text() for t in legend.get_texts()] == list(dims)
    assert axes[8].get_ylabel() == "predicted mIoU (%)"
    key = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert key == ["valid (rounded) code", "continuous code", "next stage starts"]
    one = _plots.code_trajectory_figure([_stage("seg", rng)])
    assert [t.get_text() for leg in one.legends for t in leg.get_texts()] == key[:2]
    path = _plots.plot_code_trajectory([_stage("seg", rng)], tmp_path / "t.png")
    assert path.stat().st_size > 0


def test_lambda_sweep_labels_each_distinct_point_once() -> None:
    fig = _plots.lambda_sweep_figure(
        {
            "continuous": [(0.3, 2.0, 75.0), (0.5, 1.8, 74.0), (0.7, 1.5, 73.0)],
            "winner_takes_all": [(0.3, 2.1, 74.0), (0.5, 2.1, 74.0), (0.7, 2.1, 74.0)],
        }
    )
    ax = fig.axes[0]
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["λ=0.3", "λ=0.3, 0.5, 0.7", "λ=0.5", "λ=0.7"]
    assert ax.get_ylabel() == "mIoU (%)" and ax.get_xlabel() == "exact FLOPs (G)"
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.bbox.x1 - 1
