"""IntersectionCache: the same space as Optuna's intersection_search_space, kept up to date."""

from __future__ import annotations

import gc

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.search_space import intersection_search_space
from optuna.trial import TrialState, create_trial

from ncp_hpo.samplers._intersection import IntersectionCache


def _reference(study: optuna.Study) -> dict[str, object]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return intersection_search_space(done, include_pruned=True)


def _add(study: optuna.Study, state: TrialState, **params: float) -> None:
    dists = {
        n: IntDistribution(0, 9) if isinstance(v, int) else FloatDistribution(0.0, 1.0)
        for n, v in params.items()
    }
    value = 0.0 if state == TrialState.COMPLETE else None
    study.add_trial(create_trial(state=state, params=params, distributions=dists, value=value))


def test_matches_optuna_as_trials_arrive_and_finish() -> None:
    cache = IntersectionCache()
    study = optuna.create_study()
    assert cache(study) == _reference(study) == {}
    _add(study, TrialState.COMPLETE, a=1, b=0.5, c=2)
    assert list(cache(study)) == ["a", "b", "c"]
    _add(study, TrialState.PRUNED, a=2, b=0.1)  # c dropped by a pruned trial
    _add(study, TrialState.FAIL, a=2)  # failed trials do not count
    assert cache(study) == _reference(study)
    assert list(cache(study)) == ["a", "b"]
    # a RUNNING trial is re-read once finished, even with newer trials folded in after it
    running = study.ask({"a": IntDistribution(0, 9), "b": FloatDistribution(0.0, 1.0)})
    _add(study, TrialState.COMPLETE, a=3, b=0.3, d=1)
    assert list(cache(study)) == ["a", "b"]
    study.tell(running, state=TrialState.PRUNED)
    assert list(cache(study)) == ["a", "b"] == list(_reference(study))
    _add(study, TrialState.COMPLETE, a=1)  # b dropped by a new trial
    assert cache(study) == _reference(study) == {"a": IntDistribution(0, 9)}


def test_one_entry_per_study() -> None:
    cache = IntersectionCache()
    first, second = optuna.create_study(), optuna.create_study()
    _add(first, TrialState.COMPLETE, a=1, b=0.5)
    _add(second, TrialState.COMPLETE, b=0.5)
    assert list(cache(first)) == ["a", "b"]
    assert list(cache(second)) == ["b"]
    _add(first, TrialState.COMPLETE, a=2, b=0.2)
    assert list(cache(first)) == ["a", "b"]


def test_a_study_that_is_gone_drops_its_entry() -> None:
    cache = IntersectionCache()
    study = optuna.create_study()
    _add(study, TrialState.COMPLETE, a=1)
    cache(study)
    assert len(cache._spaces) == 1
    del study
    gc.collect()
    assert len(cache._spaces) == 0
