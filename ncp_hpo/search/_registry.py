"""One registry of sampler names and task names: every command and API accepts these.

The names only (no import of Optuna or torch: the command line reads them at start-up).
:func:`ncp_hpo.samplers.make_sampler` builds the sampler of a name; ``"ax"`` and
``"ax-default"`` are generation strategies, not Optuna samplers: ``compare`` runs them through
its own loop (:data:`AX_SAMPLERS`).
"""

from __future__ import annotations

__all__ = [
    "AX_SAMPLERS",
    "DEFAULT_SAMPLERS",
    "OPTUNA_SAMPLERS",
    "PREDICTOR_SAMPLERS",
    "SAMPLERS",
    "TASKS",
    "budget_refusal",
]

PREDICTOR_SAMPLERS: tuple[str, ...] = (
    "ncp",
    "ncp-paper",
    "ncp-guided",
    "ncp-local",
    "netadapt",
    "neural-predictor",
)
"""Samplers built on the neural predictor: they take ``lam`` and a ``prior``. ``ncp`` is
``NCPSampler``'s default configuration (its ``"local"`` mode); ``ncp-paper``, ``ncp-guided``
and ``ncp-local`` name one mode each."""

OPTUNA_SAMPLERS: tuple[str, ...] = (
    *PREDICTOR_SAMPLERS,
    "random",
    "tpe",
    "gp",
    "cmaes",
    "nsga2",
)
"""Names :func:`ncp_hpo.samplers.make_sampler` builds: an Optuna ``BaseSampler`` each."""

AX_SAMPLERS: tuple[str, ...] = ("ax", "ax-default")
"""Ax generation strategies a comparison drives through an Ax ``Client``: ``ax`` is
:func:`~ncp_hpo.samplers.ncp_generation_strategy` (10 Sobol trials, then the NCP node);
``ax-default`` is the strategy Ax picks itself (a ``Client`` with no strategy set: Sobol,
then BoTorch), the baseline an Ax user gets."""

SAMPLERS: tuple[str, ...] = (*OPTUNA_SAMPLERS, *AX_SAMPLERS)
"""Every sampler name a comparison accepts."""

DEFAULT_SAMPLERS: tuple[str, ...] = ("ncp", "netadapt", "neural-predictor", "random", "tpe")
"""The samplers a comparison runs by default. ``gp`` is left out: Optuna's GPSampler costs
several times NCP's time per trial on the 27-dimensional NAS-Bench-MR space."""

UNBUDGETED_SAMPLERS: dict[str, str] = {
    "gp": (
        "Optuna's GPSampler learns from COMPLETE trials only, so a code refused over the "
        "budget teaches it nothing and it proposes that region again (hundreds of refusals, "
        "then the study stops)"
    ),
}
"""Samplers that cannot search under a compute budget, with the reason."""


def budget_refusal(name: str) -> str | None:
    """Why sampler ``name`` cannot search under a compute budget (one line), or ``None``."""
    why = UNBUDGETED_SAMPLERS.get(name)
    if why is None:
        return None
    able = ", ".join(s for s in DEFAULT_SAMPLERS if s not in UNBUDGETED_SAMPLERS)
    return f"the {name} sampler cannot search under a compute budget: {why}; these can: {able}"


TASKS: tuple[str, ...] = ("cls", "seg", "video", "bev-det")
"""Real-training tasks (``ncp_hpo.trainers.TASKS`` maps each to its strategy)."""
