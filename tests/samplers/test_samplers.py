from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase
from optuna.trial import TrialState

from ncp_hpo import NeuralPredictor
from ncp_hpo.samplers import NCPSampler, NetAdaptSampler, NeuralPredictorSampler
from ncp_hpo.samplers._private_apis import optuna_set_trial_system_attr
from ncp_hpo.search._history import History
from ncp_hpo.spaces import MultiResolutionSpace, ParamSpace

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"iterations": 20, "predictor_params": {"epochs": 60}}
PROPOSAL = "ncp:proposal"


def _acc_objective(table):
    space = table.space

    def objective(trial: optuna.Trial) -> float:
        return float(table.query(space.suggest(trial))["Acc"])

    return objective


# -- Optuna's conformance suites (parameters outside the space -> independent sampler) ---
class TestNCPBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: NCPSampler(seed=0, warn_independent_sampling=False)


class TestNCPMultiObjective(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: NCPSampler(seed=0, warn_independent_sampling=False)


class TestNetAdaptBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: NetAdaptSampler(seed=0, warn_independent_sampling=False)


class TestNeuralPredictorBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: NeuralPredictorSampler(seed=0, warn_independent_sampling=False)


# -- behaviour on NAS-Bench-201 ---------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda sp: NCPSampler(space=sp, seed=0, n_startup_trials=5, **FAST),
        lambda sp: NetAdaptSampler(space=sp, seed=0, n_startup_trials=5),
        lambda sp: NeuralPredictorSampler(space=sp, seed=0, n_startup_trials=5, pool_size=2000),
    ],
    ids=["ncp", "netadapt", "neural-predictor"],
)
def test_proposes_unseen_valid_codes_and_improves(nb201, make) -> None:
    sampler = make(nb201.space)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_acc_objective(nb201), n_trials=30)
    codes = [nb201.space.encode(nb201.space.from_params(t.params)) for t in study.trials]
    assert len(set(codes)) == 30, "a code was proposed twice"
    proposed = [t for t in study.trials if PROPOSAL in t.system_attrs]
    # every trial after the 5 random ones; NCP's zero-cost warm start proposes those too
    assert len(proposed) == (30 if getattr(sampler, "warm_start", None) else 25)
    for t in proposed:
        assert json.loads(t.system_attrs[PROPOSAL]) == nb201.space.from_params(t.params).tolist()
    startup_best = max(t.value for t in study.trials[:5])
    assert study.best_value > startup_best


def test_seed_reproducible_and_seed_sensitive(nb201) -> None:
    def run(seed: int) -> list[dict]:
        s = NCPSampler(space=nb201.space, seed=seed, n_startup_trials=4, **FAST)
        st = optuna.create_study(direction="maximize", sampler=s)
        st.optimize(_acc_objective(nb201), n_trials=10)
        return [t.params for t in st.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_reseed_rng_changes_the_stream() -> None:
    s = NCPSampler(seed=1)
    a = s._rng.rng.integers(1 << 30)
    s.reseed_rng()
    b = s._rng.rng.integers(1 << 30)
    s2 = NCPSampler(seed=1)
    assert s2._rng.rng.integers(1 << 30) == a
    assert isinstance(b, np.integer)


def test_failed_and_nan_trials_are_ignored(nb201) -> None:
    space = nb201.space
    calls = {"n": 0}

    def objective(trial: optuna.Trial) -> float:
        calls["n"] += 1
        code = space.suggest(trial)
        if calls["n"] % 5 == 0:
            raise ValueError("simulated crash")
        if calls["n"] % 7 == 0:
            return math.nan
        return float(nb201.query(code)["Acc"])

    sampler = NCPSampler(space=space, seed=0, n_startup_trials=4, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=25, catch=(ValueError,))
    states = Counter(t.state for t in study.trials)
    assert states[TrialState.FAIL] == 8  # 5 crashes + 3 NaN (Optuna fails NaN trials)
    history = sampler._history(study)
    assert history.n == states[TrialState.COMPLETE]
    assert np.isfinite(history.scores).all()
    assert len([t for t in study.trials if PROPOSAL in t.system_attrs]) > 10


def test_pruned_and_failed_codes_are_never_proposed_again(nb201) -> None:
    space = nb201.space

    def objective(trial: optuna.Trial) -> float:
        acc = float(nb201.query(space.suggest(trial))["Acc"])
        if trial.number >= 6 and trial.number % 2 == 0:
            raise optuna.TrialPruned()
        if trial.number >= 6:
            raise ValueError("crash")
        return acc

    sampler = NCPSampler(space=space, seed=0, n_startup_trials=4, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=20, catch=(ValueError,))
    codes = [space.encode(space.from_params(t.params)) for t in study.trials]
    assert len(set(codes)) == 20
    history = sampler._history(study)
    assert history.n == 6 and history.rejected is not None and len(history.rejected) == 14


def test_multi_objective_pareto(nb201) -> None:
    space = nb201.space

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        row = nb201.query(space.suggest(trial))
        return float(row["Acc"]), float(row["flops"])

    sampler = NCPSampler(space=space, seed=0, n_startup_trials=6, **FAST)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=30)
    assert len([t for t in study.trials if PROPOSAL in t.system_attrs]) == 30  # warm start too
    front = study.best_trials
    assert front
    # the proposals spread along the front: both cheap and accurate cells are found
    accs = [t.values[0] for t in study.trials]
    flops = [t.values[1] for t in study.trials]
    assert min(flops[6:]) <= np.median(flops[:6])
    assert max(accs[6:]) >= np.median(accs[:6])


