"""ncp-hpo: Network Coding Propagation (NCP) for Optuna and Ax."""

from ncp_hpo.exceptions import InvalidCodeError, NCPError
from ncp_hpo.spaces import MultiResolutionSpace, NetworkCode

__version__ = "0.1.0"

__all__ = ["InvalidCodeError", "MultiResolutionSpace", "NCPError", "NetworkCode", "__version__"]
