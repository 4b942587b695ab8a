"""Fit the paper's predictor on a benchmark setting (2,000 train / 500 validation codes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ncp_hpo.predictor._estimator import NeuralPredictor

__all__ = ["fit_setting_predictor"]


def fit_setting_predictor(
    table: Any,
    *,
    n_train: int = 2000,
    n_val: int = 500,
    seed: int = 0,
    metrics: Sequence[str] | Literal["all"] | None = None,
    **predictor_params: Any,
) -> tuple[NeuralPredictor, dict[str, Any]]:
    """Fit the paper's predictor on a benchmark table (2,000 train / 500 validation codes).

    Args:
        table: a benchmark table (``ncp_hpo.benchmarks.load_benchmark``) with ``.codes``
            (``N x d``), ``.metrics`` (name -> ``N``) and ``.main_metric``.
        n_train, n_val: split sizes; the rest of the table is the test split.
        seed: seeds both the split (``table.split(n_train, n_val, seed)``, a numpy
            permutation) and the predictor.
        metrics: metrics to learn. Default: the main metric and ``flops`` (the learned
            FLOPs head of the paper's propagation); ``"all"``: every metric of the table.
        **predictor_params: passed to :class:`NeuralPredictor`.

    Returns:
        ``(predictor, info)`` with ``info`` = ``{"train", "val", "test"}`` index arrays and
        ``"val_score"`` / ``"test_score"`` (:class:`PredictorScore`, ``None`` if empty).
    """
    codes = np.asarray(table.codes)
    all_metrics: Mapping[str, Any] = table.metrics
    main = table.main_metric
    if metrics is None:
        names = [main] + (["flops"] if "flops" in all_metrics and main != "flops" else [])
    elif metrics == "all":
        names = [main] + [k for k in all_metrics if k != main]
    else:
        names = list(metrics)
    n = len(codes)
    if n_train + n_val > n:
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the table's {n} codes")
    split = getattr(table, "split", None)
    if callable(split):  # BenchmarkTable.split: the project's one definition of the split
        tr, va, te = split(n_train, n_val, seed)
    else:
        perm = np.random.default_rng(seed).permutation(n)
        tr, va, te = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    y = {k: np.asarray(all_metrics[k], dtype=np.float64) for k in names}
    predictor_params.setdefault("seed", seed)
    predictor_params.setdefault("main_metric", main)
    p = NeuralPredictor(**predictor_params)
    p.fit(
        codes[tr],
        {k: v[tr] for k, v in y.items()},
        val_codes=codes[va] if n_val else None,
        val_targets={k: v[va] for k, v in y.items()} if n_val else None,
    )
    info: dict[str, Any] = {"train": tr, "val": va, "test": te}
    info["val_score"] = p.score(codes[va], {k: v[va] for k, v in y.items()}) if n_val else None
    info["test_score"] = p.score(codes[te], {k: v[te] for k, v in y.items()}) if len(te) else None
    return p, info
