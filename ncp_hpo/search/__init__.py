"""The search engine behind both adapters (the Optuna samplers and the Ax nodes).

* :mod:`.history`: the study's history as plain arrays (:class:`History`).
* :mod:`.surrogate`: where the predictor comes from (:class:`PredictorSource`) and how its
  outputs map to the objectives (:class:`ScoreModel`).
* :mod:`.proposers`: the proposal rules (NCP, guided NCP, NetAdapt, neural predictor).
* :mod:`.tradeoff`: the one FLOPs trade-off (lambda) every proposer uses.
* :mod:`.engine`: history assembly, proposal and the choice of an unseen code.
* :mod:`.presets`: the samplers' modes and defaults.
* :mod:`.registry`: sampler and task names.

Everything needed to build an Ax ``ProposerNode`` is importable from here::

    from ncp_hpo.search import NCPProposer, PredictorSource
    node = ProposerNode(NCPProposer(space, lam=0.1), source=PredictorSource())
"""

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

if TYPE_CHECKING:
    from ncp_hpo.search.engine import HistoryBuilder, SearchEngine
    from ncp_hpo.search.history import History, code_key, pareto_mask
    from ncp_hpo.search.proposers import (
        GuidedNCPProposer,
        NCPProposer,
        NetAdaptProposer,
        NeuralPredictorProposer,
        Proposer,
    )
    from ncp_hpo.search.surrogate import PredictorSource, ScoreModel

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

# Loaded on first use: the command line imports ``ncp_hpo.search.registry`` at start-up and
# must not pay for torch.
_LAZY = {
    "GuidedNCPProposer": "ncp_hpo.search.proposers",
    "History": "ncp_hpo.search.history",
    "HistoryBuilder": "ncp_hpo.search.engine",
    "NCPProposer": "ncp_hpo.search.proposers",
    "NetAdaptProposer": "ncp_hpo.search.proposers",
    "NeuralPredictorProposer": "ncp_hpo.search.proposers",
    "PredictorSource": "ncp_hpo.search.surrogate",
    "Proposer": "ncp_hpo.search.proposers",
    "ScoreModel": "ncp_hpo.search.surrogate",
    "SearchEngine": "ncp_hpo.search.engine",
    "code_key": "ncp_hpo.search.history",
    "pareto_mask": "ncp_hpo.search.history",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
