"""One home per algorithm: each proposer's defaults, the mode table, and the settings both
adapters are built from (``ncp_hpo.search._settings``, ``ncp_hpo.search._presets``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ncp_hpo.search._local import LocalNCPProposer
from ncp_hpo.search._presets import NCP_MODES, ncp_settings
from ncp_hpo.search._proposers import GuidedNCPProposer, NCPProposer, NetAdaptProposer
from ncp_hpo.search._settings import PredictorDefaults, ProposerSettings, SourceSettings
from ncp_hpo.search._surrogate import PredictorSource
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space

ENSEMBLE = {"hidden": 64, "head_hidden": 32, "n_members": 5, "dropout": 0.1, "epochs": 100}


def test_each_mode_is_its_proposer_class_with_its_own_defaults() -> None:
    """The values the mode table held before the proposers owned them."""
    assert NCP_MODES == {
        "paper": NCPProposer,
        "guided": GuidedNCPProposer,
        "local": LocalNCPProposer,
    }
    space = NB201Space()
    paper, guided, local = (NCP_MODES[m](space) for m in ("paper", "guided", "local"))
    assert (paper.iterations, paper.lr, paper.n_starts) == (70, 3.0, 32)
    assert (guided.iterations, guided.lr, guided.n_starts, guided.kappa) == (30, 3.0, 16, 2.0)
    assert (local.iterations, local.lr, local.n_starts, local.kappa) == (30, 3.0, 16, 2.0)
    assert NCPProposer.predictor_defaults == PredictorDefaults()
    assert GuidedNCPProposer.predictor_defaults == PredictorDefaults(
        predictor_params=ENSEMBLE, refit_growth=0.3
    )
    assert LocalNCPProposer.predictor_defaults == PredictorDefaults(
        predictor_params=ENSEMBLE, refit_growth=0.3, input_features=True
    )
    assert NetAdaptProposer.predictor_defaults == PredictorDefaults()


def test_ncp_settings_fills_only_what_the_user_gave() -> None:
    s = ncp_settings("guided", lam=0.5, iterations=12, predictor_params={"epochs": 7})
    assert s.mode == "guided" and s.proposer.cls is GuidedNCPProposer
    assert s.proposer.params == {
        "lam": 0.5,
        "strategy": "continuous",
        "iterations": 12,
        "kappa": 2.0,
    }
    assert s.proposer.lam == 0.5
    assert s.source.defaults is GuidedNCPProposer.predictor_defaults
    assert "kappa" not in ncp_settings("paper").proposer.params  # paper mode has none
    assert ncp_settings(None).mode == "local"
    with pytest.raises(ValueError, match="iterations and n_starts must be >= 1, got 30, 0"):
        ncp_settings("local", n_starts=0)
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        ncp_settings("paper", kappa=-1.0)


def test_the_source_applies_the_defaults_then_the_user() -> None:
    nb201, seg = NB201Space(), MultiResolutionSpace()
    local = SourceSettings(
        predictor_params={"epochs": 7}, defaults=LocalNCPProposer.predictor_defaults
    )
    kwargs = local.predictor_kwargs(nb201)
    assert kwargs["n_threads"] == 1 and kwargs["epochs"] == 7 and kwargs["n_members"] == 5
    np.testing.assert_array_equal(kwargs["input_map"], nb201.input_features)
    assert "input_map" not in local.predictor_kwargs(seg)  # no input features there
    assert "input_map" not in local.predictor_kwargs(None)
    guided = SourceSettings(defaults=GuidedNCPProposer.predictor_defaults)
    assert "input_map" not in guided.predictor_kwargs(nb201)
    source = guided(nb201)
    assert isinstance(source, PredictorSource)
    assert (source.refit_every, source.refit_growth) == (1, 0.3)
    assert SourceSettings(refit_every=3, defaults=guided.defaults)(nb201).refit_every == 3
    # settings are values: a copy (Ax deep-copies the nodes) equals the original
    assert copy.deepcopy(local) == local


def test_a_prior_is_fine_tuned_after_every_trial(nb201) -> None:
    from ncp_hpo.predictor import NeuralPredictor

    codes = nb201.space.sample(30, seed=0)
    prior = NeuralPredictor(epochs=3, seed=0).fit(codes, {"Acc": nb201.main[:30]})
    s = ncp_settings("local", prior=prior)
    assert s.source.source_args()["refit_growth"] == 0.0
    assert s.source(nb201.space).prior is prior


def test_bad_source_arguments_fail_before_any_space() -> None:
    with pytest.raises(ValueError, match="refit_every must be >= 1"):
        SourceSettings(refit_every=0).check()
    with pytest.raises(ValueError, match="online=False needs a prior"):
        SourceSettings(online=False).check()


def test_proposer_settings_build_a_fresh_proposer_per_space() -> None:
    make = ProposerSettings(NetAdaptProposer, {"max_steps": 3})
    a, b = make(NB201Space()), make(NB201Space())
    assert a is not b and a.max_steps == b.max_steps == 3 and make.lam == 0.0


def test_the_local_proposer_checks_its_inherited_settings_too() -> None:
    space = NB201Space()
    for bad in ({"kappa": -1.0}, {"lam": -3.0}, {"iterations": 0}, {"n_incumbents": -1}):
        with pytest.raises(ValueError):
            LocalNCPProposer(space, **bad)
    with pytest.raises(TypeError, match="space must be a CodeSpace"):
        LocalNCPProposer("nb201")  # type: ignore[arg-type]
