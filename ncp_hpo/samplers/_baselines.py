"""The baselines NCP is judged against, as Optuna samplers (paper Section 4.2, Table 10).

Random search is Optuna's :class:`~optuna.samplers.RandomSampler`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.search import NetAdaptProposer, NeuralPredictorProposer, Proposer
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.spaces import CodeSpace

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["NetAdaptSampler", "NeuralPredictorSampler", "SpaceRandomSampler"]


class NeuralPredictorSampler(PredictorSamplerBase):
    """Neural-predictor search (Wen et al., 2020) as an Optuna sampler.

    Each proposal predicts ``pool_size`` random codes and suggests the best unevaluated one.

    Args:
        pool_size: random codes predicted per proposal (10,000 as in the paper).
        space, prior, online, lam, refit_every, predictor_params, n_startup_trials,
            independent_sampler, warn_independent_sampling, seed: as in
            :class:`~ncp_hpo.NCPSampler`.
    """

    def __init__(
        self,
        *,
        space: CodeSpace | None = None,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        lam: float = 0.0,
        pool_size: int = 10_000,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            space=space,
            proposer=ProposerSettings(
                NeuralPredictorProposer, {"lam": lam, "pool_size": pool_size}
            ),
            source=SourceSettings(
                prior=prior,
                online=online,
                refit_every=refit_every,
                predictor_params=predictor_params,
            ),
            n_startup_trials=n_startup_trials,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            seed=seed,
        )


class NetAdaptSampler(PredictorSamplerBase):
    """NetAdapt-style greedy search (Yang et al., 2018) as an Optuna sampler.

    From the incumbent, every one-unit move of one dimension is scored by the predictor and
    the best predicted metric gain per FLOP is suggested (paper Table 10).

    Args:
        max_steps: greedy steps walked per proposal (later steps serve when earlier moves
            were all evaluated already).
        space, prior, online, lam, refit_every, predictor_params, n_startup_trials,
            independent_sampler, warn_independent_sampling, seed: as in
            :class:`~ncp_hpo.NCPSampler`.
    """

    def __init__(
        self,
        *,
        space: CodeSpace | None = None,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        lam: float = 0.0,
        max_steps: int = 8,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            space=space,
            proposer=ProposerSettings(NetAdaptProposer, {"lam": lam, "max_steps": max_steps}),
            source=SourceSettings(
                prior=prior,
                online=online,
                refit_every=refit_every,
                predictor_params=predictor_params,
            ),
            n_startup_trials=n_startup_trials,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            seed=seed,
        )


class SpaceRandomSampler(PredictorSamplerBase):
    """Random search over a code space's own ``sample``, never repeating a code.

    Over a :class:`~ncp_hpo.spaces.budget.BudgetedSpace` (``space.with_budget(...)``) this
    is uniform random search restricted to the budget, so no trial is spent on a code the
    objective would refuse; over a plain space it draws what ``RandomSampler`` would.
    With the same ``seed`` it draws the same codes as the startup phase of the
    predictor-based samplers over the same space (common random numbers).

    Args:
        space: the code space the objective suggests.
        seed: seed of the draws.
    """

    def __init__(self, *, space: CodeSpace, seed: int | None = None) -> None:
        super().__init__(
            space=space,
            proposer=ProposerSettings(Proposer),
            n_startup_trials=0,
            seed=seed,
        )

    def _always_relative(self, study: Study) -> bool:
        return True

    def _propose(self, state: Any, history: Any, rng: np.random.Generator) -> np.ndarray:
        return np.empty((0, state.space.dim), dtype=np.int64)  # the base draws at random
