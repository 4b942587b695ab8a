"""Shared Optuna plumbing of the predictor-based samplers (NCP, NetAdapt, Neural Predictor).

The base class owns everything that is not the proposal rule: which parameters are
sampled relatively (the code space's), the startup phase, the independent fallback and
its warning, reading the study's history from the storage on every call (never
accumulating state in ``after_trial``, so many processes can share one study),
objective directions, constraints, deduplication against evaluated and running trials,
seeding, and thread safety for ``n_jobs > 1``. Subclasses implement :meth:`_propose`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ncp_hpo.exceptions import InvalidCodeError, NCPWarning
from ncp_hpo.samplers._private_apis import (
    optuna_independent_sampling_template,
    optuna_set_trial_system_attr,
)
from ncp_hpo.search import History, HistoryBuilder, LazyRNG, PredictorSource, SearchEngine, code_key
from ncp_hpo.search._engine import REPEATED
from ncp_hpo.spaces import CodeSpace, MultiResolutionSpace

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study

    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.search import Proposer
    from ncp_hpo.search._warm_start import ZeroCostWarmStart

__all__ = ["PredictorSamplerBase"]

_PROPOSAL_ATTR = "ncp:proposal"
_LOG = optuna.logging.get_logger(__name__)


class PredictorSamplerBase(BaseSampler):
    """Base of samplers that propose codes of a :class:`~ncp_hpo.spaces.CodeSpace`.

    The study's trials become a :class:`~ncp_hpo.search.History`; the shared
    :class:`~ncp_hpo.search.SearchEngine` fits the predictor (a
    :class:`~ncp_hpo.search.PredictorSource`), ranks candidate codes with the
    :class:`~ncp_hpo.search.Proposer` and picks the first one that is neither evaluated
    nor running (else a random unseen code); this class publishes it as the trial's
    proposal and re-checks for a rival worker holding the same code.
    """

    def __init__(
        self,
        *,
        space: CodeSpace | None,
        proposer_factory: Callable[[CodeSpace], Proposer],
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        n_startup_trials: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
        source_params: dict[str, Any] | None = None,
        warm_start: ZeroCostWarmStart | None = None,
    ) -> None:
        if n_startup_trials is None:
            n_startup_trials = 0 if prior is not None else 10
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int):
            raise TypeError(f"n_startup_trials must be an int, got {n_startup_trials!r}")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self._space: CodeSpace = space if space is not None else MultiResolutionSpace()
        params = {"n_threads": 1, **(predictor_params or {})}
        self._source = PredictorSource(
            prior=prior,
            online=online,
            refit_every=refit_every,
            predictor_params=params,
            **(source_params or {}),  # refit schedule (refit_growth, refit_epochs ...)
        )
        self._proposer = proposer_factory(self._space)
        self._engine = SearchEngine(proposer=self._proposer, source=self._source)
        # Optuna parameter names (for NB201 one categorical per edge, not the one-hot dims)
        self._param_names = tuple(self._space.optuna_distributions())
        self._n_startup_trials = n_startup_trials
        self._warm_start = warm_start
        self._warm_codes: np.ndarray | None = None  # the ranked pool, built on first use
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._warn_independent_sampling = warn_independent_sampling
        self._rng = LazyRNG(seed)
        self._lock = threading.RLock()  # one instance is shared by n_jobs threads
        self.last_proposal_info: dict[str, Any] = {}
        # params -> (code, code_key(code)), or None where the params decode to no code
        self._codes: dict[tuple[Any, ...], tuple[np.ndarray, bytes] | None] = {}
        self._warned_repeating: set[str] = set()  # studies told that codes repeat

    @property
    def space(self) -> CodeSpace:
        return self._space

    # -- Optuna's sampler contract -------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng.reseed()
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if not self._uses_space(study):
            return {}
        return self._space.optuna_distributions()

    def _uses_space(self, study: Study) -> bool:
        """Whether the objective suggests this space's parameters (seen on any trial)."""
        if self._always_relative():
            return True
        names = self._param_names
        for t in study.get_trials(deepcopy=False):
            if names[0] in t.params and names[-1] in t.params:
                return True
        return False

    def _always_relative(self) -> bool:
        """True when proposals are possible before any trial (with a prior), or when a
        budget-restricted space draws the startup codes."""
        return self._source.prior is not None or self._draws_startup()

    def _draws_startup(self) -> bool:
        """Whether the sampler draws the start-up codes itself (a budget-restricted space,
        or a zero-cost warm start) instead of leaving them to the independent sampler."""
        return self._space.restricted or self._warm_start is not None

    @property
    def warm_start(self) -> ZeroCostWarmStart | None:
        """The zero-cost warm start of the start-up trials (``None``: random start-up)."""
        return self._warm_start

    def _startup_candidates(self) -> np.ndarray:
        """The warm start's ranked pool (seeded once per sampler), or no candidates (a
        random unseen code)."""
        if self._warm_start is None:
            return np.empty((0, self._space.dim), dtype=np.int64)
        if self._warm_codes is None:
            seed = self._rng.seed
            if seed is None:
                seed = int(self._rng.rng.integers(2**32))
            self._warm_codes = self._warm_start.ranked_pool(self._space, seed)
        return self._warm_codes

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or any(n not in search_space for n in self._param_names):
            return {}
        # a budget-restricted space (never over the budget) or a warm start draws the
        # start-up codes here
        own_startup = self._draws_startup()
        if self._n_complete(study) < self._n_startup_trials and not own_startup:
            return {}
        with self._lock:  # threads: read the history only once the previous claim is written
            history = self._history(study, exclude=trial.number)
            startup = history.n < self._n_startup_trials
            if startup and not own_startup:
                return {}
            rng = np.random.default_rng(self._rng.rng.integers(2**63 - 1))
            candidates = self._startup_candidates() if startup else self._propose(history, rng)
            code, rank = self._claim(study, trial, candidates, history, rng)
            self.last_proposal_info = {"trial": trial.number, "rank": rank, "n_history": history.n}
        params = self._space.to_params(code)
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
        if self._warn_independent_sampling and param_name not in self._param_names:
            if self._n_complete(study) >= self._n_startup_trials:
                self._log_independent_sampling(trial, param_name)
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def _log_independent_sampling(self, trial: FrozenTrial, param_name: str) -> None:
        _LOG.warning(
            optuna_independent_sampling_template().format(
                param_name=param_name,
                trial_number=trial.number,
                independent_sampler_name=self._independent_sampler.__class__.__name__,
                sampler_name=self.__class__.__name__,
                fallback_reason=(
                    f"{self.__class__.__name__} proposes only the code-space parameters "
                    f"of {type(self._space).__name__}"
                ),
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
    def _history(self, study: Study, *, exclude: int | None = None) -> History:
        """Rebuild the history from the storage.

        COMPLETE trials with finite values are learned from; RUNNING trials are pending;
        PRUNED, FAILED and NaN trials are not learned from but their codes count as seen,
        so they are never proposed again.
        """
        directions = tuple(study.directions)
        sign = np.array([1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions])
        rows = HistoryBuilder(
            dim=self._space.dim,
            directions=[
                "maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in directions
            ],
        )
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude or t.state == TrialState.WAITING:
                continue
            code = self._trial_code(t)
            if code is None:
                continue
            if t.state == TrialState.RUNNING:
                rows.pending(code)
                continue
            values = np.asarray(t.values if t.values is not None else [], dtype=np.float64)
            if (
                t.state != TrialState.COMPLETE
                or values.shape != sign.shape
                or not np.isfinite(values).all()
            ):
                rows.rejected(code)  # pruned/failed/NaN: no usable signal, but seen
                continue
            rows.complete(code, values * sign, t.constraints)
        return rows.build()

    def _trial_code(self, t: FrozenTrial) -> np.ndarray | None:
        """The code of a trial: its params, or (unfinished/failed) its published proposal."""
        entry = self._trial_entry(t)
        return None if entry is None else entry[0]

    def _trial_entry(self, t: FrozenTrial) -> tuple[np.ndarray, bytes] | None:
        """``(code, code_key(code))`` of a trial, or ``None`` (see :meth:`_trial_code`).

        Decoded codes are memoised on the parameter values (a pure function of them), so
        rebuilding the history costs a dictionary look-up per trial.
        """
        params = t.params
        try:
            key = tuple([params[n] for n in self._param_names])
        except KeyError:
            raw = t.system_attrs.get(_PROPOSAL_ATTR)
            if raw is not None and t.state != TrialState.COMPLETE:
                code = np.asarray(json.loads(raw), dtype=np.int64)
                return code, code_key(code)
            return None
        if key not in self._codes:
            try:
                code = self._space.from_params(params)
                self._codes[key] = (code, code_key(code))
            except InvalidCodeError:
                self._codes[key] = None  # e.g. an objective that used a narrower range
        return self._codes[key]

    # -- proposal ---------------------------------------------------------------------------
    def _propose(self, history: History, rng: np.random.Generator) -> np.ndarray:
        """Candidate codes, ``m x d`` int, best first (may contain seen codes)."""
        return self._engine.candidates(history, self._engine.model(history, rng), rng)

    def _claim(
        self,
        study: Study,
        trial: FrozenTrial,
        candidates: np.ndarray,
        history: History,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, int]:
        """Pick the first unseen candidate and publish it as this trial's proposal.

        The proposal goes into a trial system attribute, so other threads and processes
        see it as pending at once. After writing, the trials are read again: if any other
        trial holds the same code (a race between workers), this trial yields and takes its
        next candidate. Every worker checks only after writing, so two workers can never
        both keep a code: the later check always sees the earlier write.
        """
        extra: set[bytes] = set()
        for _ in range(8):
            code, rank = self._engine.first_unseen(candidates, history.seen() | extra, rng)
            optuna_set_trial_system_attr(
                study, trial, _PROPOSAL_ATTR, json.dumps([int(x) for x in code])
            )
            key = code_key(code)
            rivals = [
                t.number
                for t in study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE)
                )
                if t.number != trial.number
                and (e := self._trial_entry(t)) is not None
                and e[1] == key
            ]
            if not rivals:
                break
            extra.add(key)
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
