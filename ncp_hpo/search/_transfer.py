"""A prior predictor on a new study: re-scaled, fine-tuned, and kept only while it predicts.

:class:`PriorTransfer` is the prior's half of a
:class:`~ncp_hpo.search.PredictorSource` given both a ``prior`` and ``online=True``.
After each completed trial it

1. scores the trials completed since the last update *before* learning from them: the
   prior's prediction and the last fine-tune's prediction of each, against its value
   (prequential evidence: neither model has seen the trial);
2. re-scales a copy of the prior to the study's objective
   (:func:`~ncp_hpo.predictor.recalibrate`, rank-preserving) and fine-tunes another copy
   from it on every completed trial;
3. proposes with the fine-tune once, on at least ``min_evidence`` such trials, it ranks
   them better (Kendall tau) than the prior does, and with the re-scaled prior until then.

A prior that ranks the new task's codes well (cls-50-1000 for seg) is then not thrown
away by a fine-tune on a handful of trials, and one that does not (video for seg) gives
way to the fine-tune as soon as the trials show it (``benchmarks/results/transfer.md``).
"""

from __future__ import annotations

import copy

import numpy as np

from ncp_hpo.predictor import NeuralPredictor, fine_tune, recalibrate
from ncp_hpo.search._history import History, code_key

__all__ = ["PriorTransfer"]


def _tau(pred: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau of ``pred`` against ``y``; -inf where undefined (constant input)."""
    from scipy.stats import kendalltau

    tau = float(kendalltau(pred, y).statistic)
    return tau if np.isfinite(tau) else -np.inf


class PriorTransfer:
    """Re-scales and fine-tunes ``prior`` on a study; picks the one that predicts better.

    The choice is made again at every update (on a few trials either may lead for a while).
    ``takeover_n`` is the number of completed trials at the first update that chose the
    fine-tune (``None`` while the prior has been kept); ``using_fine_tune`` is the last
    update's choice.

    Args:
        prior: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (not modified); its
            main metric stands for the study's objective 0 (signed, higher is better).
        epochs: epochs of each fine-tune (each one starts again from the prior).
        min_evidence: fewest prequentially scored trials before the fine-tune may replace
            the prior.
    """

    def __init__(self, prior: NeuralPredictor, *, epochs: int, min_evidence: int = 5) -> None:
        self.prior = prior
        self.epochs = epochs
        self.min_evidence = min_evidence
        self.takeover_n: int | None = None  # trials seen when the fine-tune first took over
        self.using_fine_tune = False  # the last update's choice
        self._tuned: NeuralPredictor | None = None
        self._scored: set[bytes] = set()
        # per scored trial: (prior's prediction, the then-current fine-tune's, value)
        self._evidence: list[tuple[float, float, float]] = []

    def evidence(self) -> tuple[int, float, float]:
        """``(n, tau of the prior, tau of the fine-tunes)`` over the scored trials."""
        if len(self._evidence) < 2:
            return len(self._evidence), -np.inf, -np.inf
        e = np.asarray(self._evidence)
        return len(e), _tau(e[:, 0], e[:, 2]), _tau(e[:, 1], e[:, 2])

    def update(self, history: History, seed: int) -> NeuralPredictor:
        """Score the new trials, refit on ``history``; the predictor to propose with."""
        self._score_new(history)
        y = history.scores[:, 0]
        calibrated = copy.deepcopy(self.prior)
        recalibrate(calibrated, history.codes, y)
        self._tuned = fine_tune(calibrated, history.codes, y, epochs=self.epochs, seed=seed)
        n, tau_prior, tau_tuned = self.evidence()
        self.using_fine_tune = n >= self.min_evidence and tau_tuned > tau_prior
        if not self.using_fine_tune:
            return calibrated
        if self.takeover_n is None:
            self.takeover_n = history.n
        return self._tuned

    def _score_new(self, history: History) -> None:
        keys = [code_key(c) for c in history.codes]
        new = [i for i, k in enumerate(keys) if k not in self._scored]
        if self._tuned is not None and new:
            main = self.prior.main_metric_
            codes = history.codes[new]
            p = np.asarray(self.prior.predict(codes, as_dict=True)[main], dtype=np.float64)
            t = np.asarray(self._tuned.predict(codes, as_dict=True)[main], dtype=np.float64)
            y = history.scores[new, 0].tolist()
            self._evidence += zip(p.tolist(), t.tolist(), y, strict=True)
        self._scored.update(keys[i] for i in new)
