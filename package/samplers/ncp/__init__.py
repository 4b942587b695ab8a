"""OptunaHub package ``samplers/ncp``: Network Coding Propagation from the ``ncp-hpo`` package.

This module holds no search logic: it re-exports the sampler and the code spaces of the
installed ``ncp-hpo`` distribution (``pip install ncp-hpo``; see ``requirements.txt``).
"""

from __future__ import annotations

try:
    from ncp_hpo import NCPSampler
    from ncp_hpo.spaces import MultiResolutionSpace, NB201Space
except ImportError as exc:  # pragma: no cover - depends on the user's environment
    raise ImportError(
        "the OptunaHub package samplers/ncp needs the 'ncp-hpo' distribution: "
        "pip install -r https://hub.optuna.org/samplers/ncp/requirements.txt"
    ) from exc

__all__ = ["MultiResolutionSpace", "NB201Space", "NCPSampler"]
