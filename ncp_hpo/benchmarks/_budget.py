"""A FLOPs budget on a benchmark objective: accuracy subject to ``FLOPs <= B``.

The budget is counted with the space's exact closed-form FLOPs (``space.flops``, the count
the NCP samplers know), in the unit of the table's ``flops`` column (MFLOPs for
NAS-Bench-201, GFLOPs at 128x128 for NAS-Bench-MR). A percentile form ``"p25"`` is the
25th percentile of that count over the table's codes. On NAS-Bench-201 the count equals the
file's ``Flops`` column on 15,475 of the 15,625 cells; the other 150 differ by one
convolution upstream (:mod:`ncp_hpo.spaces.nb201`) and are judged by the exact count.

A trial whose code is over the budget is never evaluated: :func:`refuse_over_budget` records
``fail_reason = "over compute budget"`` (:func:`ncp_hpo.trainers.is_over_budget`), its
relative excess ``budget_violation`` and the Optuna constraint ``compute_budget`` (so TPE,
GP and NSGA-II rank it infeasible), and raises :class:`optuna.TrialPruned`. An evaluated
trial carries its own constraint value (``<= 0``), so GP's constraint model learns the cost
from every trial it fits.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.spaces.budget import OVER_BUDGET, BudgetedSpace, cap_flops

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = [
    "CONSTRAINT",
    "VIOLATION_ATTR",
    "budgeted_space",
    "check_max_flops",
    "flops_unit",
    "refuse_over_budget",
    "resolve_max_flops",
]

CONSTRAINT = "compute_budget"
"""The Optuna constraint of a budgeted trial (``trial.set_constraint``): ``flops / B - 1``."""

VIOLATION_ATTR = "budget_violation"
"""Trial user attribute: ``flops / B - 1`` (``> 0``: refused, never evaluated)."""

_SCALES = {"FLOPs": 1.0, "KFLOPs": 1e-3, "MFLOPs": 1e-6, "GFLOPs": 1e-9, "TFLOPs": 1e-12}
_PERCENTILE = re.compile(r"^[pP](\d+(?:\.\d*)?)$")


def flops_unit(table: BenchmarkTable) -> tuple[float, str]:
    """``(scale, unit)`` of the table's ``flops`` column: ``space.flops(code) * scale`` is in
    ``unit`` (``(1e-6, "MFLOPs")`` for NAS-Bench-201)."""
    unit = str(table.units.get("flops", "FLOPs")).split(" ", 1)[0]
    if unit not in _SCALES:
        raise ValueError(f"{table.name}: unknown FLOPs unit {unit!r} of the table")
    return _SCALES[unit], unit


def check_max_flops(spec: Any, *, name: str = "max_flops") -> float | str:
    """A budget as given: a positive number (the table's unit), or ``"pNN"`` (a percentile
    from 0 to 100 of the table's FLOPs), returned as a float or the normalised ``"pNN"``.

    Raises:
        ValueError: anything else, in one line naming ``name``.
    """
    text = spec.strip() if isinstance(spec, str) else spec
    if isinstance(text, str):
        m = _PERCENTILE.match(text)
        if m:
            q = float(m.group(1))
            if 0 < q <= 100:
                return f"p{q:g}"
        else:
            try:
                text = float(text)
            except ValueError:
                pass
    if isinstance(text, int | float | np.integer | np.floating) and not isinstance(text, bool):
        v = float(text)
        if math.isfinite(v) and v > 0:
            return v
    raise ValueError(
        f"{name} must be a positive number of FLOPs in the table's unit (e.g. 20 for "
        f"20 MFLOPs on nas-bench-201) or a percentile of the table's FLOPs p1..p100 "
        f"(e.g. p25), got {spec!r}"
    )


def table_flops(table: BenchmarkTable) -> np.ndarray:
    """The exact FLOPs of every table code, in the table's unit (``n``)."""
    scale, _ = flops_unit(table)
    return np.asarray(table.space.flops(table.codes), dtype=np.float64) * scale


def resolve_max_flops(table: BenchmarkTable, spec: Any, *, name: str = "max_flops") -> float:
    """The absolute budget of ``spec`` (:func:`check_max_flops`) on ``table``: a percentile
    is taken over :func:`table_flops` (numpy's linear interpolation)."""
    value = check_max_flops(spec, name=name)
    if isinstance(value, float):
        return value
    return float(np.percentile(table_flops(table), float(value[1:])))


def budgeted_space(table: BenchmarkTable, max_flops: float) -> BudgetedSpace:
    """The table's space restricted to the codes within ``max_flops`` (the table's unit).

    Raises:
        BudgetError: a space without closed-form FLOPs, or a budget below its smallest code.
    """
    scale, unit = flops_unit(table)
    return cap_flops(table.space, max_flops, scale=scale, unit=unit)


def refuse_over_budget(trial: Any, space: BudgetedSpace, code: np.ndarray) -> None:
    """Record ``code``'s budget constraint on ``trial``; raise :class:`optuna.TrialPruned`
    (the code is not evaluated) when it is over the budget."""
    violation = float(space.budget.violation(np.asarray(code)[None])[0])
    try:  # Optuna's samplers rank a trial with a positive constraint as infeasible
        trial.set_constraint(CONSTRAINT, violation)
    except (AttributeError, NotImplementedError):  # a FixedTrial has no constraints
        pass
    if violation <= 0:
        return
    import optuna

    flops = float(space.budget.flops(np.asarray(code)[None])[0])
    encode = getattr(space, "encode", None)
    attrs = {
        "fail_reason": OVER_BUDGET,
        VIOLATION_ATTR: violation,
        "code": str(encode(code)) if encode is not None else str(list(code)),
        "flops_exact": flops,
    }
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    raise optuna.TrialPruned(
        f"{OVER_BUDGET}: {flops:.6g} {getattr(space.budget, 'unit', 'FLOPs')} "
        f"(budget {space.budget.describe()}); not evaluated"
    )
