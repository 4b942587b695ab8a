"""Where a sampler's predictor comes from: a prior, the study's own trials, or both.

* ``prior`` only: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (e.g. trained on a
  NAS-Bench-MR setting) is used as it is; its main metric stands for objective 0.
* online only: a predictor is fitted on the study's completed trials (objective values
  signed so that higher is better), refitted every ``refit_every`` new trials (or, with
  ``refit_growth``, every ``max(refit_every, refit_growth * n)`` new trials, so the gap
  grows with the history) and warm-started from the previous fit.
* both: cross-task transfer (:class:`~ncp_hpo.search._transfer.PriorTransfer`). The prior
  is re-scaled to the study's objective 0 (:func:`~ncp_hpo.predictor.recalibrate`:
  ``a * prediction + b`` by least squares, ``a >= 0``, which keeps its ranking) and a copy
  is fine-tuned on the study's trials, starting again from the prior each time: its main
  metric head learns objective 0, its other heads are fine-tuned toward their own current
  predictions, so they stay what they were (a warm start needs every head). The sampler
  proposes with the fine-tune once it predicts the trials it had not yet seen better than
  the prior does (Kendall tau, >= 5 trials), with the re-scaled prior until then.

The cache is only a warm start: the training data always comes from the storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ncp_hpo.predictor import NeuralPredictor
from ncp_hpo.search._history import History
from ncp_hpo.search._transfer import PriorTransfer

__all__ = ["PredictorSource", "ScoreModel"]


@dataclass(frozen=True)
class ScoreModel:
    """A fitted predictor plus how its outputs map to the study's objectives.

    ``outputs[j]`` is the predictor output index that estimates objective ``j`` (signed,
    higher is better); ``sign[j]`` multiplies that output to get the signed objective.
    Objectives the predictor does not model are absent (``len(outputs) <= k``).
    ``constraint_outputs`` are the outputs that estimate the study's constraint values.
    ``version`` changes whenever the predictor's weights change (a refit), so proposers
    can cache what they derive from it.
    """

    predictor: NeuralPredictor
    outputs: tuple[int, ...]
    sign: tuple[float, ...]
    constraint_outputs: tuple[int, ...] = ()
    version: int = 0

    def violation(self, codes: np.ndarray) -> np.ndarray:
        """Predicted total constraint violation of ``codes`` (``n x d``) -> ``n`` (0 = feasible)."""
        if not self.constraint_outputs:
            return np.zeros(len(codes))
        pred = np.asarray(self.predictor.predict(codes), dtype=np.float64).reshape(len(codes), -1)
        return np.clip(pred[:, list(self.constraint_outputs)], 0.0, None).sum(axis=1)

    def scores(self, codes: np.ndarray) -> np.ndarray:
        """Predicted signed objectives of ``codes`` (``n x d``) -> ``n x len(outputs)``."""
        pred = np.asarray(self.predictor.predict(codes), dtype=np.float64).reshape(len(codes), -1)
        return pred[:, list(self.outputs)] * np.asarray(self.sign)

    def scores_with_std(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed ensemble mean and member spread of ``codes`` (``n x d``): two
        ``n x len(outputs)`` arrays (the spread is 0 for a one-member predictor)."""
        mean, std = self.predictor.predict(codes, return_std=True)
        mean = np.asarray(mean, dtype=np.float64).reshape(len(codes), -1)[:, list(self.outputs)]
        std = np.asarray(std, dtype=np.float64).reshape(len(codes), -1)[:, list(self.outputs)]
        return mean * np.asarray(self.sign), std

    def member_scores(self, codes: np.ndarray) -> np.ndarray:
        """Each ensemble member's signed objectives of ``codes`` (``n x d``):
        ``n_members x n x len(outputs)``."""
        import torch

        p = self.predictor
        idx = list(self.outputs)
        with torch.no_grad():
            z = p.standardize(torch.as_tensor(np.asarray(codes), dtype=torch.float32))
            out = p.forward_standardized(z, members=True)[..., idx]
            out = out * p.target_std_[idx] + p.target_mean_[idx]
        return out.double().numpy() * np.asarray(self.sign)


def check_prior_type(prior: object) -> None:
    """Raise ``TypeError`` unless ``prior`` is ``None`` or a :class:`NeuralPredictor` (a
    path is not loaded implicitly: the message says how)."""
    if prior is None or isinstance(prior, NeuralPredictor):
        return
    hint = (
        f"; load a saved one first: prior=NeuralPredictor.load({str(prior)!r})"
        if isinstance(prior, (str, os.PathLike))
        else ""
    )
    raise TypeError(
        f"prior must be a fitted NeuralPredictor or None, got {type(prior).__name__}{hint}"
    )


