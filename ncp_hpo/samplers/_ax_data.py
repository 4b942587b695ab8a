"""Reading an Ax experiment for the nodes: objectives and outcome constraints of the
optimization config as signed terms, the latest mean of each metric, and random values of
parameters outside the code space."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from ax.core.parameter import ChoiceParameter, FixedParameter, RangeParameter
from ax.exceptions.core import UnsupportedError

from ncp_hpo.samplers._private_apis import ax_objective_groups

if TYPE_CHECKING:
    from ax.core.data import Data
    from ax.core.optimization_config import OptimizationConfig

__all__ = [
    "Constraint",
    "Terms",
    "ax_distributions",
    "combine",
    "constraint_terms",
    "constraint_value",
    "draw",
    "latest_means",
    "objective_terms",
]

_LOG = logging.getLogger("ncp_hpo.samplers._ax")


def ax_distributions(search_space: Any) -> dict[str, Any]:
    """An Ax search space's non-fixed parameters as Optuna distributions, in its order:
    ranges as ``IntDistribution``/``FloatDistribution`` (``log_scale`` kept), choices as
    ``CategoricalDistribution`` (an ordered numeric choice too: its values one-hot)."""
    from ax.core.parameter import ParameterType
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in search_space.parameters.items():
        if isinstance(p, FixedParameter):
            continue
        if isinstance(p, RangeParameter):
            if getattr(p, "logit_scale", False):
                raise UnsupportedError(f"parameter {name!r}: logit-scaled ranges are not supported")
            if p.parameter_type == ParameterType.INT:
                out[name] = IntDistribution(int(p.lower), int(p.upper), log=p.log_scale)
            else:
                out[name] = FloatDistribution(float(p.lower), float(p.upper), log=p.log_scale)
        elif isinstance(p, ChoiceParameter):
            out[name] = CategoricalDistribution(list(p.values))
        else:
            raise UnsupportedError(
                f"parameter {name!r} of type {type(p).__name__} is not supported"
            )
    return out


def draw(p: Any, rng: np.random.Generator) -> Any:
    """A random value of one Ax parameter (native Python type)."""
    if isinstance(p, FixedParameter):
        return p.value
    if isinstance(p, ChoiceParameter):
        return p.values[int(rng.integers(len(p.values)))]
    if isinstance(p, RangeParameter):
        lo, hi = float(p.lower), float(p.upper)
        if p.parameter_type.name == "INT":
            return int(rng.integers(int(lo), int(hi) + 1))
        if p.log_scale:
            return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        return float(rng.uniform(lo, hi))
    raise UnsupportedError(f"cannot fill parameter {p.name!r} of type {type(p).__name__}")


# -- reading the optimization config and the data ---------------------------------------------
Terms = list[tuple[str, float]]  # (metric signature, weight)
Constraint = tuple[Terms, bool, float]  # (terms, is upper bound, bound)


def objective_terms(opt: OptimizationConfig) -> tuple[list[Terms], tuple[str, ...]]:
    """Per objective: its (signature, weight) terms to maximise, and its direction.

    Ax 1.3 objectives are expressions (``"acc, -flops"``, ``"2*a + b"``); the weights are
    signed so that the expression is maximised. A single-metric objective with a negative
    weight is reported as "minimize" (its score is still the signed value).
    """
    objective = opt.objective
    mapping = objective.metric_name_to_signature
    groups: list[list[tuple[str, float]]]
    parsed = ax_objective_groups(objective)  # Ax's own per-sub-objective split
    if parsed is not None:
        groups = parsed
    elif objective.is_multi_objective:
        groups = [
            [(n, w)] for n, w in zip(objective.metric_names, _weights(objective), strict=True)
        ]
    else:
        groups = [list(zip(objective.metric_names, _weights(objective), strict=True))]
    terms = [[(mapping.get(n, n), float(w)) for n, w in g] for g in groups]
    directions = tuple("minimize" if len(t) == 1 and t[0][1] < 0 else "maximize" for t in terms)
    return terms, directions


def _weights(objective: Any) -> list[float]:
    return [float(w) for _, w in objective.metric_weights]


def constraint_terms(opt: OptimizationConfig) -> list[tuple[str, Constraint]]:
    """Outcome constraints as ``(expression, (terms, is_upper_bound, bound))``.

    Relative constraints (``"... <= 0.95 * baseline"``) need the status quo's values and
    are skipped with a warning. Multi-objective thresholds are not constraints.
    """
    out = []
    for c in opt.outcome_constraints:
        if c.relative:
            _LOG.warning("relative outcome constraint %s is ignored by the node", c)
            continue
        terms = [(s, float(w)) for s, w in c.metric_weights]
        out.append((c.expression, (terms, c.op.name == "LEQ", float(c.bound))))
    return out


def latest_means(data: Data) -> dict[tuple[int, str], dict[str, float]]:
    """``(trial index, arm name) -> {metric signature: mean}`` (the last row wins)."""
    df = data.df
    out: dict[tuple[int, str], dict[str, float]] = {}
    if df.empty:
        return out
    key = "metric_signature" if "metric_signature" in df.columns else "metric_name"
    for t, a, m, mean in zip(df["trial_index"], df["arm_name"], df[key], df["mean"], strict=True):
        out.setdefault((int(t), str(a)), {})[str(m)] = float(mean)
    return out


def combine(terms: Terms, got: Mapping[str, float]) -> float:
    if any(s not in got for s, _ in terms):
        return float("nan")
    return float(sum(w * got[s] for s, w in terms))


def constraint_value(constraint: Constraint, got: Mapping[str, float]) -> float:
    """Signed constraint value, feasible when ``<= 0`` (as History's constraint columns)."""
    terms, upper, bound = constraint
    value = combine(terms, got)
    if not np.isfinite(value):
        return 0.0  # unmeasured constraint: no evidence of a violation (Optuna's None)
    return value - bound if upper else bound - value
