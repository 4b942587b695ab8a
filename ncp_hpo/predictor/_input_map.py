"""Extra linear input features, trained on and then folded into the first layer.

``NeuralPredictor(input_map=A)`` with ``A`` of shape ``f x d`` trains on ``[x, x A^T]``
(``n x (d + f)``: the codes plus ``f`` fixed linear features of them, e.g. NAS-Bench-201's
operation counts, :attr:`~ncp_hpo.spaces.CodeSpace.input_features`) and then folds the
extra columns into the first layer, so the fitted network takes the ``d``-dim codes like
any other: prediction, the hand-written input gradients of propagation and checkpoints
are unchanged. The features change what the training finds (their own weights, their own
standardisation), not what the network can represent.

Folding, per member: the first layer computes ``h = z' W + b`` on the standardised
expanded input ``z' = (M x - mu') / sd'`` with ``M = [I; A]``. With ``x = sd * z + mu`` (the
codes' own standardisation) this is ``h = z (S M^T D' W) + b + (M mu - mu') D' W`` where
``S = diag(sd)`` and ``D' = diag(1 / sd')``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ncp_hpo.predictor._network import EnsembleMLP

__all__ = ["check_input_map", "expand_codes", "fold_input_map"]


def check_input_map(input_map: Any, d: int) -> np.ndarray:
    """``input_map`` as a finite ``f x d`` float64 array.

    Raises:
        ValueError: not a 2-D numeric array with ``d`` columns and at least one row, or not
            finite.
    """
    try:
        a = np.asarray(input_map, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_map must be a numeric array of shape (f, {d}); got {input_map!r}"
        ) from None
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != d:
        raise ValueError(
            f"input_map must have shape (f, {d}) with f >= 1 (one row per extra feature, one "
            f"column per code dimension); got shape {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError("input_map must be finite (no NaN or infinite entries)")
    return a


def expand_codes(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Codes ``n x d`` -> ``n x (d + f)``: the codes and their features ``x a^T``."""
    return np.concatenate([x, x @ a.T], axis=1)


def fold_input_map(
    module: EnsembleMLP, a: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> EnsembleMLP:
    """A copy of ``module`` (trained on expanded codes, ``d + f`` inputs) that takes the
    ``d``-dim codes and computes the same function; ``mean``/``std`` (``d``) become its
    input standardisation (zero spreads replaced by 1)."""
    d = a.shape[1]
    std = np.where(std > 1e-12, std, 1.0)
    m = np.concatenate([np.eye(d), a], axis=0)  # (d + f) x d
    inv_sd = 1.0 / module.input_std.double().numpy()  # d + f
    proj = torch.from_numpy(std[:, None] * m.T * inv_sd[None, :])  # d x (d + f)
    shift = torch.from_numpy((m @ mean - module.input_mean.double().numpy()) * inv_sd)
    folded = copy.deepcopy(module)
    with torch.no_grad():
        w1 = module.w1.double()  # E x (d + f) x H
        folded.w1 = torch.nn.Parameter(torch.einsum("ij,ejh->eih", proj, w1).float())
        b1 = module.b1.double() + torch.einsum("j,ejh->eh", shift, w1).unsqueeze(1)
        folded.b1 = torch.nn.Parameter(b1.float())
        folded.input_mean = torch.from_numpy(mean).float()
        folded.input_std = torch.from_numpy(std).float()
    folded._frozen.clear()
    folded._plans.clear()
    return folded
