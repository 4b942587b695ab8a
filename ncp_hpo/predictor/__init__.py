"""The neural predictor: architecture code -> metrics (paper Section 3.1, Eq. 1-2, Appendix E.1).

:class:`NeuralPredictor` is the estimator (``fit`` / ``predict`` / ``score`` / ``save`` /
``load``); :func:`fit_setting_predictor` fits it on a benchmark setting the paper's way.
"""

from ncp_hpo.predictor._estimator import (
    CheckpointError,
    NeuralPredictor,
    PredictorScore,
    _torch_threads,
    as_code_batch,
    fit_setting_predictor,
)

torch_threads = _torch_threads

__all__ = [
    "CheckpointError",
    "NeuralPredictor",
    "PredictorScore",
    "as_code_batch",
    "fit_setting_predictor",
    "torch_threads",
]
