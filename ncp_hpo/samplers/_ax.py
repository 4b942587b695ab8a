"""Ax generation nodes: NCP and its baselines as an Ax ``GenerationStrategy``.

:class:`ProposerNode` adapts any :class:`~ncp_hpo.search.Proposer` (plus a
:class:`~ncp_hpo.search.PredictorSource`) to Ax's ``ExternalGenerationNode``
contract; :class:`NCPNode`, :class:`NetAdaptNode` and :class:`NeuralPredictorNode` are thin
public nodes, and :func:`ncp_generation_strategy` chains Sobol initialisation with one of
them, for ``ax.api.client.Client.set_generation_strategy``::

    from ax.api.client import Client
    from ncp_hpo.samplers import ncp_generation_strategy
    from ncp_hpo.spaces import NB201Space

    space = NB201Space()
    client = Client(random_seed=0)
    client.configure_experiment(name="nb201", parameters=space.ax_parameters())
    client.configure_optimization(objective="acc")           # or "acc, -flops"
    client.set_generation_strategy(ncp_generation_strategy(space, n_init=8, seed=0))
    done = 0
    while done < 40:                 # loop: a call may return fewer trials than asked
        for index, params in client.get_next_trials(max_trials=4).items():
            code = space.from_params(params)
            client.complete_trial(index, raw_data={"acc": evaluate(code)})
            done += 1

Ax behaviours this module works around (Ax 1.3.1, see ``API-NOTES.md`` sections 3 and 4):

* Ax does not validate a node's output, so every proposal is clipped and snapped onto the
  space (``space.round``) and checked with ``experiment.search_space.check_membership``.
* ``Client(random_seed=s)`` re-seeds the global random, numpy and torch generators at every
  ``get_next_trials`` call, and ``ax.benchmark`` deep-copies the strategy per replication.
  Each node therefore owns a numpy ``Generator``, seeded lazily at the first
  ``update_generator_state``: from ``seed`` when given, else from one draw of the global
  ``np.random`` (reproducible under the Client's or benchmark's seed, different across seeds).
* With ``should_deduplicate=True`` Ax re-draws a duplicate up to 5 times and then lets Sobol
  generate the trial instead. That trial still carries the node's name but its generator
  key is ``"Fallback_Sobol"``; :func:`count_fallback_trials` counts those apart. The nodes
  skip every code already in the experiment (any status) or pending in the same call, so
  fallbacks should be rare.
* The first ``get_next_trials`` call after the Sobol phase may return fewer trials than
  asked (its limit is computed on the exhausted Sobol node), and while the initial trials
  await data it raises ``DataRequiredError``: loop until you have as many as you need.

Persistence: ``client.save_to_json_file()`` raises ``JSONEncodeError`` because the custom
node is not registered with Ax's encoder. Save the experiment alone and rebuild the
strategy on load; the fresh strategy resumes at the node because Ax's ``MinTrials`` counts
the trials tagged with the Sobol node's name::

    from ax.storage.json_store.load import load_experiment
    from ax.storage.json_store.save import save_experiment

    save_experiment(client._experiment, "exp.json")
    client = Client()
    client.set_experiment(load_experiment("exp.json"))
    client.set_generation_strategy(ncp_generation_strategy(space, n_init=8, seed=0))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from ax.core.parameter import FixedParameter
from ax.core.trial_status import TrialStatus
from ax.exceptions.core import UnsupportedError, UserInputError
from ax.generation_strategy.external_generation_node import ExternalGenerationNode
from ax.generation_strategy.transition_criterion import (
    MaxGenerationParallelism,
)

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.samplers._ax_data import (
    ax_distributions,
    combine,
    constraint_terms,
    constraint_value,
    draw,
    latest_means,
    objective_terms,
)
from ncp_hpo.samplers._private_apis import ax_set_pausing_criteria
from ncp_hpo.search import (
    History,
    HistoryBuilder,
    PredictorSource,
    Proposer,
    ScoreModel,
    SearchEngine,
    code_key,
)
from ncp_hpo.spaces import CodeSpace, ParamSpace

if TYPE_CHECKING:
    from ax.core.data import Data
    from ax.core.experiment import Experiment
    from ax.core.search_space import SearchSpace
    from ax.core.types import TParameterization


__all__ = ["FALLBACK_KEY", "ProposerNode"]

_LOG = logging.getLogger(__name__)

FALLBACK_KEY = "Fallback_Sobol"
"""Generator key of trials Ax's deduplication fallback generated (``DEFAULT_FALLBACK``)."""

