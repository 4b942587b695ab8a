"""TrialRows: finished trials' history rows are reused only for the same trial object."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from ncp_hpo.samplers._trial_rows import COMPLETE, PENDING, REJECTED, SKIP, TrialRows

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_rows_follow_the_trials() -> None:
    calls: list[int] = []

    def entry_of(t):
        calls.append(t.number)
        if "x" not in t.params:
            return None
        code = np.array([t.params["x"]], dtype=np.int64)
        return code, code.tobytes()

    rows = TrialRows(entry_of, np.array([-1.0]))
    study = optuna.create_study()
    dist = {"x": IntDistribution(0, 9)}
    done = study.ask(dist)
    study.tell(done, 2.0)
    running = study.ask(dist)

    def trials():
        return {t.number: t for t in study.get_trials(deepcopy=False)}

    first = rows(trials()[0])
    assert first.kind == COMPLETE and first.scores.tolist() == [-2.0]
    assert rows(trials()[1]).kind == PENDING
    assert rows(trials()[1]).kind == PENDING
    assert calls == [0, 1, 1]  # running trials are worked out afresh each time
    assert rows(trials()[0]) is first and calls == [0, 1, 1]  # finished: reused
    study.tell(running, state=TrialState.PRUNED)  # the trial's new object is read anew
    assert rows(trials()[1]).kind == REJECTED and calls == [0, 1, 1, 1]
    nan = study.ask(dist)
    study.tell(nan, float("nan"))
    assert rows(trials()[2]).kind == REJECTED
    empty = study.ask()
    study.tell(empty, 1.0)
    assert rows(trials()[3]).kind == SKIP
    # another study's trial with the same id (a fresh storage) is not mistaken for it
    other = optuna.create_study()
    t = other.ask(dist)
    other.tell(t, 5.0)
    assert rows(other.get_trials(deepcopy=False)[0]).scores.tolist() == [-5.0]
    assert rows(trials()[0]).scores.tolist() == [-2.0]
