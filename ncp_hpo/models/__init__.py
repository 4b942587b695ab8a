"""PyTorch builders: the multi-resolution network of NAS-Bench-MR and its task heads, and
the NAS-Bench-201 network of a cell."""

from ncp_hpo.models.heads import DetectionOutput, create_head, list_tasks, register_head
from ncp_hpo.models.multires_net import MultiResolutionNet, create_model
from ncp_hpo.models.nb201_net import NB201Network, create_nb201_model

__all__ = [
    "DetectionOutput",
    "MultiResolutionNet",
    "NB201Network",
    "create_head",
    "create_model",
    "create_nb201_model",
    "list_tasks",
    "register_head",
]
