"""MLflow logging of ``ncp-hpo compare``; the code lives in :mod:`ncp_hpo.tracking`."""

from ncp_hpo.tracking._comparison import (
    CompareTrackingWarning,
    LiveStudyRun,
    LiveTarget,
    child_params,
    end_comparison,
    log_comparison,
    log_files_run,
    open_comparison,
)

__all__ = [
    "CompareTrackingWarning",
    "LiveStudyRun",
    "LiveTarget",
    "child_params",
    "end_comparison",
    "log_comparison",
    "log_files_run",
    "open_comparison",
]
