"""Optuna samplers: NCP and the baselines it is judged against."""

from ncp_hpo.samplers._baselines import NetAdaptSampler, NeuralPredictorSampler
from ncp_hpo.samplers._ncp import NCPSampler

__all__ = ["NCPSampler", "NetAdaptSampler", "NeuralPredictorSampler"]
