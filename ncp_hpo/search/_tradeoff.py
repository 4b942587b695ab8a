"""The FLOPs trade-off (the paper's lambda): one definition for every proposer and sampler.

A proposal's utility is its weighted, standardised predicted objectives minus
``lam x`` its standardised log-FLOPs, where the standardisation uses the history's
codes as reference. Propagation uses the same ``lam`` as its exact-FLOPs penalty
(``propagate(lam=...)``). FLOPs only count on a space with exact FLOPs
(:attr:`CodeSpace.has_exact_flops`). ``lam`` is the sampler's own penalty, 0 by default (no
penalty), and :func:`check_lam` its one check; the values a study sees are not changed by
it. Weighting FLOPs inside the objective instead is the benchmark objective's
``flops_weight`` (:func:`ncp_hpo.benchmarks._objectives.scalarize`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ncp_hpo.propagation._types import check_lam

if TYPE_CHECKING:
    from ncp_hpo.spaces import CodeSpace

__all__ = ["check_lam", "flops_penalty", "log_flops", "standardize", "uses_flops"]


def uses_flops(lam: float, space: CodeSpace) -> bool:
    """Whether the trade-off is active: ``lam > 0`` on a space with exact FLOPs."""
    return bool(lam) and space.has_exact_flops


def log_flops(space: CodeSpace, codes: np.ndarray) -> np.ndarray:
    """``log(max(FLOPs, 1))`` of ``codes`` (``n x d``) -> ``n``."""
    flops = np.asarray(space.flops(codes), dtype=np.float64).reshape(len(codes))
    return np.log(np.maximum(flops, 1.0))


def standardize(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``(values - mean(ref)) / std(ref)`` per column (std 1 when degenerate)."""
    mu = ref.mean(0) if len(ref) else np.zeros(values.shape[1])
    sd = ref.std(0) if len(ref) > 1 else np.ones(values.shape[1])
    return (values - mu) / np.where(sd > 1e-12, sd, 1.0)


def flops_penalty(lam: float, codes_log_flops: np.ndarray, ref_log_flops: np.ndarray) -> np.ndarray:
    """``lam x`` the log-FLOPs of ``n`` codes standardised by the reference codes' -> ``n``
    (subtract it from the utility)."""
    return lam * standardize(codes_log_flops[:, None], ref_log_flops[:, None])[:, 0]
