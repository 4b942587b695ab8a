"""Optuna samplers and Ax generation nodes: NCP and the baselines it is judged against, and
:func:`make_sampler`, any sampler by the registry's name (the names: :mod:`ncp_hpo.search`).

The Ax pieces (``NCPNode``, ``ncp_generation_strategy`` ...) import Ax on first use.
"""

from __future__ import annotations

import logging

from ncp_hpo._lazy import lazy_getattr
from ncp_hpo.samplers._baselines import (
    NetAdaptSampler,
    NeuralPredictorSampler,
    SpaceRandomSampler,
)
from ncp_hpo.samplers._ncp import NCPSampler
from ncp_hpo.samplers._registry import make_sampler

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
    "make_sampler",
    "ncp_generation_strategy",
    "quiet_ax_logging",
]

_AX_NAMES = {
    "FALLBACK_KEY": "ncp_hpo.samplers._ax",
    "NCPNode": "ncp_hpo.samplers._ax_nodes",
    "NetAdaptNode": "ncp_hpo.samplers._ax_nodes",
    "NeuralPredictorNode": "ncp_hpo.samplers._ax_nodes",
    "ProposerNode": "ncp_hpo.samplers._ax",
    "count_fallback_trials": "ncp_hpo.samplers._ax_nodes",
    "ncp_generation_strategy": "ncp_hpo.samplers._ax_nodes",
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


__getattr__ = lazy_getattr(__name__, _AX_NAMES, globals())
