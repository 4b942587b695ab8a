"""Objectives resolved against their predictors: columns, frames, targets, checks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.exceptions import InvalidCodeError, PredictorNotFittedError
from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.propagation._types import DifferentiablePredictor, Objective

__all__ = [
    "ResolvedObjective",
    "check_initial",
    "fixed_mask",
    "normalise_objectives",
    "predict_rounded",
    "resolve",
]


def _is_predictor(obj: Any) -> bool:
    return isinstance(obj, NeuralPredictor) or (
        hasattr(obj, "forward_standardized") and hasattr(obj, "metric_names_")
    )


def normalise_objectives(objectives: Any) -> list[Objective]:
    if isinstance(objectives, Objective) or _is_predictor(objectives):
        items: list[Any] = [objectives]
    elif isinstance(objectives, Sequence) and not isinstance(objectives, str):
        items = list(objectives)
        # one bare tuple (predictor, weight[, metric]) rather than a list of them
        if len(items) in (2, 3) and _is_predictor(items[0]) and not _is_predictor(items[1]):
            if not isinstance(items[1], Objective | tuple):
                items = [tuple(items)]
    else:
        raise TypeError(
            "objectives must be a NeuralPredictor, an Objective, a (predictor, weight[, metric]) "
            f"tuple or a list of those; got {type(objectives).__name__}"
        )
    out: list[Objective] = []
    for it in items:
        if isinstance(it, Objective):
            out.append(it)
        elif _is_predictor(it):
            out.append(Objective(it))
        elif isinstance(it, tuple) and 2 <= len(it) <= 3 and _is_predictor(it[0]):
            out.append(
                Objective(it[0], weight=float(it[1]), metric=it[2] if len(it) == 3 else None)
            )
        else:
            raise TypeError(
                f"cannot use {it!r} as an objective; pass a NeuralPredictor, an Objective or "
                "a (predictor, weight[, metric]) tuple"
            )
    if not out:
        raise ValueError("propagate needs at least one objective")
    return out


@dataclass
class ResolvedObjective:
    """An objective resolved against its predictor (internal)."""

    predictor: DifferentiablePredictor
    name: str
    col: int
    weight: float
    sign: float  # +1 maximise, -1 minimise
    abs_target: float | None  # standardised
    flops_col: int | None
    mean: Tensor  # d, predictor input mean
    std: Tensor  # d
    same_frame: bool  # shares the propagation frame (first predictor's standardisation)
    y_mean: float
    y_std: float
    f_mean: float
    f_std: float


def resolve(
    objectives: list[Objective], d: int, flops_metric: str, need_flops_head: bool
) -> list[ResolvedObjective]:
    out: list[ResolvedObjective] = []
    names: list[str] = []
    first: DifferentiablePredictor | None = None
    for i, o in enumerate(objectives):
        p = o.predictor
        if isinstance(p, NeuralPredictor) and not p.is_fitted:
            raise PredictorNotFittedError(
                "this NeuralPredictor is not fitted yet; call fit(codes, targets) or "
                "NeuralPredictor.load(path) before propagate"
            )
        elif not _is_predictor(p):
            raise TypeError(
                f"objective {i}: predictor must be a NeuralPredictor or implement "
                f"DifferentiablePredictor, got {type(p).__name__}"
            )
        if p.n_features_in_ != d:
            raise InvalidCodeError(
                f"objective {i}: the predictor takes codes with d = {p.n_features_in_}, "
                f"but the space has d = {d}"
            )
        metric = o.metric if o.metric is not None else p.main_metric_
        if metric not in p.metric_names_:
            raise ValueError(
                f"objective {i}: the predictor has no metric {metric!r}; it predicts "
                f"{list(p.metric_names_)}"
            )
        col = p.metric_index(metric)
        name = o.name if o.name is not None else metric
        if name in names:
            raise ValueError(f"two objectives are both called {name!r}; give them distinct `name`s")
        names.append(name)
        if not math.isfinite(o.weight):
            raise ValueError(f"objective {name!r}: weight must be finite, got {o.weight}")
        fcol = p.metric_names_.index(flops_metric) if flops_metric in p.metric_names_ else None
        if need_flops_head and fcol is None:
            raise ValueError(
                f"flops_source='predictor' needs a {flops_metric!r} output, but the predictor "
                f"of objective {name!r} predicts {p.metric_names_}; fit it with a "
                f"{flops_metric!r} column or use flops_source='exact'"
            )
        ym, ys = float(p.target_mean_[col]), float(p.target_std_[col])
        first = first or p
        same = p is first or (
            torch.equal(p.input_mean_, first.input_mean_)
            and torch.equal(p.input_std_, first.input_std_)
        )
        out.append(
            ResolvedObjective(
                predictor=p,
                name=name,
                col=col,
                weight=float(o.weight),
                sign=1.0 if o.maximize else -1.0,
                abs_target=None if o.target is None else (float(o.target) - ym) / ys,
                flops_col=fcol,
                mean=p.input_mean_,
                std=p.input_std_,
                same_frame=same,
                y_mean=ym,
                y_std=ys,
                f_mean=float(p.target_mean_[fcol]) if fcol is not None else 0.0,
                f_std=float(p.target_std_[fcol]) if fcol is not None else 1.0,
            )
        )
    return out


def check_initial(x: Tensor, lower: Tensor, upper: Tensor, names: Sequence[str]) -> None:
    bad = (x < lower - 1e-9) | (x > upper + 1e-9)
    if bad.any():
        r, c = (int(v) for v in torch.nonzero(bad)[0])
        raise InvalidCodeError(
            f"initial[{r}]: {names[c]} = {float(x[r, c]):g} is outside the space's bounds "
            f"[{float(lower[c]):g}, {float(upper[c]):g}]"
        )


def fixed_mask(
    fixed: Mapping[int | str, float] | None, names: Sequence[str], d: int
) -> tuple[Tensor, Tensor]:
    """``(free, values)``: ``free`` d bool (False where fixed), ``values`` d (raw units)."""
    free = torch.ones(d, dtype=torch.bool)
    values = torch.zeros(d, dtype=torch.float64)
    for key, v in (fixed or {}).items():
        if isinstance(key, str):
            if key not in names:
                raise KeyError(f"fixed feature {key!r} is not a dimension name; names: {names}")
            i = list(names).index(key)
        else:
            i = int(key)
            if not 0 <= i < d:
                raise IndexError(f"fixed feature index {i} is out of range for d = {d}")
        free[i] = False
        values[i] = float(v)
    return free, values


# ---------------------------------------------------------------------------------------
# The algorithm


def predict_rounded(
    objs: list[ResolvedObjective], codes: np.ndarray, with_flops: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Metrics (``N x k``) and learned FLOPs (``N x k`` or ``None``) of integer codes, in
    original units."""
    x = torch.as_tensor(codes, dtype=torch.float32)
    ms, fs = [], []
    for o in objs:
        cols = [o.col] if not with_flops or o.flops_col is None else [o.col, o.flops_col]
        out = o.predictor.forward_standardized((x - o.mean) / o.std, outputs=cols)
        ms.append(out[:, 0] * o.y_std + o.y_mean)
        if len(cols) == 2:
            fs.append(out[:, 1] * o.f_std + o.f_mean)
    m = torch.stack(ms, 1).double().numpy()
    f = torch.stack(fs, 1).double().numpy() if with_flops and fs else None
    return m, f
