"""Search spaces: the 27-integer multi-resolution code, the NAS-Bench-201 cell, any
Optuna search space (:class:`ParamSpace`) and products of them (:class:`ProductSpace`)."""

from ncp_hpo.spaces._base import CodeSpace
from ncp_hpo.spaces.multires import DIM_NAMES, MultiResolutionSpace, NetworkCode, StageCode
from ncp_hpo.spaces.nb201 import NB201Space
from ncp_hpo.spaces.params import ParamSpace
from ncp_hpo.spaces.product import ProductSpace

__all__ = [
    "DIM_NAMES",
    "CodeSpace",
    "MultiResolutionSpace",
    "NB201Space",
    "NetworkCode",
    "ParamSpace",
    "ProductSpace",
    "StageCode",
]
