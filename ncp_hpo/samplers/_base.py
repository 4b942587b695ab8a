"""Shared Optuna plumbing of the predictor-based samplers (NCP, NetAdapt, Neural Predictor).

The base class owns everything that is not the proposal rule: which parameters are
sampled relatively (the code space's, plus every other parameter Optuna's intersection
search space finds in the study, encoded by :class:`~ncp_hpo.spaces.ParamSpace`; without
a code space, all of them), the startup phase, the independent fallback and
its warning, reading the study's history from the storage on every call (never
accumulating state in ``after_trial``, so many processes can share one study),
objective directions, constraints, deduplication against evaluated and running trials,
seeding, and thread safety for ``n_jobs > 1``. Subclasses implement :meth:`_propose`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ncp_hpo.exceptions import InvalidCodeError, NCPWarning
from ncp_hpo.predictor import widen_inputs
from ncp_hpo.samplers._intersection import IntersectionCache
from ncp_hpo.samplers._private_apis import (
    optuna_independent_sampling_template,
    optuna_set_trial_system_attr,
)
from ncp_hpo.samplers._trial_rows import PENDING, REJECTED, TrialRows
from ncp_hpo.search import History, HistoryBuilder, LazyRNG, PredictorSource, SearchEngine, code_key
from ncp_hpo.search._engine import REPEATED
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.search._warm_start import spread_pool
from ncp_hpo.spaces import CodeSpace, ParamSpace, ProductSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

    from ncp_hpo.search import Proposer
    from ncp_hpo.search._warm_start import ZeroCostWarmStart

__all__ = ["PredictorSamplerBase"]

_PROPOSAL_ATTR = "ncp:proposal"
_LOG = optuna.logging.get_logger(__name__)


@dataclass
class _SpaceState:
    """Everything tied to one encoded search space: the space, its engine (proposer and
    predictor source), the Optuna names it covers, and memoised decodings."""

    space: CodeSpace
    engine: SearchEngine
    param_names: tuple[str, ...]
    # params -> (code, code_key(code)), or None where the params decode to no code
    codes: dict[tuple[Any, ...], tuple[np.ndarray, bytes] | None] = field(default_factory=dict)
    # the warm start's pool by order (trade-off order or not), built on first use
    warm_codes: dict[bool, np.ndarray] = field(default_factory=dict)
    # study directions -> finished trials' history rows (by trial object)
    rows: dict[tuple[str, ...], TrialRows] = field(default_factory=dict)


class PredictorSamplerBase(BaseSampler):
    """Base of samplers that propose codes of a :class:`~ncp_hpo.spaces.CodeSpace`.

    The study's trials become a :class:`~ncp_hpo.search.History`; the shared
    :class:`~ncp_hpo.search.SearchEngine` fits the predictor (a
    :class:`~ncp_hpo.search.PredictorSource`), ranks candidate codes with the
    :class:`~ncp_hpo.search.Proposer` and picks the first one that is neither evaluated
    nor running (else a random unseen code); this class publishes it as the trial's
    proposal and re-checks for a rival worker holding the same code.

    Without a ``space``, the searched space is Optuna's intersection search space of the
    study (the parameters every completed or pruned trial has, with one distribution),
    encoded by :class:`~ncp_hpo.spaces.ParamSpace`; with one, the intersection's other
    parameters join the code (:class:`~ncp_hpo.spaces.ProductSpace`); a ``prior`` is then
    widened to them (:func:`~ncp_hpo.predictor.widen_inputs`: it ignores them until the
    study's trials fine-tune it) and the proposer moves them step by step (``held_dims``:
    random codes take the best trial's values, propagation moves them ``held_reach`` steps
    at most).

    Args:
        space: the code space (``None``: inferred per study).
        proposer: the proposer's settings; called with each searched space.
        source: the predictor source's settings (default: an online predictor with
            ``NeuralPredictor`` defaults, refitted after every trial).
        n_startup_trials: trials before the first proposal (default 10, 0 with a prior).
        independent_sampler: sampler of the parameters outside the relative search space.
        warn_independent_sampling: warn once per parameter and study when one is.
        seed: seed of the sampler's RNG.
        warm_start: ranks the start-up codes (``None``: random start-up).
        spread_start: without a warm start, a multi-objective study on a space with exact
            FLOPs takes start-up codes spread along them
            (:func:`~ncp_hpo.search._warm_start.spread_pool`) instead of random ones.
    """

    def __init__(
        self,
        *,
        space: CodeSpace | None,
        proposer: ProposerSettings,
        source: SourceSettings | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
        warm_start: ZeroCostWarmStart | None = None,
        spread_start: bool = False,
    ) -> None:
        source = source or SourceSettings()
        prior = source.prior
        if n_startup_trials is None:
            n_startup_trials = 0 if prior is not None else 10
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int):
            raise TypeError(f"n_startup_trials must be an int, got {n_startup_trials!r}")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        if space is not None and not isinstance(space, CodeSpace):
            raise TypeError(f"space must be a CodeSpace or None, got {type(space).__name__}")
        if space is None:
            source.check()  # bad arguments fail here, not at trial 11
            if warm_start is not None and not warm_start.scores_params:
                raise ValueError(
                    f"{warm_start!r} scores the codes of one code space: pass that space as "
                    "space=..., or rank an inferred space's configurations with "
                    "ZeroCostWarmStart(params_scorer=...)"
                )
            if prior is not None:
                raise ValueError(
                    "a prior predicts the codes of one code space: pass that space as "
                    "space=... (without a space the search space is inferred from the study)"
                )
            if proposer.lam:
                raise ValueError(
                    f"lam={proposer.lam} weights exact FLOPs, which only a code space has: "
                    "pass space=... (e.g. MultiResolutionSpace()) or keep lam=0"
                )
        self._given_space = space
        self._prior = prior
        self._source_settings = source
        self._proposer_settings = proposer
        self._n_startup_trials = n_startup_trials
        self._warm_start = warm_start
        self._spread_start = bool(spread_start) and space is not None and space.has_exact_flops
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent_sampling = warn_independent_sampling
        self._rng = LazyRNG(seed)
        self._lock = threading.RLock()  # one instance is shared by n_jobs threads
        self.last_proposal_info: dict[str, Any] = {}
        self._states: dict[tuple[Any, ...], _SpaceState] = {}
        self._main = None if space is None else self._new_state(space)
        self._warned_repeating: set[str] = set()  # studies told that codes repeat
        self._warned_params: set[tuple[str, str]] = set()  # (study, param) warned once
        self._intersections = IntersectionCache()

    def _new_state(self, space: CodeSpace) -> _SpaceState:
        """A fresh engine (proposer and predictor source) over ``space``; a prior over the
        given space is widened to the joined parameters (ignoring them until fine-tuned)."""
        settings, proposer = self._source_settings, self._proposer_settings
        if (
            self._prior is not None
            and isinstance(space, ProductSpace)
            and space.parts[0] is self._given_space
        ):
            rest = space.parts[1]
            mean, std = (rest.lower + rest.upper) / 2, (rest.upper - rest.lower) / np.sqrt(12)
            widened = widen_inputs(self._prior, mean, np.maximum(std, 1e-6))
            settings = replace(settings, prior=widened)
            held = tuple(range(space.dim - rest.dim, space.dim))  # what the prior never saw
            proposer = replace(proposer, params={**proposer.params, "held_dims": held})
        engine = SearchEngine(proposer=proposer(space), source=settings(space))
        # Optuna parameter names (for NB201 one categorical per edge, not the one-hot dims)
        return _SpaceState(space, engine, tuple(space.optuna_distributions()))

    @property
    def space(self) -> CodeSpace | None:
        """The code space given to the constructor (``None``: inferred from each study)."""
        return self._given_space

    # the main state's parts (the given space's), for introspection
    @property
    def _source(self) -> PredictorSource:
        return self._require_main().engine.source

    @property
    def _proposer(self) -> Proposer:
        return self._require_main().engine.proposer

    def _require_main(self) -> _SpaceState:
        if self._main is None:
            raise AttributeError("this sampler infers its space per study; it has no fixed engine")
        return self._main

    # -- Optuna's sampler contract -------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng.reseed()
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._given_space is None:
            return self._intersection(study)
        code = self._given_space.optuna_distributions()
        if not self._uses_space(study):
            return {}
        extras = {n: d for n, d in self._intersection(study).items() if n not in code}
        return {**code, **extras}

    def _intersection(self, study: Study) -> dict[str, BaseDistribution]:
        """Optuna's intersection search space over the completed and pruned trials, without
        single-valued parameters (nothing to search); updated incrementally per study."""
        space = self._intersections(study)
        return {n: d for n, d in space.items() if not d.single()}

    def _uses_space(self, study: Study) -> bool:
        """Whether the objective suggests the given space's parameters (seen on any trial)."""
        if self._always_relative(study):
            return True
        names = self._require_main().param_names
        for t in study.get_trials(deepcopy=False):
            if names[0] in t.params and names[-1] in t.params:
                return True
        return False

    def _always_relative(self, study: Study) -> bool:
        """True when proposals are possible before any trial (with a prior), or when the
        sampler draws the startup codes."""
        return self._prior is not None or self._draws_startup(study)

    def _draws_startup(self, study: Study) -> bool:
        """Whether the sampler draws the start-up codes itself (a budget-restricted space,
        a zero-cost warm start, or the spread start of a multi-objective study) instead of
        leaving them to the independent sampler."""
        space = self._given_space
        return (
            self._warm_start is not None
            or (space is not None and space.restricted)
            or (self._spread_start and len(study.directions) > 1)
        )

    @property
    def warm_start(self) -> ZeroCostWarmStart | None:
        """The zero-cost warm start of the start-up trials (``None``: random start-up)."""
        return self._warm_start

    def _state(self, search_space: dict[str, BaseDistribution]) -> _SpaceState | None:
        """The state over ``search_space`` (built on first use), or ``None`` where it lacks
        some of the given space's parameters."""
        given = self._given_space
        if given is None:
            base: dict[str, BaseDistribution] = {}
        else:
            base = given.optuna_distributions()
            if any(n not in search_space for n in base):
                return None
        extras = {n: d for n, d in search_space.items() if n not in base}
        if not extras:
            return self._main
        key = tuple(extras.items())
        if key not in self._states:
            rest = ParamSpace(extras)
            self._states[key] = self._new_state(
                rest if given is None else ProductSpace([given, rest])
            )
        return self._states[key]

    def _startup_candidates(self, state: _SpaceState, n_objectives: int) -> np.ndarray:
        """The warm start's ranked pool (seeded once per sampler; parameters outside the
        given space drawn at random beside it), or no candidates (a random unseen code).

        A multi-objective study takes the pool in trade-off order instead
        (:meth:`~ncp_hpo.search.ZeroCostWarmStart.tradeoff_pool`: the estimated Pareto front
        of the proxy against the exact FLOPs, spread along the FLOPs; the proxy's best codes
        alone are large networks that would crowd one end of the trade-off the study is
        after). Without a warm start it takes the spread start where enabled
        (:func:`~ncp_hpo.search._warm_start.spread_pool`), and on a space without exact
        FLOPs it starts at random."""
        space = state.space
        # an inferred space (no given one): the params_scorer ranks its whole vector
        given = self._given_space
        scored = space if given is None else given
        tradeoff = n_objectives > 1
        warm = self._warm_start
        if tradeoff and not scored.has_exact_flops:
            warm = None
        if warm is None and not (tradeoff and self._spread_start):
            return np.empty((0, space.dim), dtype=np.int64)
        if tradeoff not in state.warm_codes:
            seed = self._rng.seed
            if seed is None:
                seed = int(self._rng.rng.integers(2**32))
            if warm is None:
                pool = spread_pool(scored, seed)
            elif tradeoff:
                pool = warm.tradeoff_pool(scored, seed)
            else:
                pool = warm.ranked_pool(scored, seed)
            if isinstance(space, ProductSpace) and space is not self._given_space:
                rest = space.parts[1].sample(len(pool), seed=np.random.default_rng(seed))
                pool = np.concatenate([pool, rest], axis=1)
            state.warm_codes[tradeoff] = pool
        return state.warm_codes[tradeoff]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        state = self._state(search_space) if search_space else None
        if state is None:
            return {}
        # a budget-restricted space (never over the budget) or a warm start draws the
        # start-up codes here
        own_startup = self._draws_startup(study)
        if self._n_complete(study) < self._n_startup_trials and not own_startup:
            return {}
        with self._lock:  # threads: read the history only once the previous claim is written
            history = self._history(study, exclude=trial.number, state=state)
            startup = history.n < self._n_startup_trials
            if startup and not own_startup:
                return {}
            rng = np.random.default_rng(self._rng.rng.integers(2**63 - 1))
            candidates = (
                self._startup_candidates(state, len(study.directions))
                if startup
                else self._propose(state, history, rng)
            )
            code, rank = self._claim(study, trial, candidates, history, rng, state)
            self.last_proposal_info = {"trial": trial.number, "rank": rank, "n_history": history.n}
        params = state.space.to_params(code)
        return {n: params[n] for n in search_space if n in params}

    @staticmethod
    def _n_complete(study: Study) -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._should_warn(study, param_name, param_distribution):
            self._log_independent_sampling(trial, param_name)
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def _should_warn(self, study: Study, name: str, dist: BaseDistribution) -> bool:
        """Warn once per parameter and study, after the start-up trials, about a parameter
        sampled independently although finished trials have it (dynamic or conditional; a
        given space's own parameters, fixed values and first appearances aside)."""
        if not self._warn_independent_sampling or dist.single():
            return False
        if self._main is not None and name in self._main.param_names:
            return False
        key = (study.study_name, name)
        if key in self._warned_params or self._n_complete(study) < self._n_startup_trials:
            return False  # (warned already: no storage read on every later trial)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if not any(name in t.params for t in done):
            return False  # a parameter not seen before: it joins the space once a trial has it
        with self._lock:
            if key in self._warned_params:
                return False
            self._warned_params.add(key)
        return True

    def _log_independent_sampling(self, trial: FrozenTrial, param_name: str) -> None:
        reason = (
            "its distribution or presence varies between trials (a dynamic or conditional "
            "parameter), so it is outside the study's intersection search space"
        )
        _LOG.warning(
            optuna_independent_sampling_template().format(
                param_name=param_name,
                trial_number=trial.number,
                independent_sampler_name=self._independent_sampler.__class__.__name__,
                sampler_name=self.__class__.__name__,
                fallback_reason=f"{reason} (warned once per parameter and study)",
            )
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)

    # -- history ---------------------------------------------------------------------------
    def _history(
        self, study: Study, *, exclude: int | None = None, state: _SpaceState | None = None
    ) -> History:
        """Rebuild the history over ``state``'s space (default: the given space) from the
        storage.

        COMPLETE trials with finite values are learned from; RUNNING trials are pending;
        PRUNED, FAILED and NaN trials are not learned from but their codes count as seen,
        so they are never proposed again.
        """
        state = state or self._require_main()
        directions = tuple(study.directions)
        names = tuple(
            "maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in directions
        )
        rows = HistoryBuilder(dim=state.space.dim, directions=names)
        row_of = self._rows_of(state, names)
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude or t.state == TrialState.WAITING:
                continue
            row = row_of(t)
            if row.entry is None:
                continue
            code = row.entry[0]
            if row.kind == PENDING:
                rows.pending(code)
            elif row.kind == REJECTED:
                rows.rejected(code)  # pruned/failed/NaN: no usable signal, but seen
            else:
                rows.complete(code, row.scores, row.constraints)
        return rows.build()

    def _rows_of(self, state: _SpaceState, directions: tuple[str, ...]) -> TrialRows:
        """The trial rows over ``state``'s space for studies of ``directions``, memoised
        for finished trials (:class:`~ncp_hpo.samplers._trial_rows.TrialRows`)."""
        rows = state.rows.get(directions)
        if rows is None:
            sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
            rows = state.rows[directions] = TrialRows(lambda t: self._trial_entry(t, state), sign)
        return rows

    @staticmethod
    def _trial_entry(t: FrozenTrial, state: _SpaceState) -> tuple[np.ndarray, bytes] | None:
        """``(code, code_key(code))`` of a trial over ``state``'s space: its params, or
        (unfinished/failed) its published proposal; ``None`` where it has neither.

        Decoded codes are memoised on the parameter values (a pure function of them), so
        rebuilding the history costs a dictionary look-up per trial.
        """
        params = t.params
        try:
            key = tuple([params[n] for n in state.param_names])
        except KeyError:
            raw = t.system_attrs.get(_PROPOSAL_ATTR)
            if raw is not None and t.state != TrialState.COMPLETE:
                code = np.asarray(json.loads(raw), dtype=np.int64)
                if code.shape == (state.space.dim,):  # proposed over this very space
                    return code, code_key(code)
            return None
        if key not in state.codes:
            try:
                code = state.space.from_params(params)
                state.codes[key] = (code, code_key(code))
            except InvalidCodeError:
                state.codes[key] = None  # e.g. an objective that used a narrower range
        return state.codes[key]

    # -- proposal ---------------------------------------------------------------------------
    def _propose(
        self, state: _SpaceState, history: History, rng: np.random.Generator
    ) -> np.ndarray:
        """Candidate codes, ``m x d`` int, best first (may contain seen codes)."""
        engine = state.engine
        return engine.candidates(history, engine.model(history, rng), rng)

    def _claim(
        self,
        study: Study,
        trial: FrozenTrial,
        candidates: np.ndarray,
        history: History,
        rng: np.random.Generator,
        state: _SpaceState,
    ) -> tuple[np.ndarray, int]:
        """Pick the first unseen candidate and publish it as this trial's proposal.

        The proposal goes into a trial system attribute, so other threads and processes
        see it as pending at once. After writing, the trials are read again: if any other
        trial holds the same code (a race between workers), this trial yields and takes its
        next candidate that no other trial holds by then (the history may be seconds old:
        a slow fit while other workers ran trials). Every worker checks only after writing,
        so two workers can never both keep a code: the later check always sees the earlier
        write.
        """
        extra: set[bytes] = set()
        row_of = self._rows_of(state, history.directions)
        for _ in range(8):
            code, rank = state.engine.first_unseen(candidates, history.seen() | extra, rng)
            optuna_set_trial_system_attr(
                study, trial, _PROPOSAL_ATTR, json.dumps([int(x) for x in code])
            )
            held = {
                e[1]
                for t in study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE)
                )
                if t.number != trial.number and (e := row_of(t).entry) is not None
            }
            if code_key(code) not in held:
                break
            extra |= held  # every code taken since the history was read, not just this one
        if rank == REPEATED:
            self._warn_repeating(study, trial)
        return code, rank

    def _warn_repeating(self, study: Study, trial: FrozenTrial) -> None:
        """One warning per study when no unseen code is left to propose."""
        with self._lock:
            if study.study_name in self._warned_repeating:
                return
            self._warned_repeating.add(study.study_name)
        warnings.warn(
            f"{type(self).__name__}: every code it tried for trial {trial.number} of study "
            f"{study.study_name!r} was already evaluated, so it repeats one; the space may "
            "be exhausted (warned once per study; stop the study or widen the space)",
            NCPWarning,
            stacklevel=2,
        )