class PredictorSource:
    """Builds (and caches, as a warm start) the predictor a sampler proposes with.

    Args:
        prior: a fitted predictor, or ``None``.
        online: fit on (or fine-tune with) the study's trials.
        refit_every: refit when this many new trials completed since the last fit.
        refit_growth: with ``g > 0``, refit only once ``max(refit_every, floor(g * n_fit))``
            new trials completed since the fit on ``n_fit`` trials (the gap grows with the
            history; 0 keeps a fixed gap).
        min_trials: fewest completed trials before an online fit (or a fine-tune).
        predictor_params: keyword arguments of the online :class:`NeuralPredictor`.
        fine_tune_epochs: epochs of each fine-tune of the prior.
        refit_epochs: epochs of each warm-started online refit (the first fit runs the
            predictor's own ``epochs``).
    """

    def __init__(
        self,
        *,
        prior: NeuralPredictor | None = None,
        online: bool = True,
        refit_every: int = 1,
        refit_growth: float = 0.0,
        min_trials: int = 2,
        predictor_params: dict[str, Any] | None = None,
        fine_tune_epochs: int = 100,
        refit_epochs: int = 50,
    ) -> None:
        check_prior_type(prior)
        if prior is not None and not prior.is_fitted:
            raise ValueError("prior must be a fitted NeuralPredictor (call fit or load first)")
        if prior is None and not online:
            raise ValueError("online=False needs a prior predictor: nothing to propose with")
        if refit_every < 1:
            raise ValueError(f"refit_every must be >= 1, got {refit_every}")
        if not refit_growth >= 0:
            raise ValueError(f"refit_growth must be >= 0, got {refit_growth}")
        self.prior = prior
        self.online = online
        self.refit_every = refit_every
        self.refit_growth = float(refit_growth)
        self.min_trials = max(2, min_trials)
        self.predictor_params = dict(predictor_params or {})
        self.fine_tune_epochs = fine_tune_epochs
        self.refit_epochs = refit_epochs
        self.transfer = (
            PriorTransfer(prior, epochs=fine_tune_epochs) if prior is not None and online else None
        )
        self._cached: NeuralPredictor | None = None
        self._cached_n = -1
        self.n_fits = 0  # fits run by this instance (each one is a new ``version``)

    def refit_due(self, n: int) -> bool:
        """Whether a history of ``n`` completed trials triggers a (re)fit."""
        if self._cached is None:
            return True
        gap = max(self.refit_every, int(self.refit_growth * self._cached_n))
        return n - self._cached_n >= gap

    def model(self, history: History, seed: int) -> ScoreModel | None:
        """The score model for ``history``, or ``None`` when no predictor is available yet."""
        prior = self.prior
        if not self.online or history.n < self.min_trials:
            if prior is None:
                return None
            return ScoreModel(prior, (prior.metric_index(prior.main_metric_),), (1.0,))
        if self.refit_due(history.n):
            self._cached = self._fit(history, seed)
            self._cached_n = history.n
            self.n_fits += 1
        p, v = self._cached, self.n_fits
        assert p is not None
        if prior is not None:
            return ScoreModel(p, (p.metric_index(p.main_metric_),), (1.0,), version=v)
        k, c = history.scores.shape[1], len(history.constraint_names)
        return ScoreModel(p, tuple(range(k)), (1.0,) * k, tuple(range(k, k + c)), version=v)

    def _fit(self, history: History, seed: int) -> NeuralPredictor:
        warm = self._cached is not None
        if self.prior is None:
            targets = {f"objective_{j}": col for j, col in enumerate(history.scores.T)}
            assert history.constraints is not None
            for name, col in zip(history.constraint_names, history.constraints.T, strict=True):
                targets[f"constraint_{name}"] = col
            # a new objective/constraint set (e.g. the first constraint appeared) refits cold
            warm = warm and list(targets) == self._cached.metric_names_  # type: ignore[union-attr]
            p = self._cached if warm else NeuralPredictor(**self.predictor_params)
            assert p is not None
            p.set_params(seed=seed)
            if warm:
                p.set_params(epochs=self.refit_epochs)
            return p.fit(history.codes, targets, warm_start=warm)
        assert self.transfer is not None
        return self.transfer.update(history, seed)
