"""``NCPSampler(mode="local")``: the guided pool plus predictor-ranked local steps around
the incumbents (``ncp-local`` in the registry)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from ncp_hpo.samplers import NCPSampler, make_sampler
from ncp_hpo.search import (
    OPTUNA_SAMPLERS,
    PREDICTOR_SAMPLERS,
    GuidedNCPProposer,
    PredictorSource,
)
from ncp_hpo.search._history import History, code_key
from ncp_hpo.search._local import LocalNCPProposer
from ncp_hpo.spaces import MultiResolutionSpace
from ncp_hpo.trainers._budget import VIOLATION_ATTR, enforce_budget

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"predictor_params": {"epochs": 30, "n_members": 3}, "iterations": 10}


def _history(table, rows: np.ndarray) -> History:
    acc = np.asarray(table.metrics["Acc"], dtype=np.float64)
    return History(
        codes=np.asarray(table.codes[rows], dtype=np.int64),
        scores=acc[rows][:, None],
        pending=np.zeros((0, table.space.dim), dtype=np.int64),
        directions=("maximize",),
    )


def _lookup_objective(table):
    space = table.space
    acc = np.asarray(table.metrics["Acc"], dtype=np.float64)
    lookup = {code_key(c): float(a) for c, a in zip(table.codes, acc, strict=True)}

    def objective(trial: optuna.Trial) -> float:
        return lookup[code_key(np.asarray(space.suggest(trial)))]

    return objective


def _fitted(table, rows: np.ndarray):
    source = PredictorSource(
        refit_growth=0.3, predictor_params={"epochs": 60, "n_members": 3, "n_threads": 1}
    )
    hist = _history(table, rows)
    model = source.model(hist, seed=0)
    assert model is not None
    return hist, model


def test_registry_and_mode(nb201) -> None:
    assert "ncp-local" in PREDICTOR_SAMPLERS and "ncp-local" in OPTUNA_SAMPLERS
    sampler = make_sampler("ncp-local", space=nb201.space, seed=0)
    assert isinstance(sampler, NCPSampler) and sampler.mode == "local"
    assert type(sampler._proposer) is LocalNCPProposer
    assert sampler._source.refit_growth > 0  # the guided mode's refit schedule
    with pytest.raises(ValueError, match="explore"):
        LocalNCPProposer(nb201.space, explore=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        LocalNCPProposer(nb201.space, max_steps=0)
    with pytest.raises(ValueError, match="residual_length"):
        LocalNCPProposer(nb201.space, residual_length=0.0)
    with pytest.raises(ValueError, match="residual_max"):
        LocalNCPProposer(nb201.space, residual_max=1)
    with pytest.raises(ValueError, match=r"held_dims must be dimensions 0\.\.29 of the code"):
        LocalNCPProposer(nb201.space, held_dims=(30,))
    assert LocalNCPProposer(nb201.space, held_dims=[np.int64(2)]).held_dims == (2,)
    with pytest.raises(ValueError, match="held_reach must be an int >= 0"):
        LocalNCPProposer(nb201.space, held_reach=-1)


def test_local_step_takes_the_predicted_best_neighbour(nb201) -> None:
    rows = np.random.default_rng(1).permutation(len(nb201))[:30]
    hist, model = _fitted(nb201, rows)
    prop = LocalNCPProposer(
        nb201.space, explore=0.0, n_walks=1, max_steps=3, iterations=5, residual=False
    )
    cands = prop.propose(hist, model, np.random.default_rng(0))
    best = hist.incumbents(max_count=1)[0]
    nbrs = nb201.space.neighbors(best)
    mean = model.member_scores(nbrs).mean(0)[:, 0]
    # the incumbent's neighbours, best predicted first; nothing else is needed
    np.testing.assert_array_equal(cands, nbrs[np.argsort(-mean, kind="stable")])
    assert prop.info["local"] is True
    # once the neighbourhood is taken (pending here), the walk steps to the best-predicted
    # neighbour and offers that one's neighbourhood next
    taken = History(
        codes=hist.codes,
        scores=hist.scores,
        pending=nbrs,
        directions=hist.directions,
    )
    walked = prop.propose(taken, model, np.random.default_rng(0))
    np.testing.assert_array_equal(walked[: len(nbrs)], cands)
    step = walked[len(nbrs) :]
    nxt = nb201.space.neighbors(cands[0])
    nxt_mean = model.member_scores(nxt).mean(0)[:, 0]
    np.testing.assert_array_equal(step, nxt[np.argsort(-nxt_mean, kind="stable")])
    seen = taken.seen()
    assert any(code_key(c) not in seen for c in step)


def test_exploration_proposals_are_the_guided_ranking(nb201) -> None:
    rows = np.random.default_rng(2).permutation(len(nb201))[:30]
    hist, model = _fitted(nb201, rows)
    local = LocalNCPProposer(nb201.space, explore=1.0, iterations=5, residual=False)
    guided = GuidedNCPProposer(nb201.space, iterations=5)
    a = local.propose(hist, model, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    rng.random()  # the local proposer's coin flip (local step or exploration)
    b = guided.propose(hist, model, rng)
    np.testing.assert_array_equal(a, b)
    assert local.info["local"] is False


def test_residual_kernel_pulls_the_stale_mean_toward_the_trials(nb201) -> None:
    rows = np.random.default_rng(3).permutation(len(nb201))[:40]
    _, model = _fitted(nb201, rows[:20])  # the predictor has seen 20 trials ...
    later = _history(nb201, rows)  # ... the history holds 40
    prop = LocalNCPProposer(nb201.space, iterations=5)
    prop._fit_residuals(later, model)
    new = later.codes[20:]
    stale = model.member_scores(new).mean(0)
    fresh = stale + prop._correction(new, later)
    y = later.scores[20:]
    # the correction fits the 20 trials the predictor has not seen: errors shrink
    assert np.abs(fresh - y).mean() < 0.5 * np.abs(stale - y).mean()
    # and it fades with distance: a code far from every trial keeps the stale mean
    far = nb201.space.sample(200, seed=9)
    moves = prop._moves(far, later.codes).min(1)
    corr = np.abs(prop._correction(far, later))[:, 0]
    assert corr[moves >= 3].mean() < corr[moves <= 1].mean()
    # the ranking uses it: the same proposer without the correction ranks differently
    plain = LocalNCPProposer(nb201.space, iterations=5, explore=1.0, residual=False)
    prop.explore = 1.0
    a = prop.propose(later, model, np.random.default_rng(0))
    b = plain.propose(later, model, np.random.default_rng(0))
    assert not np.array_equal(a[:20], b[:20])


def test_proposals_are_valid_unseen_and_deterministic(nb201) -> None:
    def run(seed: int) -> list[dict]:
        sampler = NCPSampler(space=nb201.space, seed=seed, mode="local", **FAST)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(_lookup_objective(nb201), n_trials=25)
        return [t.params for t in study.trials]

    first = run(4)
    codes = np.stack([nb201.space.from_params(p) for p in first])
    assert len({code_key(c) for c in codes}) == 25  # never a repeat
    nb201.space.validate(codes)
    assert first == run(4)  # the same seed, the same study
    assert first != run(5)


def test_local_mode_never_leaves_a_budget() -> None:
    base = MultiResolutionSpace()
    view = base.with_budget(max_flops=4e6, input_size=16, num_classes=10)

    def objective(trial: optuna.Trial) -> float:
        code = view.suggest(trial)
        enforce_budget(trial, view.budget, code)
        return float(code[np.asarray(base.is_width)].sum()) / 100.0  # wider is better

    sampler = make_sampler("ncp-local", space=view, seed=0, params={**FAST, "n_startup_trials": 4})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 12
    codes = np.stack([base.from_params(t.params) for t in study.trials])
    assert view.feasible(codes).all()
    assert all(t.user_attrs[VIOLATION_ATTR] <= 0 for t in study.trials)
    # the local steps press against the cap, as the predictor says wider is better
    assert view.budget.flops(codes[4:]).max() > 0.5 * 4e6


def test_score_cache_matches_fresh_scores_and_is_emptied_on_refit(nb201) -> None:
    rows = np.random.default_rng(4).permutation(len(nb201))[:30]
    hist, model = _fitted(nb201, rows)
    prop = LocalNCPProposer(nb201.space, iterations=5)
    codes = nb201.space.neighbors(hist.codes[0])
    first = prop._score_cached(codes[:10], model)
    # a repeat, an overlap and new codes: every field equals a fresh score of the rows
    mixed = np.concatenate([codes[5:], codes[:3], codes[5:7]])
    got, fresh = prop._score_cached(mixed, model), prop._score(mixed, model)
    assert set(got) == set(fresh)
    for f in fresh:
        np.testing.assert_array_equal(got[f], fresh[f])
    np.testing.assert_array_equal(prop._score_cached(codes[:10], model)["mean"], first["mean"])
    # a refit (new model version) empties the cache: rows come from the new predictor
    source = PredictorSource(
        refit_growth=0.0, predictor_params={"epochs": 20, "n_members": 3, "n_threads": 1}
    )
    refit = source.model(_history(nb201, rows), seed=1)
    assert refit is not None
    again = prop._score_cached(codes[:10], refit)
    np.testing.assert_array_equal(again["mean"], refit.member_scores(codes[:10]).mean(0))
    assert len(prop._cache.index) == 10


def test_history_seen_is_built_once_and_returned_fresh(nb201) -> None:
    hist = _history(nb201, np.arange(5))
    seen = hist.seen()
    assert seen == {code_key(c) for c in hist.codes}
    seen.add(b"x")  # a caller's set: the history's own keys stay as they were
    assert b"x" not in hist.seen() and len(hist.seen()) == 5


def test_differing_dimensions_one_hot_and_integer_codes() -> None:
    from ncp_hpo.search._local import _differing

    rng = np.random.default_rng(0)
    for high in (2, 5):  # 0/1 codes take the matrix product, others the comparison
        a, b = rng.integers(0, high, (17, 30)), rng.integers(0, high, (9, 30))
        want = (a[:, None, :] != b[None, :, :]).sum(-1)
        got = _differing(a, b)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert _differing(a[:0], b).shape == (0, 9)


def test_unique_rows_first_seen_order_as_np_unique() -> None:
    from ncp_hpo.search._proposers import _unique_rows

    def reference(a: np.ndarray) -> np.ndarray:
        _, idx = np.unique(a, axis=0, return_index=True)
        return a[np.sort(idx)]

    rng = np.random.default_rng(0)
    for dtype in (np.int64, np.int32, np.float64):
        a = rng.integers(0, 3, (200, 4)).astype(dtype)  # many repeated rows
        got = _unique_rows(a)
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got, reference(a))
    assert _unique_rows(np.zeros((0, 4), dtype=np.int64)).shape == (0, 4)
