"""Every sampler honours a compute budget: predictor-based ones never propose a code over
it (a budget-restricted space), Optuna's learn it as a constraint from refused trials."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from ncp_hpo.exceptions import SamplerConfigError
from ncp_hpo.samplers import NCPSampler, SpaceRandomSampler, make_sampler
from ncp_hpo.spaces import MultiResolutionSpace
from ncp_hpo.trainers import OVER_BUDGET
from ncp_hpo.trainers._budget import CONSTRAINT, VIOLATION_ATTR, enforce_budget

optuna.logging.set_verbosity(optuna.logging.ERROR)

BASE = MultiResolutionSpace()
VIEW = BASE.with_budget(max_flops=4e6, input_size=16, num_classes=10)
FAST = {"iterations": 15, "predictor_params": {"epochs": 40}}


def _objective(trial: optuna.Trial) -> float:
    """Wider is better: the search presses against the budget. Over-budget codes are
    refused before 'training', as the real objective does."""
    code = VIEW.suggest(trial)
    enforce_budget(trial, VIEW.budget, code)
    widths = code[np.asarray(BASE.is_width)]
    return float(widths.sum()) / 100.0


def _run(sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=n)
    return study


@pytest.mark.parametrize("name", ["ncp", "netadapt", "neural-predictor", "random"])
def test_predictor_samplers_and_random_never_leave_the_budget(name: str) -> None:
    params = dict(FAST) if name == "ncp" else {}
    if name in ("ncp", "netadapt", "neural-predictor"):
        params["n_startup_trials"] = 4
    if name == "neural-predictor":
        params["predictor_params"] = {"epochs": 40}
    sampler = make_sampler(name, space=VIEW, seed=0, params=params)
    study = _run(sampler, 10)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 10  # nothing refused: nothing over budget
    codes = np.stack([BASE.from_params(t.params) for t in study.trials])
    assert VIEW.feasible(codes).all()
    assert all(t.user_attrs[VIOLATION_ATTR] <= 0 for t in study.trials)
    assert len({tuple(c) for c in codes}) == 10
    if name != "random":  # the model's proposals press against the cap
        later = VIEW.budget.flops(codes[5:])
        assert later.max() > 0.5 * 4e6


def test_random_under_a_budget_is_the_space_random_sampler() -> None:
    assert isinstance(make_sampler("random", space=VIEW, seed=0), SpaceRandomSampler)
    assert isinstance(make_sampler("random", space=BASE, seed=0), optuna.samplers.RandomSampler)
    # common random numbers: random search and NCP's startup draw the same codes
    a = _run(SpaceRandomSampler(space=VIEW, seed=3), 3)
    b = _run(NCPSampler(space=VIEW, seed=3, n_startup_trials=5, **FAST), 3)  # type: ignore[arg-type]
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_gp_is_refused_on_a_budgeted_space_and_built_on_a_plain_one() -> None:
    """GPSampler fits COMPLETE trials only: the refusals above would teach it nothing."""
    with pytest.raises(SamplerConfigError, match="gp sampler cannot search under a compute"):
        make_sampler("gp", space=VIEW, seed=0)
    assert isinstance(make_sampler("gp", space=BASE, seed=0), optuna.samplers.GPSampler)


def test_a_gp_training_study_under_a_budget_is_refused_before_it_is_made(tmp_path: Any) -> None:
    from ncp_hpo.exceptions import TrainingError
    from ncp_hpo.runtime import StudyConfig
    from ncp_hpo.runtime._study import open_study_storage, run_training_study

    storage = open_study_storage(f"sqlite:///{tmp_path / 's.db'}")
    cfg = StudyConfig(task="cls", sampler="gp", name="s", trials=2, epochs=1, pruner="none",
                      max_flops=4e6, progress=False)  # fmt: skip
    with pytest.raises(TrainingError, match="gp sampler cannot search under a compute budget"):
        run_training_study(cfg, storage=storage, tracker=None, log=print)
    assert optuna.get_all_study_names(storage) == []


@pytest.mark.parametrize("name", ["tpe", "gp"])
def test_optuna_samplers_refuse_over_budget_codes_untrained(name: str) -> None:
    """TPE/GP start from random codes within the budget (as ``ncp-hpo study`` enqueues
    them); what they propose over the budget is refused, pruned and marked infeasible."""
    if name == "tpe":
        sampler = make_sampler("tpe", space=VIEW, seed=0, startup_trials=5)
    else:
        sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for code in VIEW.sample(5, seed=0):
        study.enqueue_trial(VIEW.to_params(code))
    study.optimize(_objective, n_trials=25 if name == "tpe" else 12)
    refused = [t for t in study.trials if t.user_attrs.get("fail_reason") == OVER_BUDGET]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) >= 5 and len(refused) + len(done) == len(study.trials)
    assert all(t.state == TrialState.PRUNED for t in refused)
    assert all(t.user_attrs[VIOLATION_ATTR] > 0 for t in refused)
    # the Optuna constraint of every refusal: TPE ranks it infeasible; none on the others
    assert all(t.constraints[CONSTRAINT] > 0 for t in refused)
    assert all(not t.constraints for t in done)
    codes = np.stack([BASE.from_params(t.params) for t in done])
    assert VIEW.feasible(codes).all()


def test_enforce_budget_raises_before_training_with_the_exact_cost() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    big = BASE.decode("64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64")
    with pytest.raises(optuna.TrialPruned, match="over compute budget"):
        enforce_budget(trial, VIEW.budget, big)
    attrs = study.trials[0].user_attrs
    assert attrs["fail_reason"] == OVER_BUDGET
    assert attrs["macs_analytic"] == int(VIEW.budget.flops(big))
    assert attrs[VIOLATION_ATTR] == pytest.approx(attrs["macs_analytic"] / 4e6 - 1)
