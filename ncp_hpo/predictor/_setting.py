"""Fit the paper's predictor on a benchmark setting (2,000 train / 500 validation codes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ncp_hpo.predictor._estimator import NeuralPredictor

__all__ = ["COST_METRICS", "fit_setting_predictor", "grouped_heads"]

#: Metrics that measure a network's cost rather than its quality; they share one head.
COST_METRICS: frozenset[str] = frozenset({"flops", "params"})


def grouped_heads(names: Sequence[str], main: str) -> list[list[str]]:
    """The reference's grouping of outputs into heads, as a rule for any setting.

    The main metric gets a head of its own, the other quality metrics (``top5``;
    ``mAcc`` and ``aAcc``) share one, and the cost metrics (:data:`COST_METRICS`) share
    one; empty groups are dropped. Upstream's seg config is
    ``[["mIoU"], ["mAcc", "aAcc"], ["flops", "params"]]``.

    Args:
        names: the learned metrics (``main`` among them).
        main: the main metric.

    Returns:
        the heads, a partition of ``names``, main metric's head first.
    """
    if main not in names:
        raise ValueError(f"main metric {main!r} is not among the metrics {list(names)}")
    quality = [n for n in names if n != main and n not in COST_METRICS]
    cost = [n for n in names if n != main and n in COST_METRICS]
    return [g for g in ([main], quality, cost) if g]


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
        **predictor_params: passed to :class:`NeuralPredictor`; ``heads="grouped"`` groups
            the learned metrics by :func:`grouped_heads` (the reference's heads).

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
    if isinstance(predictor_params.get("heads"), str):
        if predictor_params["heads"] != "grouped":
            raise ValueError(
                f"heads must be 'grouped', None or a list of metric groups; "
                f"got {predictor_params['heads']!r}"
            )
        predictor_params["heads"] = grouped_heads(names, main)
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
