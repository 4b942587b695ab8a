"""NCP as an Optuna sampler: a thin adapter over :func:`ncp_hpo.propagation.propagate`."""

from __future__ import annotations

from typing import Any, Literal

from optuna.samplers import BaseSampler

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.search._presets import Mode, ncp_settings
from ncp_hpo.search._warm_start import ZeroCostWarmStart, resolve_warm_start
from ncp_hpo.spaces import CodeSpace

__all__ = ["NCPSampler"]


class NCPSampler(PredictorSamplerBase):
    """Network Coding Propagation (Ding et al., ICLR 2022) as an Optuna sampler.

    The objective suggests a whole architecture code with ``space.suggest(trial)``, or any
    parameters with ``trial.suggest_int``/``suggest_float``/``suggest_categorical`` (no
    ``space``: the search space is inferred from the study, as Optuna's ``GPSampler`` does,
    and encoded by :class:`~ncp_hpo.spaces.ParamSpace`), or both (searched as one vector).
    NCP proposes the code by back-propagating through a neural predictor from the
    incumbent(s) (the best trial, or the Pareto set of a multi-objective study) toward a
    better predicted objective (and fewer FLOPs with ``lam > 0``, which needs a ``space``
    with exact FLOPs). It never proposes a code that is already evaluated or running.

    Supported: single- and multi-objective studies (any directions; the predictor models
    every objective and each proposal draws random trade-off weights), constraints set with
    ``trial.set_constraint`` (feasible when all values are <= 0; incumbents are feasible
    trials), failed/pruned/NaN trials (ignored), ``n_jobs > 1`` and many processes sharing
    an RDB or journal storage (state is rebuilt from the storage on every proposal).
    Dynamic or conditional parameters (outside the intersection search space) go to
    ``independent_sampler``, with one warning per parameter and study.

    Example:
        >>> import optuna
        >>> from ncp_hpo import NCPSampler
        >>> from ncp_hpo.spaces import NB201Space
        >>> space = NB201Space()
        >>> sampler = NCPSampler(space=space, seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> # study.optimize(lambda t: accuracy_of(space.suggest(t)), n_trials=100)
        >>> # any objective: optuna.create_study(sampler=NCPSampler(seed=0))

    Modes:
        ``"local"`` (the default without a prior): the guided mode below plus, on 3 proposals
        in 4, predictor-ranked greedy one-unit walks from the two best trials, and a kernel on the
        predictor's residuals refreshed on every proposal (the stale predictor learns from
        the latest trials). See :class:`~ncp_hpo.search._local.LocalNCPProposer`; how the
        modes compare is in the benchmarks page of the docs.
        ``"guided"``: the predictor is a 5-member ensemble (64/32 units), refitted
        (warm-started) once ``max(1, 0.3 n)`` new trials completed since the fit on ``n``;
        after each fit, 16 codes are propagated for 30 iterations and the finals, their
        trajectories, the finals' one-unit neighbours and 1,000 random codes form a cached
        candidate pool; each proposal adds the neighbours of the top 4 incumbents and takes
        the best unseen candidate by the ensemble's upper confidence bound (mean + ``kappa``
        x spread). See :class:`~ncp_hpo.search.GuidedNCPProposer`.
        ``"paper"``: the paper's Algorithm 1 as published: one predictor (paper
        architecture) refitted after every trial, 32 codes propagated 70 iterations per
        proposal, the best predicted final proposed (``ncp-paper`` in the commands; the
        reproduction records of Tables 2-4 use it).

    Args:
        mode: ``"local"``, ``"guided"`` or ``"paper"``; ``None`` (default): ``"local"``,
            or ``"paper"`` when a ``prior`` is given (propagation through the prior from the
            first trial: the paper's transfer setting).
        strategy: ``"continuous"`` (default) or ``"winner_takes_all"`` propagation.
        iterations: propagation iterations (default by mode: guided 30, paper 70).
        lr: propagation learning rate on the standardised code (3).
        n_starts: codes propagated per propagation (guided 16, paper 32).
        kappa: guided mode's weight of the ensemble spread in the ranking (2; 0 ranks by
            the predicted mean alone).
        refit_every: refit after at least this many new completed trials (guided mode also
            waits for ``0.3 n`` of them).
        warm_start: how the start-up trials are chosen: ``"auto"`` (default) ranks a seeded
            random pool of 1,000 codes by a zero-cost proxy and takes the best, on
            NAS-Bench-201 (synflow, shipped with the package); paper mode and the other
            spaces start at random. A multi-objective study takes the same pool's
            estimated Pareto front of the proxy against the exact FLOPs, spread along the
            FLOPs (the proxy's top codes alone would crowd one end of the trade-off); on a
            space with exact FLOPs and no proxy (the multi-resolution space) its start-up
            codes are spread along the exact FLOPs, and on a space without them it starts
            at random. A
            :class:`~ncp_hpo.search.ZeroCostWarmStart`, or ``None`` (random start-up). On
            an inferred space (no ``space``) only ``ZeroCostWarmStart(params_scorer=...)``
            applies, a score of each configuration's parameters; trial 0 is random there,
            as the space is known once a trial has completed.
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
        mode: Mode | None = None,
        strategy: Literal["continuous", "winner_takes_all"] = "continuous",
        iterations: int | None = None,
        lr: float | None = None,
        n_starts: int | None = None,
        kappa: float = 2.0,
        refit_every: int | None = None,
        predictor_params: dict[str, Any] | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
        warm_start: ZeroCostWarmStart | Literal["auto"] | None = "auto",
    ) -> None:
        settings = ncp_settings(
            mode,
            prior=prior,
            online=online,
            lam=lam,
            strategy=strategy,
            iterations=iterations,
            lr=lr,
            n_starts=n_starts,
            kappa=kappa,
            refit_every=refit_every,
            predictor_params=predictor_params,
        )
        super().__init__(
            space=space,
            proposer=settings.proposer,
            source=settings.source,
            n_startup_trials=n_startup_trials,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            seed=seed,
            warm_start=resolve_warm_start(warm_start, mode=settings.mode, space=space),
            # "auto" without a proxy: a multi-objective study's start spreads along the FLOPs
            spread_start=warm_start == "auto" and settings.mode != "paper",
        )
        self.mode: str = settings.mode
