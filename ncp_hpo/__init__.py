"""ncp-hpo: Network Coding Propagation (NCP) for Optuna and Ax.

The names a user types::

    from ncp_hpo import NCPSampler, NeuralPredictor, propagate, load_benchmark
    from ncp_hpo.spaces import MultiResolutionSpace, NB201Space
"""

from __future__ import annotations

from ncp_hpo._lazy import lazy_getattr
from ncp_hpo.exceptions import InvalidCodeError, NCPError, PredictorNotFittedError
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space, NetworkCode

__version__ = "0.2.0"

__all__ = [
    "InvalidCodeError",
    "MultiResolutionSpace",
    "NB201Space",
    "NCPError",
    "NCPSampler",
    "NetAdaptSampler",
    "NetworkCode",
    "NeuralPredictor",
    "NeuralPredictorSampler",
    "PredictorNotFittedError",
    "__version__",
    "load_benchmark",
    "propagate",
]

# Heavier submodules load on first use so `import ncp_hpo` (and `ncp-hpo --help`) stay fast.
_LAZY = {
    "NeuralPredictor": "ncp_hpo.predictor",
    "propagate": "ncp_hpo.propagation",
    "NCPSampler": "ncp_hpo.samplers",
    "NetAdaptSampler": "ncp_hpo.samplers",
    "NeuralPredictorSampler": "ncp_hpo.samplers",
    "load_benchmark": "ncp_hpo.benchmarks",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
