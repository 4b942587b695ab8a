"""Cross-task transfer helpers: re-scale a fitted predictor's output to a new task.

A predictor fitted on one setting (say ImageNet top-1 of NAS-Bench-MR's cls-50-1000)
predicts the wrong *units* on another (Cityscapes mIoU of seg) even where it ranks the
codes well. :func:`recalibrate` fixes the units without touching the ranking: it fits
``values ~ a * prediction + b`` (least squares, ``a >= 0``) on a few codes of the new
task and folds ``a`` and ``b`` into the output's target statistics. A fine-tune that
starts from the re-scaled network (``fit(..., warm_start=True)``) then spends its few
examples on the ranking, not on the offset: without it, 100 epochs on 5-20 codes of the
new task drag the whole network toward the offset and can turn a prior that ranks the
new task's codes well into one that ranks them backwards
(``benchmarks/results/transfer.md``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ncp_hpo.predictor._estimator import NeuralPredictor

__all__ = ["fine_tune", "recalibrate", "widen_inputs"]

# the smallest slope kept, relative to std(values) / std(prediction): a prior that ranks the
# codes backwards is flattened (its ranking is ignored) rather than inverted
_MIN_RELATIVE_SLOPE = 1e-3


def recalibrate(
    predictor: NeuralPredictor, codes: Any, values: Any, *, metric: str | None = None
) -> tuple[float, float]:
    """Re-scale one output of a fitted ``predictor`` in place to ``values``.

    Args:
        predictor: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (modified).
        codes: ``n x d`` codes with known ``values``.
        values: ``n`` values of ``metric`` on the new task, in its own units.
        metric: the output to re-scale (default the predictor's main metric).

    Returns:
        ``(a, b)``: the output now predicts ``a * old + b``. ``a`` is the least-squares
        slope clipped to at least ``1e-3 * std(values) / std(old)`` (a prior that ranks
        the codes backwards is flattened, not inverted); with fewer than 2 codes, or a
        constant prediction, ``a = 1`` and only the mean is matched.

    Raises:
        ValueError: ``values`` not finite or not one per code.
    """
    codes_np = np.asarray(codes, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(y) != len(codes_np) or len(y) == 0 or not np.isfinite(y).all():
        raise ValueError(
            f"recalibrate needs one finite value per code; got {len(y)} values for "
            f"{len(codes_np)} codes"
        )
    name = predictor.main_metric_ if metric is None else metric
    idx = predictor.metric_index(name)
    old = np.asarray(predictor.predict(codes_np, as_dict=True)[name], dtype=np.float64)
    a = 1.0
    if len(y) >= 2 and old.std() > 1e-12:
        slope = float(np.cov(old, y, bias=True)[0, 1] / old.var())
        a = max(slope, _MIN_RELATIVE_SLOPE * float(y.std()) / float(old.std()), 1e-12)
    b = float(y.mean() - a * old.mean())
    modules = [predictor.module_]
    expanded = getattr(predictor, "expanded_module_", None)
    if expanded is not None:
        modules.append(expanded)
    with torch.no_grad():
        for m in modules:
            m.target_mean[idx] = a * m.target_mean[idx] + b
            m.target_std[idx] = a * m.target_std[idx]
    return a, b


def fine_tune(
    predictor: NeuralPredictor, codes: Any, values: Any, *, epochs: int, seed: int
) -> NeuralPredictor:
    """A copy of the fitted ``predictor`` fine-tuned toward a new task (``predictor`` is
    not modified).

    Its main metric learns ``values`` (``n``, one per code of ``codes``, ``n x d``); its
    other outputs are trained toward their own current predictions, so they stay what
    they were (a warm start needs every output). ``epochs`` warm-started epochs, seeded
    with ``seed``. Call :func:`recalibrate` on the predictor first when ``values`` are in
    other units than its main metric.
    """
    tuned = copy.deepcopy(predictor)
    targets = tuned.predict(codes, as_dict=True)
    targets[tuned.main_metric_] = np.asarray(values, dtype=np.float64).reshape(-1)
    tuned.set_params(seed=seed, epochs=epochs)
    return tuned.fit(codes, targets, warm_start=True)


def widen_inputs(predictor: NeuralPredictor, mean: Any, std: Any) -> NeuralPredictor:
    """A copy of the fitted ``predictor`` that takes ``k`` more inputs after its ``d`` and
    ignores them (their first-layer weights are zero): it predicts exactly as before until
    a fine-tune (:func:`fine_tune`, ``PredictorSource``) learns what they do. This carries
    an architecture prior over to a search of the architecture plus other parameters
    (e.g. the learning rate).

    Args:
        predictor: a fitted predictor without an ``input_map`` (not modified).
        mean, std: the standardisation of the new inputs, ``k`` each (``std > 0``).

    Raises:
        ValueError: a predictor with an ``input_map``, shapes that differ, or ``std <= 0``.
    """
    mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float64).reshape(-1))
    std_t = torch.as_tensor(np.asarray(std, dtype=np.float64).reshape(-1))
    if mean_t.shape != std_t.shape or not bool((std_t > 0).all()):
        raise ValueError(f"mean and std need one value per new input, std > 0; got {mean}, {std}")
    if getattr(predictor, "input_map", None) is not None:
        raise ValueError("a predictor fitted with an input_map cannot take more inputs")
    wide = copy.deepcopy(predictor)
    m = wide.module_
    e, _, hidden = m.w1.shape
    with torch.no_grad():
        extra = torch.zeros(e, len(mean_t), hidden, dtype=m.w1.dtype)
        m.w1 = torch.nn.Parameter(torch.cat([m.w1.detach(), extra], dim=1))
        m.input_mean = torch.cat([m.input_mean, mean_t.to(m.input_mean.dtype)])
        m.input_std = torch.cat([m.input_std, std_t.to(m.input_std.dtype)])
    m._frozen.clear()
    wide.n_features_in_ = int(m.w1.shape[1])
    return wide
