"""Names of the study and trial attributes the runtime writes (one definition each; this
module imports nothing, so the command line can use the names without loading Optuna)."""

from __future__ import annotations

__all__ = ["FAIL_ATTR", "FAIL_TAG", "OBJECTIVE_ATTR", "OVER_BUDGET_ATTR", "WORKER_ATTR"]

FAIL_ATTR = "fail_reason"
"""Trial user attribute: why a trial did not end COMPLETE (one line, its kind first)."""

FAIL_TAG = "ncp_hpo.fail_reason"
"""MLflow tag of a trial run that carries its ``fail_reason``."""

OBJECTIVE_ATTR = "ncp_hpo.objective"
"""Study user attribute: the description of the objective the study was created for."""

OVER_BUDGET_ATTR = "over_budget"
"""Trial user attribute of a worker's trial PRUNED unevaluated past the study's budget."""

WORKER_ATTR = "worker"
"""Trial user attribute: ``host:pid`` of the worker that ran the trial."""
