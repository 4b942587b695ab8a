"""The public Ax nodes (NCP, NetAdapt, neural predictor), the Sobol+node generation
strategy, and the count of Ax's deduplication fallbacks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ax.core.trial_status import TrialStatus
from ax.exceptions.core import UserInputError
from ax.generation_strategy.generation_node import GenerationNode
from ax.generation_strategy.generation_strategy import GenerationStrategy
from ax.generation_strategy.transition_criterion import MaxTrialsAwaitingData, MinTrials

from ncp_hpo.samplers._ax import FALLBACK_KEY, ProposerNode
from ncp_hpo.samplers._private_apis import (
    ax_client_experiment,
    ax_generation_node_name,
    ax_generator_key,
)
from ncp_hpo.search import NetAdaptProposer, NeuralPredictorProposer, Proposer
from ncp_hpo.search._presets import Mode, ncp_settings
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.spaces import CodeSpace

if TYPE_CHECKING:
    from ax.api.client import Client
    from ax.core.experiment import Experiment

    from ncp_hpo.predictor import NeuralPredictor

__all__ = [
    "NCPNode",
    "NetAdaptNode",
    "NeuralPredictorNode",
    "count_fallback_trials",
    "ncp_generation_strategy",
]


def _node_proposer(
    space: CodeSpace | None, proposer: ProposerSettings, source: SourceSettings
) -> Proposer | ProposerSettings:
    """The node's proposer over ``space``, or (no code space: the experiment's parameters
    are searched) its settings, built at the first update; bad settings fail here.

    Raises:
        ValueError: without a code space, a prior or a FLOPs penalty (nothing to apply
            them to), or source settings :class:`~ncp_hpo.search.PredictorSource` refuses.
    """
    if space is not None:
        return proposer(space)
    if source.prior is not None:
        raise ValueError(
            "a prior predicts the codes of one code space: pass that space (the experiment "
            "configured with space.ax_parameters())"
        )
    if proposer.lam:
        raise ValueError(
            f"lam={proposer.lam} weights exact FLOPs, which only a code space has; pass one"
        )
    source.check()
    return proposer


class NCPNode(ProposerNode):
    """Network Coding Propagation as an Ax generation node, in the modes of
    :class:`~ncp_hpo.NCPSampler` (the same defaults: local mode, paper mode with a prior).

    Args:
        mode: ``"local"``, ``"guided"`` or ``"paper"`` (Algorithm 1 as published); ``None``
            (default): ``"local"``, or ``"paper"`` with a ``prior``.
        space: the code space; the experiment must then be configured with
            ``space.ax_parameters()``. ``None`` (default): the node searches the
            experiment's own range and choice parameters (int, float, log scale), encoded
            by :class:`~ncp_hpo.spaces.ParamSpace`.
        lam: weight of the exact-FLOPs penalty (paper's lambda), 0 to ignore FLOPs.
        prior: a fitted :class:`~ncp_hpo.NeuralPredictor` to propose with from the start.
        online: fit a predictor on the experiment's completed trials (with a prior: re-scale
            and fine-tune it, as :class:`~ncp_hpo.search.PredictorSource` does).
        predictor_params: keyword arguments of the online ``NeuralPredictor``.
        seed: seed of the node's RNG (``None``: drawn from the global ``np.random`` at the
            first update, i.e. from the Client's ``random_seed``).
        max_pending: the most of the node's trials awaiting data at once (``None``: no limit).
        name: the node's name in the strategy.
        refit_every: refit after at least this many new completed trials (default: the
            mode's).
        **proposer_params: further arguments of the mode's proposer (``iterations``,
            ``lr``, ``n_starts``, ``kappa``, ``strategy``).
    """

    def __init__(
        self,
        space: CodeSpace | None = None,
        *,
        mode: Mode | None = None,
        lam: float = 0.0,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int | None = None,
        predictor_params: dict[str, Any] | None = None,
        seed: int | None = None,
        max_pending: int | None = None,
        name: str = "NCP",
        **proposer_params: Any,
    ) -> None:
        settings = ncp_settings(
            mode,
            prior=prior,
            online=online,
            lam=lam,
            refit_every=refit_every,
            predictor_params=predictor_params,
            **proposer_params,
        )
        super().__init__(
            _node_proposer(space, settings.proposer, settings.source),
            source=settings.source,
            name=name,
            seed=seed,
            max_pending=max_pending,
        )
        self.mode: str = settings.mode


class NetAdaptNode(ProposerNode):
    """NetAdapt-style greedy search (Yang et al., 2018) as an Ax generation node.

    Args:
        max_steps: greedy steps walked per proposal.
        space, lam, prior, online, refit_every, predictor_params, seed, max_pending,
            name: as in :class:`~ncp_hpo.samplers.NCPNode`.
    """

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
        proposer = ProposerSettings(NetAdaptProposer, {"lam": lam, "max_steps": max_steps})
        source = SourceSettings(
            prior=prior, online=online, refit_every=refit_every, predictor_params=predictor_params
        )
        super().__init__(
            _node_proposer(space, proposer, source),
            source=source,
            name=name,
            seed=seed,
            max_pending=max_pending,
        )


class NeuralPredictorNode(ProposerNode):
    """Neural-predictor search (Wen et al., 2020) as an Ax generation node.

    Args:
        pool_size: random codes predicted per proposal (10,000 as in the paper).
        top_k: best predicted codes kept as candidates.
        space, lam, prior, online, refit_every, predictor_params, seed, max_pending,
            name: as in :class:`~ncp_hpo.samplers.NCPNode`.
    """

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
        proposer = ProposerSettings(
            NeuralPredictorProposer, {"lam": lam, "pool_size": pool_size, "top_k": top_k}
        )
        source = SourceSettings(
            prior=prior, online=online, refit_every=refit_every, predictor_params=predictor_params
        )
        super().__init__(
            _node_proposer(space, proposer, source),
            source=source,
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
        space: the code space (``None``: the experiment's own parameters).
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
        the_node = _ready_node(node, space, prior, lam, max_pending, node_params)
    else:
        key = "ncp" if node is None else node
        if key not in _NODES:
            raise ValueError(f"unknown node {node!r}; expected one of {', '.join(_NODES)}")
        the_node = _NODES[key](
            space, lam=lam, prior=prior, seed=seed, max_pending=max_pending, **node_params
        )
    if n_init == 0:
        return GenerationStrategy(name=the_node.name, nodes=[the_node])
    sobol = _sobol_node(n_init, seed, the_node.name)
    return GenerationStrategy(name=f"Sobol+{the_node.name}", nodes=[sobol, the_node])


def _ready_node(
    node: ProposerNode,
    space: CodeSpace | None,
    prior: NeuralPredictor | None,
    lam: float,
    max_pending: int | None,
    node_params: dict[str, Any],
) -> ProposerNode:
    """``node`` itself, after checking that no argument tries to configure it again."""
    if space is not None and (node.infers_space or space != node.space):
        theirs = "inferred from the experiment" if node.infers_space else repr(node.space)
        raise ValueError(f"space {space!r} differs from the node's space ({theirs})")
    unset = {"prior": prior, "max_pending": max_pending}
    given = [k for k, v in unset.items() if v is not None] + list(node_params)
    if lam != 0.0:
        given.append("lam")
    if given:
        raise ValueError(
            f"node is a ready ProposerNode; configure it directly instead of passing "
            f"{', '.join(given)}"
        )
    return node


def _sobol_node(n_init: int, seed: int | None, next_node: str) -> GenerationNode:
    """Sobol for ``n_init`` trials, handing over once they completed with data."""
    from ax.adapter.registry import Generators
    from ax.generation_strategy.generator_spec import GeneratorSpec

    return GenerationNode(
        name="Sobol",
        generator_specs=[
            GeneratorSpec(generator_enum=Generators.SOBOL, generator_kwargs={"seed": seed})
        ],
        transition_criteria=[
            MinTrials(threshold=n_init, transition_to=next_node),
            MinTrials(
                threshold=n_init,
                transition_to=next_node,
                use_all_trials_in_exp=True,
                only_in_statuses=[TrialStatus.COMPLETED],
                count_only_trials_with_data=True,
            ),
        ],
        pausing_criteria=[MaxTrialsAwaitingData(threshold=n_init)],
        should_deduplicate=True,
    )


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
        key = ax_generator_key(grs[0])
        node = ax_generation_node_name(grs[0])
        if key is not None and key.startswith("Fallback"):
            counts[FALLBACK_KEY] += 1
        elif node:
            counts[node] += 1
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
        experiment = ax_client_experiment(source)
        if not isinstance(experiment, Experiment):
            raise UserInputError("the Client has no experiment yet: call configure_experiment")
        return experiment
    raise TypeError(
        f"count_fallback_trials takes an ax Client, Experiment or GenerationStrategy, "
        f"got {type(source).__name__}"
    )
