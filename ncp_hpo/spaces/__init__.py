"""Search spaces: the 27-integer multi-resolution code and the NAS-Bench-201 cell."""

from ncp_hpo.spaces._base import CodeSpace
from ncp_hpo.spaces.multires import DIM_NAMES, MultiResolutionSpace, NetworkCode, StageCode
from ncp_hpo.spaces.nb201 import NB201Space

__all__ = [
    "DIM_NAMES",
    "CodeSpace",
    "MultiResolutionSpace",
    "NB201Space",
    "NetworkCode",
    "StageCode",
]
