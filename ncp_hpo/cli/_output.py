"""What the ``worker``, ``train`` and ``study`` sub-commands print, and how.

:func:`cli_output` sets one-line warnings and quiet library loggers for the length of a
command (restored afterwards, so calling ``main`` in-process leaves no trace).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ncp_hpo._secrets import redact

if TYPE_CHECKING:
    from ncp_hpo.tracking import MLflowTracker

__all__ = ["cli_output", "make_tracker", "training_output"]


@contextmanager
def cli_output(*, verbose: bool) -> Iterator[None]:
    """One-line warnings, no experimental-feature noise, Optuna quiet unless verbose
    (restored afterwards, so calling ``main`` in-process leaves no trace)."""
    import optuna

    level = optuna.logging.get_verbosity()
    quiet = [logging.getLogger(name) for name in ("alembic", "mlflow")]
    levels = [lg.level for lg in quiet]
    fmt = warnings.formatwarning
    with warnings.catch_warnings():
        optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        url_env = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"  # two lines per MLflow run
        url_setting = os.environ.get(url_env)
        if not verbose:
            os.environ[url_env] = "true"
            warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
            for lg in quiet:
                lg.setLevel(logging.WARNING)
        try:
            yield
        finally:
            if url_setting is None:
                os.environ.pop(url_env, None)
            else:
                os.environ[url_env] = url_setting
            warnings.formatwarning = fmt
            for lg, level in zip(quiet, levels, strict=True):
                lg.setLevel(level)
            optuna.logging.set_verbosity(level)


def _one_line_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> str:
    text = redact(" ".join(str(message).split()))
    return f"ncp-hpo: warning: {text}\n"


@contextmanager
def training_output(*, verbose: bool) -> Iterator[None]:
    """:func:`cli_output`, with MLflow's INFO logs (database setup) quiet."""
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    imported = "mlflow" in sys.modules
    if not verbose:
        # MLflow sets its logger to INFO when imported: import it first where it is used
        mlflow_log.setLevel(logging.WARNING)
    try:
        with cli_output(verbose=verbose):
            yield
    finally:
        if imported:  # else the level is the one MLflow's import would have left
            mlflow_log.setLevel(level)


def make_tracker(uri: str | None, experiment: str, *, verbose: bool, **kw: Any) -> MLflowTracker:
    """An :class:`~ncp_hpo.tracking.MLflowTracker`, MLflow's logs quiet unless verbose."""
    import mlflow  # noqa: F401 - configures MLflow's loggers; quiet them afterwards

    from ncp_hpo.tracking import MLflowTracker

    if not verbose:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MLflowTracker(uri, experiment=experiment, **kw)
