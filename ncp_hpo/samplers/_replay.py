"""Resuming a study as if it had never stopped: replay a sampler over the finished trials.

A seeded sampler is a stream: its random generator advances with every trial, and the
predictor-based samplers also carry fitted predictors (warm starts) and candidate pools
from trial to trial. A process that resumes a study builds a fresh sampler, so without
help its stream would restart at the seed and its caches would be empty, and the trials
after the interruption would differ from an uninterrupted run's.

:func:`replay_sampler` runs the new sampler through the study's finished trials again, in
a throw-away in-memory study: each trial asks the sampler for the same parameters in the
same order (``study.ask(fixed_distributions)``, with the trial's enqueued parameters
enqueued first), checks that it proposes what the stored trial holds, and tells it the
stored outcome (values, intermediate values, constraints, user attributes, state). No
objective runs. Afterwards the sampler holds exactly the state it would hold had the run
gone on uninterrupted, so the same seed gives the same trials either way, and an
uninterrupted run is unchanged. The price is the sampler's own time for the replayed
trials (no training, no table look-ups).

A study whose trials were proposed while other trials ran (several workers) cannot be
replayed exactly; the replay stops at the first trial whose parameters differ and says so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.samplers import BaseSampler
    from optuna.trial import FrozenTrial

__all__ = ["ReplayResult", "replay_sampler"]


@dataclass(frozen=True)
class ReplayResult:
    """What :func:`replay_sampler` did.

    Attributes:
        replayed: trials the sampler was taken through (the study's finished prefix).
        diverged_at: the number of the first trial the sampler proposed differently (its
            state then differs from an uninterrupted run's from there on), or ``None``.
    """

    replayed: int
    diverged_at: int | None = None

    def message(self, study_name: str) -> str | None:
        """One line when the replay could not reproduce the stored trials, else ``None``."""
        if self.diverged_at is None:
            return None
        return (
            f"study {study_name!r}: the sampler does not reproduce stored trial "
            f"{self.diverged_at} (other code, settings or library versions, or trials run in "
            "parallel); the resumed trials may differ from an uninterrupted run's"
        )


def finished_prefix(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials up to (not including) the first one that is not finished."""
    prefix = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not t.state.is_finished():
            break
        prefix.append(t)
    return prefix


def replay_sampler(sampler: BaseSampler, study: optuna.Study) -> ReplayResult:
    """Take ``sampler`` through ``study``'s finished trials (module docstring).

    Call it on a fresh sampler, before the sampler proposes anything for ``study``.

    Returns:
        How many trials were replayed, and where the sampler diverged (if it did).
    """
    import optuna

    trials = finished_prefix(study)
    if not trials:
        return ReplayResult(0)
    from ncp_hpo.samplers._private_apis import optuna_study_id

    storage = optuna.storages.InMemoryStorage()
    study_id = optuna_study_id(study)
    # Optuna's samplers bind to one study id (IntersectionSearchSpace): give the shadow
    # study the real one, so the replayed sampler goes on with the real study
    for k in range(study_id):
        storage.create_new_study(directions=study.directions, study_name=f"replay-pad-{k}")
    shadow = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
        study_name=study.study_name,
        directions=study.directions,
    )
    if optuna_study_id(shadow) != study_id:  # pragma: no cover - another storage layout
        return ReplayResult(0, diverged_at=0)
    with warnings.catch_warnings():  # warnings were given when the trials first ran
        warnings.simplefilter("ignore")
        for n, stored in enumerate(trials):
            if stored.number != n or not _replay_one(shadow, stored):
                return ReplayResult(n, diverged_at=stored.number)
    return ReplayResult(len(trials))


def _replay_one(shadow: optuna.Study, stored: FrozenTrial) -> bool:
    """Ask ``shadow`` for ``stored``'s parameters and tell it ``stored``'s outcome; False
    (and the trial failed) when the sampler proposes other parameters."""
    from optuna.trial import TrialState

    fixed = stored.system_attrs.get("fixed_params")
    if fixed is not None:  # an enqueued trial: the sampler saw fixed parameters
        shadow.enqueue_trial(dict(fixed), skip_if_exists=False)
    trial = shadow.ask(fixed_distributions=dict(stored.distributions))
    if trial.params != stored.params:
        shadow.tell(trial, state=TrialState.FAIL)
        return False
    for key, value in stored.user_attrs.items():
        trial.set_user_attr(key, value)
    for key, value in stored.constraints.items():
        trial.set_constraint(key, value)
    for step, value in sorted(stored.intermediate_values.items()):
        trial.report(value, step)
    if stored.state == TrialState.COMPLETE:
        values: Any = stored.values
        shadow.tell(trial, values)
    else:  # FAIL or PRUNED
        shadow.tell(trial, state=stored.state)
    return True
