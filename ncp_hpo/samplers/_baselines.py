"""The baselines NCP is judged against, as Optuna samplers (paper Section 4.2, Table 10).

Random search is Optuna's :class:`~optuna.samplers.RandomSampler`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optuna.samplers import BaseSampler

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.search import NetAdaptProposer, NeuralPredictorProposer, Proposer
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.spaces import CodeSpace

__all__ = ["NetAdaptSampler", "NeuralPredictorSampler", "SpaceRandomSampler"]


class NeuralPredictorSampler(PredictorSamplerBase):
    """Neural-predictor search (Wen et al., 2020) as an Optuna sampler.

    Each proposal predicts ``pool_size`` random codes and suggests the best unevaluated one.

    Args:
        pool_size: random codes predicted per proposal (10,000 as in the paper).
        space: the code space whose parameters the objective suggests with
            ``space.suggest(trial)``; ``None`` (default): the search space is inferred from
            the study's parameters (:class:`~ncp_hpo.spaces.ParamSpace`). Other parameters
            the objective suggests join the space's code (not with a ``prior``).
        prior: a fitted :class:`~ncp_hpo.NeuralPredictor` to propose with from the first trial
            (cross-task transfer; its main metric stands for objective 0); needs ``space``.
        online: fit a predictor on the study's completed trials. With a ``prior``: re-scale it
            to the study's objective and fine-tune a copy after every trial; the fine-tune
            takes over once it predicts the trials it had not seen better than the prior
            (:class:`~ncp_hpo.search.PredictorSource`). ``False`` keeps the prior as it is.
        lam: weight of the exact-FLOPs penalty (paper's lambda), 0 to ignore FLOPs.
        refit_every: refit the online predictor after this many new completed trials.
        predictor_params: keyword arguments of the online ``NeuralPredictor``.
        n_startup_trials: random trials before the first proposal (default 10, 0 with a prior).
        independent_sampler: sampler of dynamic or conditional parameters (default random).
        warn_independent_sampling: warn (once per parameter and study) when such a
            parameter is sampled independently.
        seed: seed of the sampler's RNG (predictor fits and proposals derive from it).
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
        space: the code space whose parameters the objective suggests with
            ``space.suggest(trial)``; ``None`` (default): the search space is inferred from
            the study's parameters (:class:`~ncp_hpo.spaces.ParamSpace`). Other parameters
            the objective suggests join the space's code (not with a ``prior``).
        prior: a fitted :class:`~ncp_hpo.NeuralPredictor` to propose with from the first trial
            (cross-task transfer; its main metric stands for objective 0); needs ``space``.
        online: fit a predictor on the study's completed trials. With a ``prior``: re-scale it
            to the study's objective and fine-tune a copy after every trial; the fine-tune
            takes over once it predicts the trials it had not seen better than the prior
            (:class:`~ncp_hpo.search.PredictorSource`). ``False`` keeps the prior as it is.
        lam: weight of the exact-FLOPs penalty (paper's lambda), 0 to ignore FLOPs.
        refit_every: refit the online predictor after this many new completed trials.
        predictor_params: keyword arguments of the online ``NeuralPredictor``.
        n_startup_trials: random trials before the first proposal (default 10, 0 with a prior).
        independent_sampler: sampler of dynamic or conditional parameters (default random).
        warn_independent_sampling: warn (once per parameter and study) when such a
            parameter is sampled independently.
        seed: seed of the sampler's RNG (predictor fits and proposals derive from it).
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

    def _always_relative(self) -> bool:
        return True

    def _propose(self, state: Any, history: Any, rng: np.random.Generator) -> np.ndarray:
        return np.empty((0, state.space.dim), dtype=np.int64)  # the base draws at random
