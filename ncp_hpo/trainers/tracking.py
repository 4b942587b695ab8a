"""MLflow tracking of training trials; the code lives in :mod:`ncp_hpo.tracking`.

Kept so that ``from ncp_hpo.trainers.tracking import MLflowTracker`` goes on working.
"""

from ncp_hpo.tracking._training import MLflowTracker, TrackingWarning, TrialRun

__all__ = ["MLflowTracker", "TrackingWarning", "TrialRun"]
