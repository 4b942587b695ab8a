"""Ax generation nodes: NCP and its baselines as an Ax ``GenerationStrategy``.

:class:`ProposerNode` adapts any :class:`~ncp_hpo.search.proposers.Proposer` (plus a
:class:`~ncp_hpo.search.surrogate.PredictorSource`) to Ax's ``ExternalGenerationNode``
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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ax.core.parameter import ChoiceParameter, FixedParameter, RangeParameter
from ax.core.trial_status import TrialStatus
from ax.exceptions.core import UnsupportedError, UserInputError
from ax.generation_strategy.external_generation_node import ExternalGenerationNode
from ax.generation_strategy.generation_node import GenerationNode
from ax.generation_strategy.generation_strategy import GenerationStrategy
from ax.generation_strategy.transition_criterion import (
    MaxGenerationParallelism,
    MaxTrialsAwaitingData,
    MinTrials,
)

from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.search import (
    History,
    HistoryBuilder,
    NCPProposer,
    NetAdaptProposer,
    NeuralPredictorProposer,
    PredictorSource,
    Proposer,
    ScoreModel,
    SearchEngine,
    code_key,
)
from ncp_hpo.spaces import CodeSpace, MultiResolutionSpace

if TYPE_CHECKING:
    from ax.api.client import Client
    from ax.core.data import Data
    from ax.core.experiment import Experiment
    from ax.core.optimization_config import OptimizationConfig
    from ax.core.search_space import SearchSpace
    from ax.core.types import TParameterization

    from ncp_hpo.predictor import NeuralPredictor

__all__ = [
    "FALLBACK_KEY",
    "NCPNode",
    "NetAdaptNode",
    "NeuralPredictorNode",
    "ProposerNode",
    "count_fallback_trials",
    "ncp_generation_strategy",
]

_LOG = logging.getLogger(__name__)

FALLBACK_KEY = "Fallback_Sobol"
"""Generator key of trials Ax's deduplication fallback generated (``DEFAULT_FALLBACK``)."""

_PENDING = (TrialStatus.CANDIDATE, TrialStatus.STAGED, TrialStatus.RUNNING, TrialStatus.DISPATCHED)
_RANDOM_TRIES = 1000


