"""Held-out fidelity of a predictor: :class:`PredictorScore`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["PredictorScore"]


@dataclass(frozen=True)
class PredictorScore:
    """Held-out fidelity of a predictor (:meth:`NeuralPredictor.score`).

    Attributes:
        mae: mean absolute error per metric, in the metric's original units.
        metric: the main metric the rank correlations are computed on.
        kendall_tau: Kendall's tau between predicted and true main metric.
        spearman_rho: Spearman's rho between predicted and true main metric.
        n: number of codes scored.
    """

    mae: dict[str, float]
    metric: str
    kendall_tau: float
    spearman_rho: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, pred: np.ndarray, y: np.ndarray, names: Sequence[str], main: str) -> PredictorScore:
        """The score of predictions ``pred`` against targets ``y`` (both ``n x m``, columns
        ``names``), rank correlations on metric ``main``."""
        from scipy import stats

        mae = {k: float(np.abs(pred[:, j] - y[:, j]).mean()) for j, k in enumerate(names)}
        j = list(names).index(main)
        tau = float(stats.kendalltau(pred[:, j], y[:, j]).statistic)
        rho = float(stats.spearmanr(pred[:, j], y[:, j]).statistic)
        return cls(mae=mae, metric=main, kendall_tau=tau, spearman_rho=rho, n=len(y))
