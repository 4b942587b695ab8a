"""Optuna samplers: NCP and the baselines it is judged against."""

from ncp_hpo.samplers._baselines import NetAdaptSampler, NeuralPredictorSampler

__all__ = ["NetAdaptSampler", "NeuralPredictorSampler"]
