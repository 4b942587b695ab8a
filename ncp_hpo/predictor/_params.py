"""The scikit-learn parameter protocol of :class:`~ncp_hpo.predictor.NeuralPredictor`:
``get_params`` / ``set_params`` / ``repr`` by introspecting ``__init__``, and the checks
``fit`` runs on the stored parameters."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

__all__ = ["ACTIVATIONS", "LOSSES", "ParamsMixin"]

ACTIVATIONS = ("swish", "relu", "tanh")
LOSSES = ("smooth_l1", "mse", "l1")


class ParamsMixin:
    """Constructor arguments stored unchanged as attributes; checked at ``fit``."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as stored."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set constructor arguments (takes effect at the next ``fit``); returns ``self``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(
                    f"invalid parameter {k!r} for {type(self).__name__}; valid parameters: {valid}"
                )
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {
            k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _validate_params(self) -> None:
        _validate(self)


def _validate(est: Any) -> None:
    """Raise ``ValueError`` naming the first constructor argument out of its allowed range."""

    def need(cond: bool, name: str, allowed: str) -> None:
        if not cond:
            raise ValueError(
                f"the {name!r} parameter of {type(est).__name__} must be {allowed}; "
                f"got {getattr(est, name)!r}"
            )

    def pos_int(v: Any) -> bool:
        return bool(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1)

    for name in ("hidden", "head_hidden", "epochs", "batch_size", "n_members"):
        need(pos_int(getattr(est, name)), name, "an int >= 1")
    need(isinstance(est.dropout, int | float) and 0 <= est.dropout < 1, "dropout", "in [0, 1)")
    need(est.activation in ACTIVATIONS, "activation", f"one of {ACTIVATIONS}")
    need(est.loss in LOSSES, "loss", f"one of {LOSSES}")
    need(isinstance(est.lr, int | float) and est.lr > 0, "lr", "a float > 0")
    need(est.weight_decay >= 0, "weight_decay", "a float >= 0")
    need(0 < est.pct_start < 1, "pct_start", "in (0, 1)")
    need(est.div_factor > 0, "div_factor", "a float > 0")
    need(est.final_div_factor > 0, "final_div_factor", "a float > 0")
    need(
        est.seed is None or bool(isinstance(est.seed, int | np.integer) and est.seed >= 0),
        "seed",
        "None or an int >= 0",
    )
    need(est.n_threads is None or pos_int(est.n_threads), "n_threads", "None or an int >= 1")