def test_constraints_make_infeasible_trials_non_incumbents(nb201) -> None:
    space = nb201.space
    limit = 60.0  # MFLOPs

    def objective(trial: optuna.Trial) -> float:
        row = nb201.query(space.suggest(trial))
        trial.set_constraint("flops", row["flops"] - limit)
        return float(row["Acc"])

    sampler = NCPSampler(space=space, seed=0, n_startup_trials=8, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=30)
    history = sampler._history(study)
    assert (~history.feasible).any() and history.feasible.any()
    inc = history.incumbents(max_count=1)[0]
    assert nb201.query(inc)["flops"] <= limit
    assert study.best_trial.constraints["flops"] <= 0
    feasible_after = [
        t.constraints["flops"] <= 0 for t in study.trials[8:] if t.state == TrialState.COMPLETE
    ]
    assert sum(feasible_after) >= len(feasible_after) // 2


def test_history_incumbents_without_feasible_trials() -> None:
    h = History(
        codes=np.arange(6).reshape(3, 2),
        scores=np.array([[1.0], [3.0], [2.0]]),
        pending=np.zeros((0, 2), dtype=np.int64),
        directions=("maximize",),
        constraints=np.array([[0.5], [2.0], [0.1]]),
        constraint_names=("c",),
    )
    np.testing.assert_array_equal(h.incumbents(max_count=1), [[4, 5]])


def test_n_jobs_threads_share_one_sampler(nb201) -> None:
    sampler = NCPSampler(space=nb201.space, seed=0, n_startup_trials=4, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_acc_objective(nb201), n_trials=20, n_jobs=2)
    assert len(study.trials) == 20
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    codes = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(codes)) == 20


def test_a_claim_from_a_stale_history_skips_every_code_taken_since(nb201) -> None:
    """A worker whose history is seconds old (a slow fit while other workers ran trials)
    finds its first candidates all taken: it yields past every one of them, however many,
    and never keeps a code another trial holds."""
    space = nb201.space
    sampler = NCPSampler(space=space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    state = sampler._require_main()
    history = sampler._history(study)  # read before the other workers' trials existed
    candidates = space.sample(20, seed=1)
    assert len({space.encode(c) for c in candidates}) == 20
    for code in candidates[:12]:  # 12 other workers took the first 12 candidates meanwhile
        other = study.ask()
        optuna_set_trial_system_attr(study, other, PROPOSAL, json.dumps(code.tolist()))
    mine = study.ask().number
    frozen = study.trials[mine]
    code, rank = sampler._claim(study, frozen, candidates, history, np.random.default_rng(0), state)
    assert rank == 12 and code.tolist() == candidates[12].tolist()  # not one the others hold
    assert json.loads(study.trials[mine].system_attrs[PROPOSAL]) == code.tolist()


def test_two_processes_share_a_sqlite_study(nb201, tmp_path: Path, shared_data_dir) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="two", storage=storage, direction="maximize")
    worker = Path(__file__).with_name("_workers.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), storage, "two", str(shared_data_dir), "12", str(s)],
        )
        for s in (0, 1)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0
    study = optuna.load_study(study_name="two", storage=storage)
    assert len(study.trials) == 24
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    proposed = [t.system_attrs[PROPOSAL] for t in study.trials if PROPOSAL in t.system_attrs]
    assert len(proposed) >= 12
    assert len(set(proposed)) == len(proposed), "NCP proposed a code twice across processes"


# -- priors and transfer ------------------------------------------------------------------
@pytest.fixture(scope="module")
def seg_prior(seg) -> NeuralPredictor:
    train, _, _ = seg.split(1000, 0, seed=0)
    return NeuralPredictor(epochs=60, seed=0).fit(
        seg.codes[train], {"mIoU": seg.metrics["mIoU"][train]}
    )


