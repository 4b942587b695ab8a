"""Network Coding Propagation: edit architecture codes through frozen predictors.

See :func:`propagate` (the algorithm, paper Algorithm 1) and :func:`transfer` (cross-task
transfer). Implementation: :mod:`ncp_hpo.propagation._propagate`; the exact-FLOPs term is
compiled by :mod:`ncp_hpo.propagation._polynomial`.
"""

from ncp_hpo.propagation._propagate import (
    DifferentiablePredictor,
    Objective,
    PropagationResult,
    Trajectory,
    exact_flops_fn,
    paper_start,
    propagate,
    transfer,
)

__all__ = [
    "DifferentiablePredictor",
    "Objective",
    "PropagationResult",
    "Trajectory",
    "exact_flops_fn",
    "paper_start",
    "propagate",
    "transfer",
]
