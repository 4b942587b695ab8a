"""Running studies: shared storages, workers and real-training studies.

* Storage: :func:`open_storage` turns a ``postgresql+psycopg://``, ``sqlite:///`` or
  ``journal:`` URL into an Optuna storage with heartbeats that rides out outages (the
  private ``_heartbeat`` module is the one place that uses Optuna's private heartbeat
  names; journal files get a :class:`HeartbeatJournalStorage`);
  :func:`open_sqlite_storage` is the plain WAL-mode SQLite storage of one machine. Errors
  are one line: :class:`~ncp_hpo.exceptions.StorageError` names the root cause, passwords
  masked by :func:`~ncp_hpo.runtime.redact`.
* Workers: a :class:`Worker` runs trials of one shared study until its budget of COMPLETE
  trials is met (a :class:`WorkerSummary`); :func:`benchmark_objective` and
  :func:`task_objective` build what it evaluates (an :class:`ObjectiveSpec`).
* Real-training studies: :func:`run_training_study` runs or resumes ``ncp-hpo study``
  (a :class:`StudyConfig` in, a :class:`StudyOutcome` out).

The modules (``_storage``, ``_heartbeat``, ``_worker``, ``_study``, ...) are private. Names
load on first use, so importing this package does not import Optuna or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

# Names without ``as`` are public (``__all__``); ``x as x`` marks an internal name that
# ncp_hpo's command line imports from here, not part of the public API.
if TYPE_CHECKING:
    from ncp_hpo._secrets import redact
    from ncp_hpo.runtime._progress import human as human
    from ncp_hpo.runtime._pruning import choose_pruner as choose_pruner
    from ncp_hpo.runtime._setup import TASK_PRIORS as TASK_PRIORS
    from ncp_hpo.runtime._setup import check_dataset as check_dataset
    from ncp_hpo.runtime._setup import check_device as check_device
    from ncp_hpo.runtime._setup import check_weights_path as check_weights_path
    from ncp_hpo.runtime._setup import cuda_available as cuda_available
    from ncp_hpo.runtime._setup import parse_code as parse_code
    from ncp_hpo.runtime._setup import resolve_prior as resolve_prior
    from ncp_hpo.runtime._setup import save_weights as save_weights
    from ncp_hpo.runtime._setup import trial_threads as trial_threads
    from ncp_hpo.runtime._specs import ObjectiveSpec, benchmark_objective, task_objective
    from ncp_hpo.runtime._storage import HeartbeatJournalStorage, open_sqlite_storage, open_storage
    from ncp_hpo.runtime._study import CPU_STUDY_DEFAULTS as CPU_STUDY_DEFAULTS
    from ncp_hpo.runtime._study import PRUNERS as PRUNERS
    from ncp_hpo.runtime._study import StudyConfig, StudyOutcome, run_training_study
    from ncp_hpo.runtime._study import open_study_storage as open_study_storage
    from ncp_hpo.runtime._worker import Worker, WorkerSummary

__all__ = [
    "HeartbeatJournalStorage",
    "ObjectiveSpec",
    "StudyConfig",
    "StudyOutcome",
    "Worker",
    "WorkerSummary",
    "benchmark_objective",
    "open_sqlite_storage",
    "open_storage",
    "redact",
    "run_training_study",
    "task_objective",
]

_LAZY = {
    **dict.fromkeys(
        ("ObjectiveSpec", "benchmark_objective", "task_objective"), "ncp_hpo.runtime._specs"
    ),
    **dict.fromkeys(
        ("HeartbeatJournalStorage", "open_sqlite_storage", "open_storage"),
        "ncp_hpo.runtime._storage",
    ),
    **dict.fromkeys(
        ("StudyConfig", "StudyOutcome", "run_training_study"), "ncp_hpo.runtime._study"
    ),
    **dict.fromkeys(("Worker", "WorkerSummary"), "ncp_hpo.runtime._worker"),
    "redact": "ncp_hpo._secrets",
    # internal, for ncp_hpo's command line (not part of the public API)
    "human": "ncp_hpo.runtime._progress",
    "choose_pruner": "ncp_hpo.runtime._pruning",
    **dict.fromkeys(
        ("CPU_STUDY_DEFAULTS", "PRUNERS", "open_study_storage"), "ncp_hpo.runtime._study"
    ),
    **dict.fromkeys(
        (
            "check_dataset",
            "check_device",
            "check_weights_path",
            "cuda_available",
            "parse_code",
            "resolve_prior",
            "save_weights",
            "TASK_PRIORS",
            "trial_threads",
        ),
        "ncp_hpo.runtime._setup",
    ),
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