def test_prior_proposes_from_the_first_trial(seg, seg_prior) -> None:
    space = MultiResolutionSpace()
    seen = []

    def objective(trial: optuna.Trial) -> float:
        code = space.suggest(trial)
        seen.append(code)
        return float(seg_prior.predict(code[None])[0, 0])

    with pytest.raises(ValueError, match="pass that space as space="):
        NCPSampler(prior=seg_prior)  # no space: the prior's dimensions mean nothing
    sampler = NCPSampler(space=space, prior=seg_prior, online=False, seed=0, iterations=30)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=4)
    assert all(PROPOSAL in t.system_attrs for t in study.trials)
    # propagation from the paper's start raises the prior's predicted mIoU
    from ncp_hpo.propagation import paper_start

    start = float(seg_prior.predict(paper_start(space)[None])[0, 0])
    assert study.best_value > start


def test_a_prior_searches_extra_parameters_widened(seg_prior, caplog) -> None:
    """Architecture plus a learning rate with a prior: the prior is widened to the joint
    code (it ignores the learning rate until fine-tuned), so no parameter is random."""
    import logging

    space = MultiResolutionSpace()

    def objective(trial: optuna.Trial) -> float:
        code = space.suggest(trial)
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        return float(seg_prior.predict(code[None])[0, 0]) - 5 * abs(np.log10(lr) + 1)

    sampler = NCPSampler(space=space, prior=seg_prior, seed=0, iterations=20, mode="paper")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=20)
    assert not [r for r in caplog.records if "independent" in r.getMessage()]
    proposals = [json.loads(t.system_attrs[PROPOSAL]) for t in study.trials]
    lengths = [len(p) for p in proposals]
    assert lengths[0] == 27 and set(lengths[2:]) == {28}  # lr joins once a trial has it
    # the prior never saw the lr (held_dims): a proposal's lr grid index is at most one
    # perturbation (ParamSpace.neighbors: up to 16 steps) plus held_reach (8 steps) from an
    # earlier trial's, never a propagation's run to a bound of the range
    grid = ParamSpace({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)})
    seen = [int(grid.from_params({"lr": t.params["lr"]})[0]) for t in study.trials]
    for k in range(2, len(proposals)):
        lr = proposals[k][27]
        assert min(abs(lr - s) for s in seen[:k]) <= 16 + 8, (k, lr, seen[:k])


def test_prior_fine_tuned_on_the_study(seg, seg_prior) -> None:
    space = MultiResolutionSpace()

    def objective(trial: optuna.Trial) -> float:
        code = space.suggest(trial)
        return -float(space.flops(code)) / 1e9  # a different task: smallest network

    # paper mode: the codes it proposes are the propagation finals this check was written for
    # (the fine-tuning itself, PredictorSource, is the same in both modes)
    sampler = NCPSampler(
        space=space, prior=seg_prior, online=True, seed=0, iterations=30, mode="paper"
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=20)
    tuned = sampler._source._cached
    assert tuned is not None and tuned is not seg_prior
    # the fine-tuned main head learned the study's objective on the study's codes, where the
    # prior ranks them the other way round (it predicts mIoU, which grows with FLOPs) ...
    from scipy.stats import spearmanr

    codes = np.stack([space.from_params(t.params) for t in study.trials])
    values = np.array([t.value for t in study.trials])
    rho = spearmanr(tuned.predict(codes)[:, 0], values).statistic
    rho_prior = spearmanr(seg_prior.predict(codes)[:, 0], values).statistic
    # (measured over 3 seeds x 2 CPU math paths: tuned 0.60-0.92, prior -0.78 to -0.38)
    assert rho > 0.4 and rho - rho_prior > 0.8, (rho, rho_prior)
    # ... while the prior itself is untouched (it predicts mIoU, not -GFLOPs)
    assert seg_prior.predict(codes)[:, 0].min() > 50


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="strategy"):
        NCPSampler(strategy="greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a prior"):
        NCPSampler(online=False)
    with pytest.raises(ValueError, match="fitted"):
        NCPSampler(space=MultiResolutionSpace(), prior=NeuralPredictor())
    with pytest.raises(ValueError, match=r"lam=0\.5 weights exact FLOPs"):
        NCPSampler(lam=0.5)
    with pytest.raises(ValueError, match="n_startup_trials"):
        NCPSampler(n_startup_trials=-1)
    with pytest.raises(ValueError, match="lam"):
        NCPSampler(lam=-1)
