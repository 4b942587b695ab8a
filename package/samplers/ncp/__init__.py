"""OptunaHub package ``samplers/ncp``: Network Coding Propagation from the ``ncp-hpo`` package.

This module holds no search logic: it re-exports the sampler and the code spaces of the
installed ``ncp-hpo`` distribution (see ``requirements.txt``). ncp-hpo has no release on PyPI
yet: install it from a checkout of its repository (``pip install -e ".[hub]"`` there).
"""

from __future__ import annotations

try:
    from ncp_hpo import NCPSampler
    from ncp_hpo.spaces import MultiResolutionSpace, NB201Space
except ImportError as exc:  # pragma: no cover - depends on the user's environment
    raise ImportError(
        "the OptunaHub package samplers/ncp needs the 'ncp-hpo' distribution, which has no "
        "release on PyPI yet: install it from a checkout of its repository "
        "(python3 -m pip install -e '.[hub]' there)"
    ) from exc

__all__ = ["MultiResolutionSpace", "NB201Space", "NCPSampler"]
