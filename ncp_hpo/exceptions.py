"""Exception and warning hierarchy of ncp_hpo.

Every error the package raises on purpose derives from :class:`NCPError`, so users can
catch the whole family; the concrete classes also derive from the matching built-in
(``ValueError``, ``RuntimeError``, ...) so generic handlers keep working.
"""

from __future__ import annotations

from ncp_hpo._secrets import one_line as _one_line

__all__ = [
    "BudgetError",
    "CheckpointError",
    "ChecksumError",
    "CompareError",
    "CompareTrackingWarning",
    "DataError",
    "DataNotFoundError",
    "InvalidCodeError",
    "NCPError",
    "NCPWarning",
    "OracleCacheWarning",
    "PredictorCacheWarning",
    "PredictorNotFittedError",
    "RecordError",
    "SamplerConfigError",
    "SamplerParamError",
    "SearchError",
    "StorageError",
    "StorageUnavailableError",
    "TrackingWarning",
    "TrainingError",
    "UnknownSettingError",
    "UnsafePickleError",
    "UnsupportedSettingError",
    "WorkerError",
]


class NCPError(Exception):
    """Base class of all ncp_hpo errors."""


class InvalidCodeError(NCPError, ValueError):
    """An architecture code is malformed: wrong shape, non-integer, out of range or off-grid."""


class PredictorNotFittedError(NCPError, RuntimeError):
    """A predictor method that needs fitted weights was called before ``fit``/``load``."""


class DataError(NCPError):
    """Base class of benchmark-data problems (missing, corrupt, unsafe)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A benchmark file is not available locally; the message says how to get it."""


class ChecksumError(DataError, ValueError):
    """A benchmark file's SHA-256 does not match the pinned value."""


class UnsafePickleError(DataError, ValueError):
    """A pickle asked for a global outside the allow-list; nothing was executed."""


class UnknownSettingError(NCPError, KeyError):
    """A benchmark setting name is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NCPWarning(UserWarning):
    """Base class of ncp_hpo warnings."""


# -- data lane: benchmark data, surrogate oracle, setting search ----------------------------
class UnsupportedSettingError(NCPError, ValueError):
    """The setting has no surrogate oracle (NAS-Bench-201's table is complete)."""


class SearchError(NCPError, ValueError):
    """A setting search that cannot run (conflicting options, mixed code spaces ...)."""


class OracleCacheWarning(NCPWarning):
    """A cached oracle file was unusable and has been rebuilt, or could not be written."""


class PredictorCacheWarning(NCPWarning):
    """A cached setting predictor was unusable and is retrained, or could not be written."""


# --- lane: experiments (ncp_hpo/experiments) ---------------------------------------------
class CompareError(NCPError, ValueError):
    """A comparison cannot run as asked (bad sampler list, settings mismatch, busy folder,
    an option the chosen protocol does not use)."""


class RecordError(NCPError, ValueError):
    """A record that cannot be checked (missing, unreadable, or asked for more than it holds)."""


# -- lane core (predictor, propagation, spaces, search) ---------------------------------
class CheckpointError(NCPError, ValueError):
    """A predictor checkpoint is unreadable, corrupt, tampered with or of an unknown format."""


class SamplerConfigError(NCPError, ValueError):
    """An unknown sampler name, or parameters the sampler does not take."""


class SamplerParamError(NCPError, ValueError):
    """A ``--sampler-param`` value of the wrong type or outside its range."""


class BudgetError(NCPError, ValueError):
    """A budget no code can meet, or a bad cap."""


# --- runtime lane: storage, workers, real-training studies, their MLflow tracking ----------
class StorageError(NCPError, ConnectionError):
    """A storage URL is malformed, its driver is missing, or the storage cannot be reached.

    The message is passed through :func:`ncp_hpo._secrets.one_line` (passwords
    masked, one line).
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class StorageUnavailableError(NCPError, ConnectionError):
    """The storage stayed unreachable for the whole retry window (message redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class WorkerError(NCPError, RuntimeError):
    """A worker cannot start (bad configuration) or had to stop (too many failures).

    The message is passed through :func:`ncp_hpo._secrets.one_line` (redacted, one line).
    """

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class TrainingError(NCPError, ValueError):
    """A bad ``train``/``study`` setting (code, device, dataset, study), or a study that had
    to stop (failed trials in a row, a budget nothing fits)."""


class TrackingWarning(NCPWarning):
    """MLflow tracking is unavailable; training goes on without it."""


class CompareTrackingWarning(TrackingWarning):
    """MLflow tracking is unavailable; the comparison's files are written anyway."""
