"""``NCPSampler()`` on an objective written with plain ``trial.suggest_*`` calls (issue 24):
the search space is inferred from the study, encoded, and searched like a code space."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from ncp_hpo import NCPSampler
from ncp_hpo.samplers import NetAdaptSampler, NeuralPredictorSampler
from ncp_hpo.spaces import NB201Space, ParamSpace

PROPOSAL = "ncp:proposal"
FAST = {"predictor_params": {"epochs": 60}}


def mixed(trial: optuna.Trial) -> float:
    """A smooth mixed objective, best (1.0) at layers 3, width 64, lr 1e-3, act gelu."""
    layers = trial.suggest_int("layers", 1, 6)
    width = trial.suggest_int("width", 8, 512, log=True)
    act = trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    return (
        -((layers - 3) ** 2) / 4
        - (math.log2(width) - 6) ** 2 / 4
        - (math.log10(lr) + 3) ** 2
        + (act == "gelu")
    )


def _independent_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "independent" in r.getMessage().lower()]


def test_every_parameter_is_proposed_without_warnings(caplog) -> None:
    sampler = NCPSampler(seed=0, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level(logging.WARNING):
        study.optimize(mixed, n_trials=20)
    assert _independent_warnings(caplog) == []
    space = ParamSpace(dict(sorted(study.trials[-1].distributions.items())))  # Optuna's order
    proposed = [t for t in study.trials if PROPOSAL in t.system_attrs]
    assert [t.number for t in proposed] == list(range(10, 20))  # after 10 start-up trials
    for t in proposed:  # the stored params are the proposal, decoded
        np.testing.assert_array_equal(
            json.loads(t.system_attrs[PROPOSAL]), space.from_params(t.params)
        )
    assert study.best_value > max(t.value for t in study.trials[:10])


def test_seeded_runs_repeat_and_differ_by_seed() -> None:
    def run(seed: int) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=NCPSampler(seed=seed, **FAST))
        study.optimize(mixed, n_trials=14)
        return [t.params for t in study.trials]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("mode", ["local", "guided"])
def test_the_default_and_guided_modes_beat_random_search(mode: str) -> None:
    """Median over 3 seeds of the best after 30 trials: NCP above random search. (Paper
    mode runs on inferred spaces too, but does not beat random search on this objective.)"""
    ncp, rnd = [], []
    for seed in range(3):
        for sampler, out in (
            (NCPSampler(seed=seed, mode=mode, **FAST), ncp),
            (optuna.samplers.RandomSampler(seed=seed), rnd),
        ):
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(mixed, n_trials=30)
            out.append(study.best_value)
    assert np.median(ncp) > np.median(rnd)


@pytest.mark.parametrize("cls", [NetAdaptSampler, NeuralPredictorSampler])
def test_the_baselines_search_inferred_spaces_too(cls) -> None:  # NetAdapt, Wen et al.
    sampler = cls(seed=0, n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(mixed, n_trials=10)
    assert sum(PROPOSAL in t.system_attrs for t in study.trials) == 5


def test_paper_mode_proposes_on_inferred_spaces() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=NCPSampler(seed=0, mode="paper", iterations=20, **FAST)
    )
    study.optimize(mixed, n_trials=13)
    assert sum(PROPOSAL in t.system_attrs for t in study.trials) == 3


def test_conditional_parameters_are_sampled_independently_with_one_warning(caplog) -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -3.0, 3.0)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        if kind == "a":  # only on some trials: outside the intersection search space
            x += trial.suggest_float("shift", 0.0, 1.0)
        return -(x**2)

    study = optuna.create_study(direction="maximize", sampler=NCPSampler(seed=0, **FAST))
    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=24)
    messages = _independent_warnings(caplog)
    n_shift = sum("shift" in t.params for t in study.trials[10:])
    assert n_shift >= 2  # sampled several times after the start-up trials ...
    assert len(messages) == 1 and "`shift`" in messages[0]  # ... and warned about once
    assert "dynamic or conditional" in messages[0]
    assert all(PROPOSAL in t.system_attrs for t in study.trials[10:])


def test_a_code_space_and_ordinary_parameters_are_searched_as_one_vector(caplog) -> None:
    space = NB201Space()
    good = space.decode(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )

    def objective(trial: optuna.Trial) -> float:
        code = space.suggest(trial)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        return -float(np.abs(code - good).sum()) - (math.log10(lr) + 2) ** 2

    sampler = NCPSampler(space=space, seed=0, warm_start=None, **FAST)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=20)
    assert _independent_warnings(caplog) == []
    joint = [json.loads(t.system_attrs[PROPOSAL]) for t in study.trials[10:]]
    assert all(len(c) == 31 for c in joint)  # 30 cell slots + the learning rate's index
    lrs = {t.params["lr"] for t in study.trials[10:]}
    assert len(lrs) > 1
    assert sampler.space is space


def test_multi_objective_with_constraints_on_an_inferred_space() -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        n = trial.suggest_int("n", 1, 8)
        trial.set_constraint("x_at_most_0.8", x - 0.8)
        return x * n, float(n)

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=NCPSampler(seed=0, **FAST)
    )
    study.optimize(objective, n_trials=24)
    proposed = [t for t in study.trials if PROPOSAL in t.system_attrs]
    assert len(proposed) == 14
    feasible = [t for t in proposed if t.params["x"] <= 0.8]
    assert len(feasible) >= len(proposed) // 2  # infeasible incumbents are not chased
    assert any(t.params["x"] <= 0.8 for t in study.best_trials)


def test_lam_needs_a_code_space() -> None:
    with pytest.raises(ValueError, match=r"lam=0\.25 weights exact FLOPs"):
        NCPSampler(lam=0.25)


def test_the_searched_space_follows_the_study() -> None:
    """A parameter that stops appearing leaves the space; the sampler re-encodes."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number < 12:
            x += trial.suggest_float("y", 0.0, 1.0)
        return x

    study = optuna.create_study(direction="maximize", sampler=NCPSampler(seed=0, **FAST))
    study.optimize(objective, n_trials=16)
    # trial 12 was proposed while y was still in every completed trial; then y left
    late = [json.loads(t.system_attrs[PROPOSAL]) for t in study.trials[13:]]
    assert all(len(c) == 1 for c in late)  # x alone once y left the intersection
    assert study.trials[-1].distributions == {"x": FloatDistribution(0.0, 1.0)}


