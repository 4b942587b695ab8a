"""The search engine behind both adapters (the Optuna samplers and the Ax nodes).

* :mod:`._history`: the study's history as plain arrays (:class:`History`).
* :mod:`._surrogate`: where the predictor comes from (:class:`PredictorSource`) and how its
  outputs map to the objectives (:class:`ScoreModel`).
* :mod:`._proposers`: the proposal rules (NCP, guided NCP, NetAdapt, neural predictor).
* :mod:`._tradeoff`: the one FLOPs trade-off (lambda) every proposer uses.
* :mod:`._engine`: history assembly, proposal and the choice of an unseen code.
* :mod:`._presets`: the samplers' modes and defaults.
* :mod:`._registry`: sampler and task names.

Everything needed to build an Ax ``ProposerNode`` is importable from here::

    from ncp_hpo.search import NCPProposer, PredictorSource
    node = ProposerNode(NCPProposer(space, lam=0.1), source=PredictorSource())
"""

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

if TYPE_CHECKING:
    from ncp_hpo.search._engine import HistoryBuilder, SearchEngine
    from ncp_hpo.search._history import History, code_key, pareto_mask
    from ncp_hpo.search._proposers import (
        GuidedNCPProposer,
        NCPProposer,
        NetAdaptProposer,
        NeuralPredictorProposer,
        Proposer,
    )
    from ncp_hpo.search._surrogate import PredictorSource, ScoreModel

__all__ = [
    "GuidedNCPProposer",
    "History",
    "HistoryBuilder",
    "NCPProposer",
    "NetAdaptProposer",
    "NeuralPredictorProposer",
    "PredictorSource",
    "Proposer",
    "ScoreModel",
    "SearchEngine",
    "code_key",
    "pareto_mask",
]

# Loaded on first use: the command line imports ``ncp_hpo.search._registry`` at start-up and
# must not pay for torch.
_LAZY = {
    "GuidedNCPProposer": "ncp_hpo.search._proposers",
    "History": "ncp_hpo.search._history",
    "HistoryBuilder": "ncp_hpo.search._engine",
    "NCPProposer": "ncp_hpo.search._proposers",
    "NetAdaptProposer": "ncp_hpo.search._proposers",
    "NeuralPredictorProposer": "ncp_hpo.search._proposers",
    "PredictorSource": "ncp_hpo.search._surrogate",
    "Proposer": "ncp_hpo.search._proposers",
    "ScoreModel": "ncp_hpo.search._surrogate",
    "SearchEngine": "ncp_hpo.search._engine",
    "code_key": "ncp_hpo.search._history",
    "pareto_mask": "ncp_hpo.search._history",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
