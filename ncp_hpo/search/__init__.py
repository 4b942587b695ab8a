"""The search engine behind both adapters (the Optuna samplers and the Ax nodes), and the one
registry of sampler and task names.

Public names (``__all__``):

* the registry's names: :data:`SAMPLERS`, :data:`OPTUNA_SAMPLERS`,
  :data:`PREDICTOR_SAMPLERS`, :data:`AX_SAMPLERS`, :data:`DEFAULT_SAMPLERS` and
  :data:`TASKS` are the names the command line and :func:`ncp_hpo.samplers.make_sampler`
  (which builds a sampler by name) accept;
* the proposal rules (:class:`Proposer` and :class:`NCPProposer`,
  :class:`GuidedNCPProposer`, :class:`NetAdaptProposer`, :class:`NeuralPredictorProposer`),
  the study's history they read (:class:`History`), where the predictor comes from
  (:class:`PredictorSource`) and how its outputs map to the objectives (:class:`ScoreModel`);
* the zero-cost warm start of the start-up trials (:class:`ZeroCostWarmStart`,
  :func:`warm_start_codes`: the same codes for a baseline's study).

Everything needed to build an Ax ``ProposerNode`` is importable from here::

    from ncp_hpo.search import NCPProposer, PredictorSource
    node = ProposerNode(NCPProposer(space, lam=0.1), source=PredictorSource())

The modules (``_registry``, ``_proposers``, ``_local``, ``_history``, ``_surrogate``,
``_engine``, ``_tradeoff``, ``_presets``, ``_settings``, ``_sampler_params``,
``_warm_start``) are private. Each proposer class owns its defaults (its fields and its
``predictor_defaults``); ``_presets`` maps the NCP modes to proposer classes, and both
adapters are built from a ``_settings.ProposerSettings`` and a ``_settings.SourceSettings``.
"""

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

# Names without ``as`` are public (``__all__``); ``x as x`` marks an internal name that
# ncp_hpo's own adapters (samplers/) import from here, not part of the public API.
if TYPE_CHECKING:
    from ncp_hpo.search._engine import HistoryBuilder as HistoryBuilder
    from ncp_hpo.search._engine import LazyRNG as LazyRNG
    from ncp_hpo.search._engine import SearchEngine as SearchEngine
    from ncp_hpo.search._history import History
    from ncp_hpo.search._history import code_key as code_key
    from ncp_hpo.search._presets import ncp_settings as ncp_settings
    from ncp_hpo.search._proposers import (
        GuidedNCPProposer,
        NCPProposer,
        NetAdaptProposer,
        NeuralPredictorProposer,
        Proposer,
    )
    from ncp_hpo.search._registry import (
        AX_SAMPLERS,
        DEFAULT_SAMPLERS,
        OPTUNA_SAMPLERS,
        PREDICTOR_SAMPLERS,
        SAMPLERS,
        TASKS,
    )
    from ncp_hpo.search._surrogate import PredictorSource, ScoreModel
    from ncp_hpo.search._warm_start import ZeroCostWarmStart, warm_start_codes

__all__ = [
    "AX_SAMPLERS",
    "DEFAULT_SAMPLERS",
    "OPTUNA_SAMPLERS",
    "PREDICTOR_SAMPLERS",
    "SAMPLERS",
    "TASKS",
    "GuidedNCPProposer",
    "History",
    "NCPProposer",
    "NetAdaptProposer",
    "NeuralPredictorProposer",
    "PredictorSource",
    "Proposer",
    "ScoreModel",
    "ZeroCostWarmStart",
    "warm_start_codes",
]

# Loaded on first use: the command line reads the registry at start-up and must not pay for
# torch.
_LAZY = {
    **dict.fromkeys(
        (
            "AX_SAMPLERS",
            "DEFAULT_SAMPLERS",
            "OPTUNA_SAMPLERS",
            "PREDICTOR_SAMPLERS",
            "SAMPLERS",
            "TASKS",
        ),
        "ncp_hpo.search._registry",
    ),
    **dict.fromkeys(
        (
            "GuidedNCPProposer",
            "NCPProposer",
            "NetAdaptProposer",
            "NeuralPredictorProposer",
            "Proposer",
        ),
        "ncp_hpo.search._proposers",
    ),
    "History": "ncp_hpo.search._history",
    "PredictorSource": "ncp_hpo.search._surrogate",
    "ScoreModel": "ncp_hpo.search._surrogate",
    **dict.fromkeys(("ZeroCostWarmStart", "warm_start_codes"), "ncp_hpo.search._warm_start"),
    # internal: the adapters' shared engine and presets
    "HistoryBuilder": "ncp_hpo.search._engine",
    "LazyRNG": "ncp_hpo.search._engine",
    "SearchEngine": "ncp_hpo.search._engine",
    "code_key": "ncp_hpo.search._history",
    "ncp_settings": "ncp_hpo.search._presets",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
