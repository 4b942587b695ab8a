"""Optuna samplers and Ax generation nodes: NCP and the baselines it is judged against.

The Ax pieces (``NCPNode``, ``ncp_generation_strategy`` ...) import Ax on first use.
"""

from __future__ import annotations

import logging
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
    "quiet_ax_logging",
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


def quiet_ax_logging(level: int = logging.WARNING) -> None:
    """Print only Ax log records at ``level`` or above (Ax prints INFO lines by default).

    Ax gives each of its loggers level INFO and one shared stderr handler, so setting the
    ``"ax"`` logger's level does not silence it; this sets that handler's level (Ax's
    ``set_stderr_log_level``) and keeps the INFO lines Ax logs while it is first imported
    from being printed. Call it before the first Ax import.
    """
    previous = logging.root.manager.disable
    logging.disable(max(previous, level - 1))  # Ax logs at INFO while it is imported
    try:
        from ax.utils.common.logger import set_stderr_log_level

        set_stderr_log_level(level)
    finally:
        logging.disable(previous)


def __getattr__(name: str) -> Any:
    if name not in _AX_NAMES:
        raise AttributeError(f"module 'ncp_hpo.samplers' has no attribute {name!r}")
    from ncp_hpo.samplers import _ax

    value = getattr(_ax, name)
    globals()[name] = value
    return value