_PENDING = (TrialStatus.CANDIDATE, TrialStatus.STAGED, TrialStatus.RUNNING, TrialStatus.DISPATCHED)
_RANDOM_TRIES = 1000


class ProposerNode(ExternalGenerationNode):
    """An Ax ``ExternalGenerationNode`` that proposes codes of a :class:`CodeSpace`.

    Before each generation Ax calls :meth:`update_generator_state`, which rebuilds a
    :class:`~ncp_hpo.search.History` from the experiment (completed trials with
    data, signed by the optimization config; outcome constraints as constraint columns,
    CANDIDATE/STAGED/RUNNING trials as pending) and fits the predictor. Each
    :meth:`get_next_candidate` then asks the proposer for ranked candidates and returns the
    first one that is on the space's grid, inside the experiment's search space, and
    neither in the experiment (any status, failed included) nor pending. When the proposer
    has none (or no predictor yet: fewer than 2 completed trials and no prior) it returns a
    random such code.

    Parameters of the experiment outside the code space are filled in: a fixed parameter
    with its value, others at random from the node's RNG (a warning says so once).

    Args:
        proposer: the proposal rule; its ``space`` is the node's space.
        source: where the predictor comes from (default: fitted online on the experiment's
            trials with :class:`~ncp_hpo.predictor.NeuralPredictor` defaults, one thread).
        name: the node's name (unique within its strategy).
        seed: seed of the node's RNG; ``None`` draws one from the global ``np.random`` at
            the first update (so a ``Client(random_seed=...)`` or benchmark seed fixes it).
        max_pending: the most of this node's trials awaiting data at once (Ax's
            ``MaxGenerationParallelism``; ``get_next_trials`` raises
            ``MaxParallelismReachedException`` at the limit); ``None`` for no limit.
        transition_criteria: Ax transition criteria (only if another node follows).

    Attributes:
        last_proposal_info: ``rank`` of the returned code among the proposer's candidates
            (``-1``: random fallback), ``n_history``, ``n_pending`` and the proposer's info.
        n_random: proposals that fell back to a random code since construction.
    """

    def __init__(
        self,
        proposer: Proposer | Callable[[CodeSpace], Proposer],
        *,
        source: PredictorSource | Callable[[CodeSpace], PredictorSource] | None = None,
        name: str = "Proposer",
        seed: int | None = None,
        max_pending: int | None = None,
        transition_criteria: Sequence[Any] | None = None,
    ) -> None:
        if not isinstance(proposer, Proposer) and not callable(proposer):
            raise TypeError(f"proposer must be a Proposer, got {type(proposer).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if max_pending is not None and (isinstance(max_pending, bool) or max_pending < 1):
            raise ValueError(f"max_pending must be a positive int or None, got {max_pending!r}")
        super().__init__(
            name=name, should_deduplicate=True, transition_criteria=transition_criteria
        )
        if max_pending is not None:
            limit = MaxGenerationParallelism(
                threshold=int(max_pending), only_in_statuses=[*_PENDING]
            )
            ax_set_pausing_criteria(self, [limit])
        self._make_proposer = proposer
        self._make_source = source
        self._space: CodeSpace | None = None
        self._inferred: dict[str, Any] | None = None  # the distributions bound to, if inferred
        if isinstance(proposer, Proposer):
            self._bind(proposer)
        self.seed = None if seed is None else int(seed)
        self.max_pending = max_pending
        self._rng: np.random.Generator | None = None
        self._history: History | None = None
        self._model: ScoreModel | None = None
        self._seen: set[bytes] = set()
        self._search_space: SearchSpace | None = None
        self._extra: dict[str, Any] = {}
        self._warned_extra = False
        self.last_proposal_info: dict[str, Any] = {}
        self.n_random = 0

    def _bind(self, proposer: Proposer) -> None:
        """Search ``proposer.space`` with ``proposer`` and a source for that space."""
        src = self._make_source
        if src is None:
            source = PredictorSource(predictor_params={"n_threads": 1})
        elif isinstance(src, PredictorSource):
            source = src
        else:
            source = src(proposer.space)
        self.proposer = proposer
        self._space = proposer.space
        self.source = source
        self._engine = SearchEngine(proposer=proposer, source=source)
        # Ax parameter names (for NB201 one categorical per edge, not the one-hot dims)
        self._param_names = tuple(proposer.space.optuna_distributions())

    @property
    def space(self) -> CodeSpace:
        """The code space searched: the proposer's, or (built without one) the experiment's
        parameters as a :class:`~ncp_hpo.spaces.ParamSpace`, bound at the first update."""
        if self._space is None:
            raise UnsupportedError(
                f"{self.name} infers its space from the experiment at the first update"
            )
        return self._space

    @property
    def infers_space(self) -> bool:
        """Whether the node searches the experiment's own parameters (built without a space)."""
        return not isinstance(self._make_proposer, Proposer)

    def _bind_to(self, search_space: SearchSpace) -> None:
        """Without a code space: search the experiment's own parameters
        (:class:`~ncp_hpo.spaces.ParamSpace`), re-bound if they change."""
        make = self._make_proposer
        if isinstance(make, Proposer):
            return
        dists = ax_distributions(search_space)
        if dists != self._inferred:
            if not dists:
                raise UserInputError(f"{self.name}: the experiment has no parameter to search")
            self._bind(make(ParamSpace(dists)))
            self._inferred = dists

    @property
    def history(self) -> History | None:
        """The history rebuilt at the last :meth:`update_generator_state` (``None`` before)."""
        return self._history

    # -- Ax's ExternalGenerationNode contract ------------------------------------------------
    def update_generator_state(self, experiment: Experiment, data: Data) -> None:
        """Rebuild the history from ``experiment`` and ``data`` and refit the predictor."""
        if self._rng is None:
            # Lazy: the Client re-seeds global RNGs per call and benchmarks deep-copy the
            # strategy per replication; a seed drawn here follows their seed (API-NOTES §4).
            seed = self.seed if self.seed is not None else int(np.random.randint(2**31))  # noqa: NPY002
            self._rng = np.random.default_rng(seed)
        self._search_space = experiment.search_space
        self._bind_to(experiment.search_space)
        self._extra = self._extra_parameters(experiment.search_space)
        history, seen = self._build_history(experiment, data)
        self._history, self._seen = history, seen
        self._model = self._engine.model(history, self._rng)

    def get_next_candidate(self, pending_parameters: list[TParameterization]) -> TParameterization:
        """The next code's parameters (``space.to_params`` plus any extra parameters)."""
        if self._history is None or self._rng is None:
            raise UnsupportedError(
                f"{type(self).__name__}.get_next_candidate called before update_generator_state"
            )
        extra = [c for c in (self._code(p) for p in pending_parameters) if c is not None]
        history = self._history
        if extra:
            pending = np.concatenate([history.pending, np.stack(extra)])
            history = replace(history, pending=pending)
        seen = self._seen | {code_key(c) for c in extra}
        rng = np.random.default_rng(self._rng.integers(2**63 - 1))
        candidates = np.asarray(
            self._engine.candidates(history, self._model, rng), dtype=np.float64
        ).reshape(-1, self.space.dim)
        params, rank = self._first_valid(candidates, seen, rng)
        if rank < 0:
            self.n_random += 1
        self.last_proposal_info = {
            "rank": rank,
            "n_history": history.n,
            "n_pending": len(history.pending),
            **dict(self.proposer.info if self._model is not None else {}),
        }
        return params

    # -- proposal helpers ----------------------------------------------------------------------
    def _first_valid(
        self, candidates: np.ndarray, seen: set[bytes], rng: np.random.Generator
    ) -> tuple[TParameterization, int]:
        """First candidate (snapped) that is unseen and in the search space; else random."""
        for rank, x in enumerate(candidates):
            if not np.isfinite(x).all():
                continue
            params = self._params_if_new(self.space.round(x), seen, rng)
            if params is not None:
                return params, rank
        for _ in range(_RANDOM_TRIES):
            params = self._params_if_new(self.space.sample(1, seed=rng)[0], seen, rng)
            if params is not None:
                return params, -1
        # Everything tried is taken: return a random code and let Ax deduplicate.
        _LOG.warning("%s found no unevaluated code in %d tries", self.name, _RANDOM_TRIES)
        return self._complete(self.space.to_params(self.space.sample(1, seed=rng)[0]), rng), -1

    def _params_if_new(
        self, code: np.ndarray, seen: set[bytes], rng: np.random.Generator
    ) -> TParameterization | None:
        if code_key(code) in seen:
            return None
        params = self._complete(self.space.to_params(code), rng)
        assert self._search_space is not None
        if not self._search_space.check_membership(params):
            return None  # e.g. an experiment configured with narrower ranges than the space
        return params

    def _complete(self, params: dict[str, Any], rng: np.random.Generator) -> TParameterization:
        """Add the experiment's parameters outside the code space."""
        out: dict[str, Any] = dict(params)
        for name, p in self._extra.items():
            out[name] = draw(p, rng)
        return out

    def _extra_parameters(self, search_space: SearchSpace) -> dict[str, Any]:
        missing = [n for n in self._param_names if n not in search_space.parameters]
        if missing:
            raise UserInputError(
                f"the experiment's search space lacks the {type(self.space).__name__} "
                f"parameters {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
                "configure the experiment with parameters=space.ax_parameters()"
            )
        extra = {
            n: p for n, p in search_space.parameters.items() if n not in set(self._param_names)
        }
        random_ones = [n for n, p in extra.items() if not isinstance(p, FixedParameter)]
        if random_ones and not self._warned_extra:
            self._warned_extra = True
            _LOG.warning(
                "%s proposes only the %s parameters; %s are drawn at random",
                self.name,
                type(self.space).__name__,
                ", ".join(random_ones),
            )
        return extra

    def _code(self, params: Mapping[str, Any]) -> np.ndarray | None:
        """The code of a parameterization, or ``None`` when it is not a valid code."""
        try:
            return self.space.from_params(dict(params))
        except (InvalidCodeError, KeyError, TypeError, ValueError):
            return None

    # -- history ------------------------------------------------------------------------------
    def _build_history(self, experiment: Experiment, data: Data) -> tuple[History, set[bytes]]:
        """History of the usable trials, and the keys of every code in the experiment."""
        opt = experiment.optimization_config
        if opt is None:
            raise UnsupportedError(
                f"{self.name} needs an optimization config; call "
                "Client.configure_optimization(objective=...) first"
            )
        objectives, directions = objective_terms(opt)
        constraints = constraint_terms(opt)
        values = latest_means(data)
        rows = HistoryBuilder(
            dim=self.space.dim,
            directions=directions,
            constraint_names=[name for name, _ in constraints],
        )
        seen: set[bytes] = set()
        for index, trial in sorted(experiment.trials.items()):
            for arm in trial.arms:
                code = self._code(arm.parameters)
                if code is None:
                    continue
                seen.add(code_key(code))
                if trial.status in _PENDING:
                    rows.pending(code)
                    continue
                if trial.status != TrialStatus.COMPLETED:
                    continue  # failed, abandoned, early-stopped: seen but not learned from
                got = values.get((index, arm.name), {})
                s = [combine(terms, got) for terms in objectives]
                if not np.isfinite(s).all():
                    continue  # missing or non-finite objective data
                rows.complete(code, s, {n: constraint_value(c, got) for n, c in constraints})
        return rows.build(), seen
