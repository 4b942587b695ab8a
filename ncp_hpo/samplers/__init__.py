"""Optuna samplers and Ax generation nodes: NCP and the baselines it is judged against.

The Ax pieces (``NCPNode``, ``ncp_generation_strategy`` ...) import Ax on first use.
"""

from __future__ import annotations

from typing import Any

from ncp_hpo.samplers._baselines import (
    NetAdaptSampler,
    NeuralPredictorSampler,
    SpaceRandomSampler,
)
from ncp_hpo.samplers._ncp import NCPSampler

__all__ = [
    "FALLBACK_KEY",
    "NCPNode",
    "NCPSampler",
    "NetAdaptNode",
    "NetAdaptSampler",
    "NeuralPredictorNode",
    "NeuralPredictorSampler",
    "ProposerNode",
    "SpaceRandomSampler",
    "count_fallback_trials",
    "ncp_generation_strategy",
]

_AX_NAMES = {
    "FALLBACK_KEY",
    "NCPNode",
    "NetAdaptNode",
    "NeuralPredictorNode",
    "ProposerNode",
    "count_fallback_trials",
    "ncp_generation_strategy",
}


def __getattr__(name: str) -> Any:
    if name not in _AX_NAMES:
        raise AttributeError(f"module 'ncp_hpo.samplers' has no attribute {name!r}")
    from ncp_hpo.samplers import _ax

    value = getattr(_ax, name)
    globals()[name] = value
    return value
