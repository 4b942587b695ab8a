"""PyTorch builders: the multi-resolution network of NAS-Bench-MR and its task heads."""

from ncp_hpo.models.heads import DetectionOutput, create_head, list_tasks, register_head
from ncp_hpo.models.multires_net import MultiResolutionNet, create_model

__all__ = [
    "DetectionOutput",
    "MultiResolutionNet",
    "create_head",
    "create_model",
    "list_tasks",
    "register_head",
]