def _width_score(params: dict) -> float:
    """A cheap signal of a configuration: here, closeness of width to 64 (what ``mixed``
    rewards), as a parameter count or a proxy would be in a real objective."""
    return -abs(math.log2(params["width"]) - 6)


@pytest.mark.parametrize("mode", ["local", "paper"])
def test_params_scorer_ranks_the_startup_trials_of_an_inferred_space(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    from ncp_hpo.search import ZeroCostWarmStart

    warm = ZeroCostWarmStart(params_scorer=_width_score, pool_size=300)
    study = optuna.create_study(
        direction="maximize", sampler=NCPSampler(seed=3, mode=mode, warm_start=warm, **FAST)
    )
    with caplog.at_level(logging.WARNING, logger="optuna"):
        study.optimize(mixed, n_trials=12)
    assert _independent_warnings(caplog) == []
    scores = [_width_score(t.params) for t in study.trials]
    # trial 0 runs before the space is known (random); trials 1..9 are the pool's best
    # configurations, best first: widths near 64, their scores never rising
    startup = scores[1:10]
    assert startup == sorted(startup, reverse=True)
    assert min(startup) > np.median([_width_score({"width": w}) for w in range(8, 513)])
    cold = optuna.create_study(direction="maximize", sampler=NCPSampler(seed=3, mode=mode, **FAST))
    cold.optimize(mixed, n_trials=10)
    assert np.mean(startup) > np.mean([_width_score(t.params) for t in cold.trials[1:10]])


def test_a_table_warm_start_needs_its_code_space() -> None:
    from ncp_hpo.search import ZeroCostWarmStart

    with pytest.raises(ValueError, match="params_scorer"):
        NCPSampler(warm_start=ZeroCostWarmStart(benchmark="nas-bench-201"))
    with pytest.raises(ValueError, match="exactly one of"):
        ZeroCostWarmStart(benchmark="nas-bench-201", params_scorer=_width_score)
    with pytest.raises(ValueError, match="exactly one of"):
        ZeroCostWarmStart()
