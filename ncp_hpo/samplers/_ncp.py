"""NCP as an Optuna sampler: a thin adapter over :func:`ncp_hpo.propagation.propagate`."""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from optuna.samplers import BaseSampler

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.samplers._baselines import _COMMON_ARGS
from ncp_hpo.samplers._ncp_local import LocalNCPProposer
from ncp_hpo.samplers._proposers import GuidedNCPProposer, NCPProposer
from ncp_hpo.spaces import CodeSpace

__all__ = ["NCPSampler"]

Mode = Literal["guided", "local", "paper"]

# mode -> (proposer defaults, predictor defaults, refit schedule)
_MODES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "paper": (
        {"iterations": 70, "lr": 3.0, "n_starts": 32},
        {},
        {"refit_every": 1},
    ),
    "guided": (
        {"iterations": 30, "lr": 3.0, "n_starts": 16},
        {"hidden": 64, "head_hidden": 32, "n_members": 5, "dropout": 0.1, "epochs": 100},
        {"refit_every": 1, "refit_growth": 0.3},
    ),
}
_MODES["local"] = _MODES["guided"]  # the guided pool plus local steps (``_ncp_local``)
_PROPOSERS = {"paper": NCPProposer, "guided": GuidedNCPProposer, "local": LocalNCPProposer}


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

    Modes:
        ``"paper"`` (default): the paper's Algorithm 1 as published: one predictor (paper
        architecture) refitted after every trial, 32 codes propagated 70 iterations per
        proposal, the best predicted final proposed.
        ``"guided"``: the predictor is a 5-member ensemble (64/32 units), refitted
        (warm-started) once ``max(1, 0.3 n)`` new trials completed since the fit on ``n``;
        after each fit, 16 codes are propagated for 30 iterations and the finals, their
        trajectories, the finals' one-unit neighbours and 1,000 random codes form a cached
        candidate pool; each proposal adds the neighbours of the top 4 incumbents and takes
        the best unseen candidate by the ensemble's upper confidence bound (mean + ``kappa``
        x spread). See :class:`~ncp_hpo.samplers._proposers.GuidedNCPProposer`.
        Measured (``benchmarks/results/nas-bench-201-ncp-dev.md``): on NAS-Bench-201 the
        two modes tie in best-found (median 47.10 at 100 trials, seeds 0..19) and guided
        costs about a tenth of paper mode per trial; on NAS-Bench-MR (surrogate oracle,
        seeds 0..9, 100 trials) guided is worse (seg 78.17 vs 78.56 mIoU, video 26.60 vs
        27.01 top-1), so paper mode stays the default.
        ``"local"``: guided mode plus, on 3 proposals in 4, predictor-ranked greedy
        one-unit walks from the two best trials, and a kernel on the predictor's residuals
        refreshed on every proposal (the stale predictor learns from the latest trials).
        See :class:`~ncp_hpo.samplers._ncp_local.LocalNCPProposer` and
        ``benchmarks/results/nas-bench-201-ncp-local.md``.

    Args:
        mode: ``"paper"`` (default), ``"guided"`` or ``"local"``.
        strategy: ``"continuous"`` (default) or ``"winner_takes_all"`` propagation.
        iterations: propagation iterations (default by mode: guided 30, paper 70).
        lr: propagation learning rate on the standardised code (3).
        n_starts: codes propagated per propagation (guided 16, paper 32).
        kappa: guided mode's weight of the ensemble spread in the ranking (2; 0 ranks by
            the predicted mean alone).
        refit_every: refit after at least this many new completed trials (guided mode also
            waits for ``0.3 n`` of them).
{_COMMON_ARGS}"""

    def __init__(
        self,
        *,
        space: CodeSpace | None = None,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        lam: float = 0.0,
        mode: Mode = "paper",
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
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be 'guided', 'local' or 'paper', got {mode!r}")
        prop, pred, sched = (dict(d) for d in _MODES[mode])
        for name, value in (("iterations", iterations), ("lr", lr), ("n_starts", n_starts)):
            if value is not None:
                prop[name] = value
        if refit_every is not None:
            sched["refit_every"] = refit_every
        if prior is not None:  # fine-tuning a prior: every trial counts, the paper's way
            sched.pop("refit_growth", None)
        if not kappa >= 0:  # checked in every mode: a bad value is never silently ignored
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        if mode != "paper":
            prop["kappa"] = kappa
        if strategy not in ("continuous", "winner_takes_all"):
            raise ValueError(
                f"strategy must be 'continuous' or 'winner_takes_all', got {strategy!r}"
            )
        if prop["iterations"] < 1 or prop["n_starts"] < 1:
            raise ValueError(
                f"iterations and n_starts must be >= 1, got {prop['iterations']}, "
                f"{prop['n_starts']}"
            )
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        super().__init__(
            space=space,
            proposer_factory=partial(
                _PROPOSERS[mode],
                lam=lam,
                strategy=strategy,
                **prop,
            ),
            prior=prior,
            online=online,
            refit_every=sched.pop("refit_every"),
            predictor_params={**pred, **(predictor_params or {})},
            source_params=sched,
            n_startup_trials=n_startup_trials,
            independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling,
            seed=seed,
        )
        self.mode = mode
