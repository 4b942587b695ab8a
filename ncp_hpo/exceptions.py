"""Exception and warning hierarchy of ncp_hpo.

Every error the package raises on purpose derives from :class:`NCPError`, so users can
catch the whole family; the concrete classes also derive from the matching built-in
(``ValueError``, ``RuntimeError``, ...) so generic handlers keep working.
"""

from __future__ import annotations


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


# -- lane core (predictor, propagation, spaces, search) ---------------------------------
class CheckpointError(NCPError, ValueError):
    """A predictor checkpoint is unreadable, corrupt, tampered with or of an unknown format."""


class SamplerConfigError(NCPError, ValueError):
    """An unknown sampler name, or parameters the sampler does not take."""


class SamplerParamError(NCPError, ValueError):
    """A ``--sampler-param`` value of the wrong type or outside its range."""


class BudgetError(NCPError, ValueError):
    """A budget no code can meet, or a bad cap."""
