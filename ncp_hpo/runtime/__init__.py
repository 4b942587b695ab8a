"""Running studies: shared storages, workers and real-training studies.

* Storage (:mod:`._storage`): :func:`open_storage` turns a ``postgresql+psycopg://``,
  ``sqlite:///`` or ``journal:`` URL into an Optuna storage with heartbeats that rides
  out outages (:mod:`._heartbeat`, the one place that uses Optuna's private heartbeat
  names); :func:`open_sqlite_storage` is the plain WAL-mode SQLite storage of one machine.
  Errors are one line: :class:`~ncp_hpo.exceptions.StorageError` names the root cause
  (:func:`root_cause`), passwords masked by :func:`redact`.
* Workers (:mod:`._worker`): a :class:`Worker` runs trials of one shared study until its
  budget of COMPLETE trials is met; :func:`benchmark_objective` and
  :func:`task_objective` build what it evaluates (an :class:`ObjectiveSpec`).
* Real-training studies (:mod:`._study`): :func:`run_training_study` runs or resumes
  ``ncp-hpo study``.

Names load on first use, so importing this package does not import Optuna or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

if TYPE_CHECKING:
    from ncp_hpo.runtime._errors import root_cause
    from ncp_hpo.runtime._heartbeat import ResilientRDBStorage
    from ncp_hpo.runtime._objectives import ObjectiveSpec, benchmark_objective, task_objective
    from ncp_hpo.runtime._secrets import redact
    from ncp_hpo.runtime._storage import (
        HeartbeatJournalStorage,
        open_sqlite_storage,
        open_storage,
    )
    from ncp_hpo.runtime._study import StudyConfig, StudyOutcome, run_training_study
    from ncp_hpo.runtime._worker import Worker, WorkerSummary

_LAZY = {
    "root_cause": "ncp_hpo.runtime._errors",
    "ResilientRDBStorage": "ncp_hpo.runtime._heartbeat",
    "ObjectiveSpec": "ncp_hpo.runtime._objectives",
    "benchmark_objective": "ncp_hpo.runtime._objectives",
    "task_objective": "ncp_hpo.runtime._objectives",
    "redact": "ncp_hpo.runtime._secrets",
    "HeartbeatJournalStorage": "ncp_hpo.runtime._storage",
    "open_sqlite_storage": "ncp_hpo.runtime._storage",
    "open_storage": "ncp_hpo.runtime._storage",
    "StudyConfig": "ncp_hpo.runtime._study",
    "StudyOutcome": "ncp_hpo.runtime._study",
    "run_training_study": "ncp_hpo.runtime._study",
    "Worker": "ncp_hpo.runtime._worker",
    "WorkerSummary": "ncp_hpo.runtime._worker",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "HeartbeatJournalStorage",
    "ObjectiveSpec",
    "ResilientRDBStorage",
    "StudyConfig",
    "StudyOutcome",
    "Worker",
    "WorkerSummary",
    "benchmark_objective",
    "open_sqlite_storage",
    "open_storage",
    "redact",
    "root_cause",
    "run_training_study",
    "task_objective",
]