class ProposerNode(ExternalGenerationNode):
    """An Ax ``ExternalGenerationNode`` that proposes codes of a :class:`CodeSpace`.

    Before each generation Ax calls :meth:`update_generator_state`, which rebuilds a
    :class:`~ncp_hpo.search.history.History` from the experiment (completed trials with
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
        proposer: Proposer,
        *,
        source: PredictorSource | None = None,
        name: str = "Proposer",
        seed: int | None = None,
        max_pending: int | None = None,
        transition_criteria: Sequence[Any] | None = None,
    ) -> None:
        if not isinstance(proposer, Proposer):
            raise TypeError(f"proposer must be a Proposer, got {type(proposer).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if max_pending is not None and (isinstance(max_pending, bool) or max_pending < 1):
            raise ValueError(f"max_pending must be a positive int or None, got {max_pending!r}")
        super().__init__(
            name=name, should_deduplicate=True, transition_criteria=transition_criteria
        )
        if max_pending is not None:
            # ExternalGenerationNode.__init__ does not forward pausing criteria; this is the
            # attribute GenerationNode.__init__ stores them in.
            self._pausing_criteria = [
                MaxGenerationParallelism(threshold=int(max_pending), only_in_statuses=[*_PENDING])
            ]
        self.proposer = proposer
        self.space: CodeSpace = proposer.space
        self.source = (
            source if source is not None else PredictorSource(predictor_params={"n_threads": 1})
        )
        self._engine = SearchEngine(proposer=proposer, source=self.source)
        self.seed = None if seed is None else int(seed)
        self.max_pending = max_pending
        # Ax parameter names (for NB201 one categorical per edge, not the one-hot dims)
        self._param_names = tuple(self.space.optuna_distributions())
        self._rng: np.random.Generator | None = None
        self._history: History | None = None
        self._model: ScoreModel | None = None
        self._seen: set[bytes] = set()
        self._search_space: SearchSpace | None = None
        self._extra: dict[str, Any] = {}
        self._warned_extra = False
        self.last_proposal_info: dict[str, Any] = {}
        self.n_random = 0

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
            out[name] = _draw(p, rng)
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
        objectives, directions = _objective_terms(opt)
        constraints = _constraint_terms(opt)
        values = _latest_means(data)
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
                s = [_combine(terms, got) for terms in objectives]
                if not np.isfinite(s).all():
                    continue  # missing or non-finite objective data
                rows.complete(code, s, {n: _constraint_value(c, got) for n, c in constraints})
        return rows.build(), seen


def _draw(p: Any, rng: np.random.Generator) -> Any:
    """A random value of one Ax parameter (native Python type)."""
    if isinstance(p, FixedParameter):
        return p.value
    if isinstance(p, ChoiceParameter):
        return p.values[int(rng.integers(len(p.values)))]
    if isinstance(p, RangeParameter):
        lo, hi = float(p.lower), float(p.upper)
        if p.parameter_type.name == "INT":
            return int(rng.integers(int(lo), int(hi) + 1))
        if p.log_scale:
            return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        return float(rng.uniform(lo, hi))
    raise UnsupportedError(f"cannot fill parameter {p.name!r} of type {type(p).__name__}")


# -- reading the optimization config and the data ---------------------------------------------
_Terms = list[tuple[str, float]]  # (metric signature, weight)
_Constraint = tuple[_Terms, bool, float]  # (terms, is upper bound, bound)


def _objective_terms(opt: OptimizationConfig) -> tuple[list[_Terms], tuple[str, ...]]:
    """Per objective: its (signature, weight) terms to maximise, and its direction.

    Ax 1.3 objectives are expressions (``"acc, -flops"``, ``"2*a + b"``); the weights are
    signed so that the expression is maximised. A single-metric objective with a negative
    weight is reported as "minimize" (its score is still the signed value).
    """
    objective = opt.objective
    mapping = objective.metric_name_to_signature
    groups: list[list[tuple[str, float]]]
    parsed = getattr(objective, "_parsed", None)  # Ax's own per-sub-objective split
    if isinstance(parsed, tuple) and len(parsed) == 2:
        groups = [list(sub) for sub in parsed[1]]
    elif objective.is_multi_objective:
        groups = [
            [(n, w)] for n, w in zip(objective.metric_names, _weights(objective), strict=True)
        ]
    else:
        groups = [list(zip(objective.metric_names, _weights(objective), strict=True))]
    terms = [[(mapping.get(n, n), float(w)) for n, w in g] for g in groups]
    directions = tuple("minimize" if len(t) == 1 and t[0][1] < 0 else "maximize" for t in terms)
    return terms, directions


def _weights(objective: Any) -> list[float]:
    return [float(w) for _, w in objective.metric_weights]


def _constraint_terms(opt: OptimizationConfig) -> list[tuple[str, _Constraint]]:
    """Outcome constraints as ``(expression, (terms, is_upper_bound, bound))``.

    Relative constraints (``"... <= 0.95 * baseline"``) need the status quo's values and
    are skipped with a warning. Multi-objective thresholds are not constraints.
    """
    out = []
    for c in opt.outcome_constraints:
        if c.relative:
            _LOG.warning("relative outcome constraint %s is ignored by the node", c)
            continue
        terms = [(s, float(w)) for s, w in c.metric_weights]
        out.append((c.expression, (terms, c.op.name == "LEQ", float(c.bound))))
    return out


def _latest_means(data: Data) -> dict[tuple[int, str], dict[str, float]]:
    """``(trial index, arm name) -> {metric signature: mean}`` (the last row wins)."""
    df = data.df
    out: dict[tuple[int, str], dict[str, float]] = {}
    if df.empty:
        return out
    key = "metric_signature" if "metric_signature" in df.columns else "metric_name"
    for t, a, m, mean in zip(df["trial_index"], df["arm_name"], df[key], df["mean"], strict=True):
        out.setdefault((int(t), str(a)), {})[str(m)] = float(mean)
    return out


def _combine(terms: _Terms, got: Mapping[str, float]) -> float:
    if any(s not in got for s, _ in terms):
        return float("nan")
    return float(sum(w * got[s] for s, w in terms))


def _constraint_value(constraint: _Constraint, got: Mapping[str, float]) -> float:
    """Signed constraint value, feasible when ``<= 0`` (as History's constraint columns)."""
    terms, upper, bound = constraint
    value = _combine(terms, got)
    if not np.isfinite(value):
        return 0.0  # unmeasured constraint: no evidence of a violation (Optuna's None)
    return value - bound if upper else bound - value


# -- public nodes ---------------------------------------------------------------------------
def _source(
    prior: NeuralPredictor | None,
    online: bool,
    refit_every: int,
    predictor_params: dict[str, Any] | None,
) -> PredictorSource:
    params = {"n_threads": 1, **(predictor_params or {})}
    return PredictorSource(
        prior=prior, online=online, refit_every=refit_every, predictor_params=params
    )


_NODE_ARGS = """
        space: the code space (default :class:`~ncp_hpo.spaces.MultiResolutionSpace`); the
            experiment must be configured with ``space.ax_parameters()``.
        lam: weight of the exact-FLOPs penalty (paper's lambda), 0 to ignore FLOPs.
        prior: a fitted :class:`~ncp_hpo.NeuralPredictor` to propose with from the start.
        online: fit a predictor on the experiment's completed trials (fine-tune the prior).
        refit_every: refit after this many new completed trials.
        predictor_params: keyword arguments of the online ``NeuralPredictor``.
        seed: seed of the node's RNG (``None``: drawn from the global ``np.random`` at the
            first update, i.e. from the Client's ``random_seed``).
        max_pending: the most of the node's trials awaiting data at once (``None``: no limit).
        name: the node's name in the strategy.
"""


class NCPNode(ProposerNode):
    __doc__ = f"""Network Coding Propagation (paper Algorithm 1) as an Ax generation node.

    Args:
{_NODE_ARGS}        **proposer_params: further arguments of
            :class:`~ncp_hpo.search.proposers.NCPProposer`.
    """

    def __init__(
        self,
        space: CodeSpace | None = None,
        *,
        lam: float = 0.0,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        seed: int | None = None,
        max_pending: int | None = None,
        name: str = "NCP",
        **proposer_params: Any,
    ) -> None:
        space = space if space is not None else MultiResolutionSpace()
        super().__init__(
            NCPProposer(space, lam=lam, **proposer_params),
            source=_source(prior, online, refit_every, predictor_params),
            name=name,
            seed=seed,
            max_pending=max_pending,
        )


class NetAdaptNode(ProposerNode):
    __doc__ = f"""NetAdapt-style greedy search (Yang et al., 2018) as an Ax generation node.

    Args:
        max_steps: greedy steps walked per proposal.
{_NODE_ARGS}"""

    def __init__(
        self,
        space: CodeSpace | None = None,
        *,
        lam: float = 0.0,
        max_steps: int = 8,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        seed: int | None = None,
        max_pending: int | None = None,
        name: str = "NetAdapt",
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        space = space if space is not None else MultiResolutionSpace()
        super().__init__(
            NetAdaptProposer(space, lam=lam, max_steps=max_steps),
            source=_source(prior, online, refit_every, predictor_params),
            name=name,
            seed=seed,
            max_pending=max_pending,
        )


class NeuralPredictorNode(ProposerNode):
    __doc__ = f"""Neural-predictor search (Wen et al., 2020) as an Ax generation node.

    Args:
        pool_size: random codes predicted per proposal (10,000 as in the paper).
        top_k: best predicted codes kept as candidates.
{_NODE_ARGS}"""

    def __init__(
        self,
        space: CodeSpace | None = None,
        *,
        lam: float = 0.0,
        pool_size: int = 10_000,
        top_k: int = 64,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int = 1,
        predictor_params: dict[str, Any] | None = None,
        seed: int | None = None,
        max_pending: int | None = None,
        name: str = "NeuralPredictor",
    ) -> None:
        if pool_size < 1 or top_k < 1:
            raise ValueError(f"pool_size and top_k must be >= 1, got {pool_size} and {top_k}")
        space = space if space is not None else MultiResolutionSpace()
        super().__init__(
            NeuralPredictorProposer(space, lam=lam, pool_size=pool_size, top_k=top_k),
            source=_source(prior, online, refit_every, predictor_params),
            name=name,
            seed=seed,
            max_pending=max_pending,
        )


_NODES: dict[str, Callable[..., ProposerNode]] = {
    "ncp": NCPNode,
    "netadapt": NetAdaptNode,
    "neural-predictor": NeuralPredictorNode,
}


def ncp_generation_strategy(
    space: CodeSpace | None = None,
    *,
    n_init: int | None = None,
    node: Literal["ncp", "netadapt", "neural-predictor"] | ProposerNode | None = None,
    prior: NeuralPredictor | None = None,
    lam: float = 0.0,
    seed: int | None = None,
    max_pending: int | None = None,
    **node_params: Any,
) -> GenerationStrategy:
    """Sobol initialisation followed by an NCP (or baseline) node, for an Ax ``Client``.

    Sobol generates ``n_init`` trials (no more until they have data:
    ``MaxTrialsAwaitingData``), and the strategy moves to the node once Sobol made
    ``n_init`` trials *and* the experiment has ``n_init`` completed trials with data (two
    AND-ed ``MinTrials``; a failed Sobol trial is replaced). With ``n_init=0`` the node
    alone makes every trial. Use it with ``client.set_generation_strategy(...)``; the first
    ``get_next_trials`` after the Sobol phase may return fewer trials than asked, so loop
    (see the module docstring, also for saving and reloading).

    Args:
        space: the code space (default :class:`~ncp_hpo.spaces.MultiResolutionSpace`).
        n_init: Sobol trials before the node (default 10, or 0 with a ``prior``).
        node: ``"ncp"`` (default), ``"netadapt"``, ``"neural-predictor"``, or a ready
            :class:`ProposerNode` (then ``prior``, ``lam``, ``max_pending`` and ``node_params``
            must be left unset, ``space`` unset or the node's; ``seed`` seeds Sobol only).
        prior: a fitted predictor the node proposes (and fine-tunes) with.
        lam: the node's exact-FLOPs penalty weight.
        seed: seeds Sobol and the node's RNG (``None``: follow the Client's ``random_seed``).
        max_pending: the most of the node's trials awaiting data at once.
        **node_params: further arguments of the node class (``max_steps``, ``pool_size``,
            ``predictor_params``, ``refit_every``, NCP's proposer arguments ...).

    Returns:
        A ``GenerationStrategy`` named ``"Sobol+<node name>"``.
    """
    if n_init is None:
        n_init = 0 if prior is not None else 10
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 0:
        raise ValueError(f"n_init must be a non-negative int, got {n_init!r}")
    if isinstance(node, ProposerNode):
        if space is not None and space != node.space:
            raise ValueError(f"space {space!r} differs from the node's space {node.space!r}")
        unset = {"prior": prior, "max_pending": max_pending}
        given = [k for k, v in unset.items() if v is not None] + list(node_params)
        if lam != 0.0:
            given.append("lam")
        if given:
            raise ValueError(
                f"node is a ready ProposerNode; configure it directly instead of passing "
                f"{', '.join(given)}"
            )
        the_node = node
    else:
        key = "ncp" if node is None else node
        if key not in _NODES:
            raise ValueError(f"unknown node {node!r}; expected one of {', '.join(_NODES)}")
        the_node = _NODES[key](
            space, lam=lam, prior=prior, seed=seed, max_pending=max_pending, **node_params
        )
    if n_init == 0:
        return GenerationStrategy(name=the_node.name, nodes=[the_node])
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generator_spec import GeneratorSpec

    sobol = GenerationNode(
        name="Sobol",
        generator_specs=[
            GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})
        ],
        transition_criteria=[
            MinTrials(threshold=n_init, transition_to=the_node.name),
            MinTrials(
                threshold=n_init,
                transition_to=the_node.name,
                use_all_trials_in_exp=True,
                only_in_statuses=[TrialStatus.COMPLETED],
                count_only_trials_with_data=True,
            ),
        ],
        pausing_criteria=[MaxTrialsAwaitingData(threshold=n_init)],
        should_deduplicate=True,
    )
    return GenerationStrategy(name=f"Sobol+{the_node.name}", nodes=[sobol, the_node])


