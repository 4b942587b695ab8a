"""NCPSampler's two modes: the paper's Algorithm 1 (the default) and ``mode="guided"``
(ensemble UCB over propagated codes and their neighbourhoods, growing refit schedule)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import ncp_hpo.propagation as propagation
from ncp_hpo.samplers import NCPSampler
from ncp_hpo.samplers._base import PredictorSamplerBase
from ncp_hpo.search._history import History
from ncp_hpo.search._proposers import GuidedNCPProposer, NCPProposer
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.search._surrogate import PredictorSource

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _history(table, rows: np.ndarray) -> History:
    acc = np.asarray(table.metrics["Acc"], dtype=np.float64)
    return History(
        codes=np.asarray(table.codes[rows], dtype=np.int64),
        scores=acc[rows][:, None],
        pending=np.zeros((0, table.space.dim), dtype=np.int64),
        directions=("maximize",),
    )


def _run(table, sampler: optuna.samplers.BaseSampler, trials: int) -> np.ndarray:
    space = table.space
    acc = np.asarray(table.metrics["Acc"], dtype=np.float64)
    lookup = {
        np.asarray(c, dtype=np.int64).tobytes(): float(a)
        for c, a in zip(table.codes, acc, strict=True)
    }

    def objective(trial: optuna.Trial) -> float:
        return lookup[np.asarray(space.suggest(trial), dtype=np.int64).tobytes()]

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return np.maximum.accumulate([t.value for t in study.trials])


def test_refit_schedule_grows_with_the_history(nb201) -> None:
    source = PredictorSource(
        refit_every=1, refit_growth=0.2, predictor_params={"epochs": 5, "n_threads": 1}
    )
    rows = np.random.default_rng(0).permutation(len(nb201))[:60]
    fitted_at, versions = [], []
    for n in range(10, 61):
        before = source.n_fits
        model = source.model(_history(nb201, rows[:n]), seed=0)
        assert model is not None
        versions.append(model.version)
        if source.n_fits > before:
            fitted_at.append(n)
    # the gap is max(1, floor(0.2 * n_last_fit)): 2 at 10..14, 3 at 16, 4 at 22 ...
    assert fitted_at == [10, 12, 14, 16, 19, 22, 26, 31, 37, 44, 52]
    # the model's version changes exactly at the fits (proposers cache per version)
    assert versions[-1] == len(fitted_at) and sorted(set(versions)) == versions[:1] + [
        v for i, v in enumerate(versions[1:]) if v != versions[i]
    ]
    with pytest.raises(ValueError, match="refit_growth"):
        PredictorSource(refit_growth=-0.1)


def test_guided_mode_propagates_once_per_fit(nb201, monkeypatch) -> None:
    calls: list[int] = []
    real = propagation.propagate

    def counted(*args, **kwargs):
        calls.append(len(args[2]))  # starts
        return real(*args, **kwargs)

    monkeypatch.setattr(propagation, "propagate", counted)
    sampler = NCPSampler(space=nb201.space, seed=0, mode="guided")
    _run(nb201, sampler, 40)
    n_fits = sampler._source.n_fits
    # 30 proposals, far fewer fits: at 10, 13, 16, 20, 26 and 33 completed trials (gap 0.3 n)
    assert n_fits == 6
    assert len(calls) == n_fits and set(calls) == {16}


def test_guided_mode_finds_top_cells_of_nas_bench_201(nb201) -> None:
    acc = np.sort(np.asarray(nb201.metrics["Acc"], dtype=np.float64))[::-1]
    top20 = acc[19]  # 20 best of 15,625 cells; random search reaches it in 12% of 100-trial runs
    finals = [
        _run(nb201, NCPSampler(space=nb201.space, seed=s, mode="guided"), 100)[-1] for s in range(3)
    ]
    assert np.median(finals) >= top20


def test_ucb_weighs_the_ensemble_spread(nb201) -> None:
    space = nb201.space
    codes = space.sample(2, seed=0)
    cand = {
        "codes": codes,
        "mean": np.array([[1.0], [0.5]]),
        "std": np.array([[0.0], [1.0]]),
        "violation": np.zeros(2),
        "log_flops": np.zeros(2),
    }
    hist = _history(nb201, np.arange(10))
    w = np.ones(1)
    greedy = GuidedNCPProposer(space, kappa=0.0)._ucb(cand, hist, w)
    curious = GuidedNCPProposer(space, kappa=2.0)._ucb(cand, hist, w)
    assert greedy[0] > greedy[1] and curious[1] > curious[0]


def test_paper_mode_is_the_papers_algorithm(nb201) -> None:
    fast = {"iterations": 20, "predictor_params": {"epochs": 30}}
    paper = NCPSampler(space=nb201.space, seed=3, mode="paper", n_startup_trials=5, **fast)
    assert type(paper._proposer) is NCPProposer
    assert (paper._proposer.n_starts, paper._proposer.lr) == (32, 3.0)
    assert paper._source.refit_every == 1 and paper._source.refit_growth == 0.0
    assert NCPSampler(space=nb201.space, mode="paper")._proposer.iterations == 70
    # the same proposals as the paper's proposer wired by hand, and a refit every trial
    by_hand = PredictorSamplerBase(
        space=nb201.space,
        proposer=ProposerSettings(NCPProposer, {"iterations": 20, "lr": 3.0, "n_starts": 32}),
        source=SourceSettings(predictor_params={"epochs": 30}),
        n_startup_trials=5,
        seed=3,
    )
    a, b = _run(nb201, paper, 15), _run(nb201, by_hand, 15)
    np.testing.assert_array_equal(a, b)
    assert paper._source.n_fits == 10


def test_guided_defaults_and_bad_mode(nb201) -> None:
    assert NCPSampler(space=nb201.space).mode == "local"  # the default since 0.2.0
    s = NCPSampler(space=nb201.space, mode="guided")
    assert s.mode == "guided" and isinstance(s._proposer, GuidedNCPProposer)
    assert s._source.refit_growth > 0 and s._proposer.kappa == 2.0
    with pytest.raises(ValueError, match="mode must be 'guided', 'local' or 'paper'"):
        NCPSampler(mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kappa"):
        NCPSampler(kappa=-1.0)


def test_every_adapter_and_name_gets_the_same_default(nb201) -> None:
    """``NCPSampler()``, the Ax node and the ``ncp`` name are one configuration (local
    mode); ``ncp-paper`` is Algorithm 1 as published."""
    from ncp_hpo.samplers import NCPNode, make_sampler
    from ncp_hpo.search._local import LocalNCPProposer

    by_name = make_sampler("ncp", space=nb201.space, seed=0)
    node = NCPNode(nb201.space, seed=0)
    for proposer, source in ((by_name._proposer, by_name._source), (node.proposer, node.source)):
        assert type(proposer) is LocalNCPProposer and proposer.kappa == 2.0
        assert source.refit_growth == pytest.approx(0.3)
        assert source.predictor_params["n_members"] == 5
        assert source.predictor_params["input_map"].shape[1] == nb201.space.dim  # op counts
    paper = make_sampler("ncp-paper", space=nb201.space, seed=0)
    assert type(paper._proposer) is NCPProposer and paper._source.refit_growth == 0
    paper_node = NCPNode(nb201.space, mode="paper")
    assert type(paper_node.proposer) is NCPProposer and paper_node.proposer.iterations == 70
    with pytest.raises(ValueError, match="mode must be"):
        NCPNode(nb201.space, mode="fast")  # type: ignore[arg-type]


def test_with_a_prior_the_default_is_paper_mode(nb201) -> None:
    """Given a prior, the default propagates through it from the first trial (paper mode),
    in the sampler and in the Ax node; an explicit mode is kept."""
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.samplers import NCPNode

    codes = nb201.space.sample(40, seed=0)
    prior = NeuralPredictor(epochs=5, seed=0).fit(codes, {"Acc": nb201.main[:40]})
    with_prior = NCPSampler(space=nb201.space, prior=prior)
    assert with_prior.mode == "paper" and type(with_prior._proposer) is NCPProposer
    assert with_prior.warm_start is None  # no start-up trials with a prior
    assert NCPNode(nb201.space, prior=prior).mode == "paper"
    assert NCPSampler(space=nb201.space, prior=prior, mode="local").mode == "local"
    assert NCPSampler(space=nb201.space).mode == NCPNode(nb201.space).mode == "local"
