"""Network Coding Propagation (paper Section 3.1, Algorithm 1, Appendix C and E.1).

:func:`propagate` edits architecture codes by back-propagating through frozen
:class:`~ncp_hpo.predictor.NeuralPredictor` s, batched over ``n`` starting codes at once,
in the projected-gradient shape of BoTorch's ``gen_candidates_torch``: initial points,
bounds from the space, an optional injectable optimizer, fixed features, a callback and a
timeout, and a result dataclass.

Strategies
----------
``"continuous"`` (Eq. 3): every iteration computes, per starting code,
``L = sum_t w_t * (smoothL1(p_t, t_t) + lambda * smoothL1(f, t_f))`` and takes a gradient
step on the *standardised* code ``z = (e - input_mean) / input_std`` of the first
predictor (learning rate 3, 70 iterations by default), then projects ``z`` onto the
space's box. The valid code reported at each iteration is ``space.round(e)``.

``"winner_takes_all"`` (Eq. 4-6): the same loss and gradient, but only one dimension
``l`` moves per iteration, by ``+-k`` (``k`` = the space's grid step: 8 for channels, 1
otherwise). ``Delta r_l = T(e + k u_l) - T(e)`` are exact FLOPs increases, the gradient
``grad_e`` is taken with respect to the raw code ``e``, and ``g = grad_e / Delta r``:
if some ``g_l > 0`` the largest such ``l`` with room below is decreased (better metric
*and* fewer FLOPs), otherwise the smallest ``g_l < 0`` with room above is increased (best
metric gain per FLOP). A dimension at its bound cannot move past it; a row with no legal
move stops.

Targets (Algorithm 1, "re-set new target metrics (optional)")
-------------------------------------------------------------
``target_mode="per_iteration"`` (default, what upstream ``tools/ncp.py`` does): each
iteration sets ``t = p + step`` (``p - step`` for minimised metrics) and ``t_f = f -
flops_step`` from the current prediction, so the propagation never "arrives" and runs its
iterations. With the smooth-L1 loss (``beta = 1``) and ``step >= 1`` the gradient is then
exactly ``-(grad p - lambda grad f)``: plain gradient ascent on the trade-off; with
``step < 1`` it is scaled by ``step``. The paper's text uses ``step = 1`` (our default).
Upstream's YAML configs use ``per_step_increase = per_flops_decrease = 0.1``, but upstream
``tools/ncp.py`` applies an L1 loss to these targets, whose gradient ``sign(p - t) grad p``
does not depend on the size of the offset: its effective step is the same as ours at
``step = 1`` (the same learning rate moves the code equally far). ``target_mode="fixed"`` sets the
targets once from the initial prediction (``t = p_0 + step``); a row stops (is frozen)
once all its targets are met (``stop_at_target``). :class:`Objective` ``target`` gives an
absolute target in the metric's units (e.g. "most efficient model with mIoU >= 77").

FLOPs term
----------
``flops_source="predictor"`` uses each predictor's learned ``flops`` output (the paper's
way; it is already standardised by the predictor's target statistics).
``flops_source="exact"`` uses ``space.flops_torch`` (differentiable closed form),
standardised as ``(F(e) - mean) / std`` with the mean and std of the exact FLOPs of
``flops_reference`` codes: by default 4,096 codes drawn uniformly from the space with a
fixed seed, which matches how the benchmark codes (and so the learned head's statistics)
were sampled; pass the predictor's training codes to match its statistics exactly.
``"auto"`` picks ``"exact"`` where ``space.has_exact_flops``, else ``"predictor"``.
With relative targets only the std scales the update. ``flops_kwargs`` choose whose FLOPs
are minimised (task head, input size, counting convention: ``space.flops_torch``'s
arguments); the reference statistics and the reported ``flops`` use the same arguments.
The exact term is evaluated by :func:`exact_flops_fn`: ``space.flops_torch`` compiled once
into an exact polynomial (:mod:`ncp_hpo.propagation._polynomial`), one autograd node.

Speed
-----
Per iteration the work is a handful of tensor operations on the whole ``n x d`` batch; no
Python work proportional to ``n``. The continuous codes are kept, and rounded, predicted
and costed in one batch after the loop (only codes that changed since the previous
iteration are evaluated), except every ``round_every`` iterations where the rounding is
part of the algorithm.

Multi-task (Eq. 7) and transfer
-------------------------------
Several objectives (one predictor each, e.g. classification and segmentation) add their
weighted gradients: ``grad = sum_t w_t grad_t``, each ``grad_t`` including its own FLOPs
term as in the paper (so with ``"exact"`` FLOPs the FLOPs weight is ``lambda * sum w_t``).
Cross-task transfer starts from another task's optimum: :func:`transfer`.

NAS-Bench-201 (Appendix C)
--------------------------
The 30-dim one-hot is propagated as a continuous code; every ``round_every = 10``
iterations (one "step") the code is reset to its per-edge arg-max (``space.round``).
``round_every="auto"`` takes the cadence from the space (:attr:`CodeSpace.round_every`:
10 for :class:`~ncp_hpo.spaces.NB201Space`, never for the multi-resolution space).

See :func:`propagate` (the algorithm, paper Algorithm 1) and :func:`transfer` (cross-task
transfer); :class:`PropagationConfig` holds every option of a call. Modules: ``_types``
(objectives, options, results), ``_resolved`` (objectives resolved against the predictors),
``_loss`` (forward, targets, loss, analytic gradient), ``_flops`` (the exact term and
winner-takes-all), ``_propagate`` (the loop).
"""

from ncp_hpo.propagation._flops import exact_flops_fn
from ncp_hpo.propagation._propagate import paper_start, propagate, transfer
from ncp_hpo.propagation._types import (
    DifferentiablePredictor,
    Objective,
    PropagationConfig,
    PropagationResult,
    Trajectory,
)

__all__ = [
    "DifferentiablePredictor",
    "Objective",
    "PropagationConfig",
    "PropagationResult",
    "Trajectory",
    "exact_flops_fn",
    "paper_start",
    "propagate",
    "transfer",
]