def count_fallback_trials(source: Client | Experiment | GenerationStrategy) -> dict[str, int]:
    """How many trials each node generated, with Ax's Sobol fallbacks counted apart.

    Args:
        source: the ``ax.api.Client`` running the experiment, its ``Experiment`` (e.g. from
            ``ax.benchmark`` results), or a ``GenerationStrategy`` that has generated trials.

    Returns:
        ``{node name: trials it generated itself, "Fallback_Sobol": trials Ax's
        deduplication fallback generated inside any node, "Manual": trials without a
        generation node (attached by hand)}``; keys with no trials are left out, except
        ``"Fallback_Sobol"``, which is always present.
    """
    experiment = _experiment_of(source)
    counts: Counter[str] = Counter({FALLBACK_KEY: 0})
    for trial in experiment.trials.values():
        grs = trial.generator_runs
        if not grs:
            counts["Manual"] += 1
            continue
        key = getattr(grs[0], "_generator_key", None)
        node = getattr(grs[0], "_generation_node_name", None)
        if isinstance(key, str) and key.startswith("Fallback"):
            counts[FALLBACK_KEY] += 1
        elif node:
            counts[str(node)] += 1
        else:
            counts["Manual"] += 1
    return dict(counts)


def _experiment_of(source: Any) -> Experiment:
    from ax.api.client import Client
    from ax.core.experiment import Experiment

    if isinstance(source, Experiment):
        return source
    if isinstance(source, GenerationStrategy):
        return source.experiment  # raises UserInputError before it generated anything
    if isinstance(source, Client):
        # Ax 1.3.1's Client has no public accessor for its Experiment (its own analysis
        # code reads this attribute too); kept here so users never need the private name.
        experiment = getattr(source, "_experiment", None)
        if not isinstance(experiment, Experiment):
            raise UserInputError("the Client has no experiment yet: call configure_experiment")
        return experiment
    raise TypeError(
        f"count_fallback_trials takes an ax Client, Experiment or GenerationStrategy, "
        f"got {type(source).__name__}"
    )
