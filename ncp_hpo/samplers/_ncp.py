"""NCP as an Optuna sampler: a thin adapter over :func:`ncp_hpo.propagation.propagate`."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from optuna.samplers import BaseSampler

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.samplers._baselines import _COMMON_ARGS
from ncp_hpo.samplers._proposers import NCPProposer
from ncp_hpo.spaces import CodeSpace

__all__ = ["NCPSampler"]


class NCPSampler(PredictorSamplerBase):
    __doc__ = f"""Network Coding Propagation (Ding et al., ICLR 2022) as an Optuna sampler.

    The objective suggests a whole architecture code with ``space.suggest(trial)``; NCP
    proposes the code by back-propagating through a neural predictor from the incumbent(s)
    (the best trial, or the Pareto set of a multi-objective study) toward a better
    predicted objective (and fewer FLOPs with ``lam > 0``). It never proposes a code that is
    already evaluated or running.

    Supported: single- and multi-objective studies (any directions; the predictor models
    every objective and each proposal draws random trade-off weights), constraints set with
    ``trial.set_constraint`` (feasible when all values are <= 0; incumbents are feasible
    trials), failed/pruned/NaN trials (ignored), ``n_jobs > 1`` and many processes sharing
    an RDB or journal storage (state is rebuilt from the storage on every proposal).
    Parameters outside the space go to ``independent_sampler``.

    Example:
        >>> import optuna
        >>> from ncp_hpo import NCPSampler
        >>> from ncp_hpo.spaces import NB201Space
        >>> space = NB201Space()
        >>> sampler = NCPSampler(space=space, seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> # study.optimize(lambda t: accuracy_of(space.suggest(t)), n_trials=100)

    Args:
        strategy: ``"continuous"`` (default) or ``"winner_takes_all"`` propagation.
        iterations: propagation iterations per proposal (70).
        lr: propagation learning rate on the standardised code (3).
        n_starts: codes propagated per proposal (incumbents, perturbations, random).
{_COMMON_ARGS}"""

    def __init__(
        self,
        *,
        space: CodeSpace | None = None,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        lam: float = 0.0,
        strategy: Literal["continuous", "winner_takes_all"] = "continuous",
        iterations: int = 70,
        lr: float = 3.0,
        n_starts: int = 32,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
    ) -> None:
        if strategy not in ("continuous", "winner_takes_all"):
            raise ValueError(
                f"strategy must be 'continuous' or 'winner_takes_all', got {strategy!r}"
            )
        if iterations < 1 or n_starts < 1:
            raise ValueError(f"iterations and n_starts must be >= 1, got {iterations}, {n_starts}")
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        super().__init__(
            space=space,
            proposer_factory=partial(
                NCPProposer,
                lam=lam,
                strategy=strategy,
                iterations=iterations,
                lr=lr,
                n_starts=n_starts,
            ),
            prior=prior,
            online=online,
            refit_every=refit_every,
            predictor_params=predictor_params,
            n_startup_trials=n_startup_trials,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            seed=seed,
        )
