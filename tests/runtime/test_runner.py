"""The one trial runner: its rules (budget, streaks, stops) on real Optuna studies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from ncp_hpo.runtime._runner import (
    MAX_FAILURES_IN_ROW,
    RunHooks,
    RunPolicy,
    counted_trials,
    run_trials,
)
from ncp_hpo.spaces.budget import OVER_BUDGET

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(tmp_path: Path | None = None) -> tuple[optuna.Study, Any]:
    if tmp_path is None:
        storage: Any = optuna.storages.InMemoryStorage()
    else:
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.create_study(storage=storage, sampler=sampler), storage


def test_budget_counts_complete_and_pruned_not_failed_or_refused() -> None:
    study, storage = _study()

    def objective(trial: optuna.trial.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        kind = trial.number % 4
        if kind == 1:
            raise optuna.TrialPruned()
        if kind == 2:
            raise ValueError("boom")
        if kind == 3:  # a code refused for the compute budget: never counted
            trial.set_user_attr("fail_reason", OVER_BUDGET)
            raise optuna.TrialPruned()
        return x

    ends: list[str] = []
    run = run_trials(
        study,
        objective,
        storage=storage,
        policy=RunPolicy(budget=6),
        hooks=RunHooks(on_finish=lambda s, f, end: ends.append(end)),
    )
    assert run.stop_reason is None
    assert counted_trials(study) == 6
    assert ends[:4] == ["complete", "pruned", "failed", "refused"]
    assert run.count("complete") == 3 and run.count("pruned") == 3
    assert run.count("failed") == 2 and run.count("refused") == 2
    assert run.ran == 8  # refused codes are not counted as runs
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["fail_reason"] for t in failed] == [
        "objective error: ValueError: boom"
    ] * 2


def test_failures_in_a_row_stop_with_one_line_and_a_success_resets_the_streak() -> None:
    study, storage = _study()
    pattern = iter([True, True, False, True, True, True, True])  # True: raise

    def objective(trial: optuna.trial.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        if next(pattern):
            raise RuntimeError(f"bad trial {trial.number}")
        return 1.0

    run = run_trials(study, objective, storage=storage, policy=RunPolicy(budget=100))
    assert len(study.trials) == 3 + MAX_FAILURES_IN_ROW
    assert run.stop_reason == (
        f"stopped after {MAX_FAILURES_IN_ROW} failed trials in a row; last: "
        "objective error: RuntimeError: bad trial 5"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, "x"])
def test_unusable_values_fail_the_trial_with_their_reason(value: Any) -> None:
    study, storage = _study()
    run = run_trials(
        study,
        lambda t: value,
        storage=storage,
        policy=RunPolicy(budget=5, max_failures_in_row=2),
    )
    assert run.count("failed") == 2 and run.stop_reason is not None
    reason = study.trials[0].user_attrs["fail_reason"]
    assert reason.startswith("objective returned"), reason


def test_refusals_in_a_row_stop_with_the_callers_hint() -> None:
    study, storage = _study()

    def refuse(trial: optuna.trial.Trial) -> float:
        trial.set_user_attr("fail_reason", OVER_BUDGET)
        raise optuna.TrialPruned()

    run = run_trials(
        study,
        refuse,
        storage=storage,
        policy=RunPolicy(budget=3, max_refusals_in_row=7, refusal_hint="; raise the cap"),
    )
    assert len(study.trials) == 7 and counted_trials(study) == 0
    assert run.stop_reason == (
        "the sampler proposed 7 codes in a row over the compute budget; raise the cap"
    )


def test_should_stop_timeout_and_no_budget() -> None:
    study, storage = _study()
    calls = iter(range(100))
    run = run_trials(
        study,
        lambda t: t.suggest_float("x", 0, 1),
        storage=storage,
        policy=RunPolicy(budget=None),
        hooks=RunHooks(should_stop=lambda: next(calls) >= 4),
    )
    assert run.count("complete") == 4 and run.stop_reason is None
    run = run_trials(
        study,
        lambda t: t.suggest_float("x", 0, 1),
        storage=storage,
        policy=RunPolicy(budget=None, timeout=0.0),
    )
    assert run.ran == 0


def test_a_resumed_run_finishes_the_budget_and_enqueued_trials_come_first(
    tmp_path: Path,
) -> None:
    study, storage = _study(tmp_path)
    run_trials(
        study, lambda t: t.suggest_float("x", 0, 1), storage=storage, policy=RunPolicy(budget=2)
    )
    study.enqueue_trial({"x": 0.25})
    seen: list[float] = []
    run = run_trials(
        study,
        lambda t: t.suggest_float("x", 0, 1),
        storage=storage,
        policy=RunPolicy(budget=4),
        hooks=RunHooks(on_start=lambda t: seen.append(t.number)),
    )
    assert run.count("complete") == 2 and counted_trials(study) == 4
    assert study.trials[2].params == {"x": 0.25} and seen == [2, 3]


def test_sampler_errors_are_retried_then_stop_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    study, storage = _study()

    class Broken(optuna.samplers.RandomSampler):  # fails in ask(), before the objective
        def before_trial(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("sampler broke")

    study.sampler = Broken()
    lines: list[str] = []
    run = run_trials(
        study,
        lambda t: t.suggest_float("x", 0, 1),
        storage=storage,
        policy=RunPolicy(budget=3, max_errors=2, poll=0.001),
        hooks=RunHooks(log=lines.append),
    )
    assert run.stop_reason == "stopped after 3 errors in a row; last: RuntimeError: sampler broke"
    assert lines == ["error (retrying): RuntimeError: sampler broke"] * 2
    # each trial the broken sampler started was told FAIL with why, none left RUNNING
    assert {t.state for t in study.trials} == {TrialState.FAIL}
    assert all(
        t.user_attrs["fail_reason"] == "worker error: RuntimeError: sampler broke"
        for t in study.trials
    )


def test_ctrl_c_fails_the_running_trial_and_propagates() -> None:
    study, storage = _study()

    def objective(trial: optuna.trial.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, objective, storage=storage, policy=RunPolicy(budget=3))
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "interrupted (SIGTERM or Ctrl-C)"


@pytest.mark.parametrize(
    ("field", "value"), [("max_failures_in_row", 0), ("max_refusals_in_row", 0), ("budget", -1)]
)
def test_bad_policy_is_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        RunPolicy(**{field: value})


def test_no_other_trial_loop_in_the_package() -> None:
    """Trials run only through the runner: no ``study.optimize`` or ``ask`` elsewhere (the
    sampler replay asks a throw-away study to re-tell stored trials; it runs none)."""
    import re

    import ncp_hpo

    root = Path(ncp_hpo.__file__).parent
    allowed = {root / "runtime" / "_trial.py", root / "samplers" / "_replay.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if ">>>" in code or "``" in code:
                continue  # examples in docstrings
            if re.search(r"\.(optimize|ask)\(", code) and path not in allowed:
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not found, found
