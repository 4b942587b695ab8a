"""The compute budget of real-training studies: the geometry it is counted at, the check
before a trial trains, and the constraint Optuna's samplers learn it from.

A trial whose code exceeds the budget is never trained: :func:`enforce_budget` records
``fail_reason = "over compute budget"`` (:data:`OVER_BUDGET`), its exact cost and its
relative excess (``budget_violation``, > 0) as user attributes and raises
:class:`optuna.TrialPruned`.
A refused trial also carries the Optuna constraint ``compute_budget`` (its violation, set
with ``trial.set_constraint``), so TPE ranks it infeasible and learns to avoid the region;
feasible trials carry none (Optuna counts a trial without constraints as feasible). The
predictor-based samplers and random search never propose such codes: they search a
:class:`~ncp_hpo.spaces.budget.BudgetedSpace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ncp_hpo.spaces.budget import OVER_BUDGET, Budget

__all__ = [
    "OVER_BUDGET",
    "VIOLATION_ATTR",
    "enforce_budget",
    "is_over_budget",
    "training_budget",
]

CONSTRAINT = "compute_budget"
"""Optuna constraint (``trial.set_constraint``) of a refused trial: its violation, > 0."""

VIOLATION_ATTR = "budget_violation"
"""Trial user attribute: relative excess over the budget (``<= 0`` within it)."""


def training_budget(
    task: str,
    *,
    max_flops: float | None,
    max_params: float | None,
    train_options: Mapping[str, Any],
) -> Budget | None:
    """The :class:`Budget` of a study, counted at the geometry it trains at: the input
    size, classes and channels of the dataset that ``train_options`` select."""
    if max_flops is None and max_params is None:
        return None
    from ncp_hpo.trainers.datasets import DEFAULT_DATASET, dataset_info, make_loaders

    name = train_options.get("dataset") or DEFAULT_DATASET.get(task)
    if name is None:
        raise ValueError(f"unknown task {task!r}")
    loader, _ = make_loaders(
        name,
        batch_size=1,
        seed=int(train_options.get("seed", 0)),
        image_size=train_options.get("image_size"),
        train_size=1,
        val_size=1,
        task=task,
        **dict(train_options.get("dataset_options") or {}),
    )
    info = dataset_info(loader)
    if info is None:
        raise ValueError(f"dataset {name!r} carries no task metadata to count the budget at")
    options: dict[str, Any] = {"in_chans": info.in_channels}
    if task == "video" and info.frames is not None:
        options["frames"] = int(info.frames)
    if task == "bev-det":
        options["box_channels"] = int(
            (train_options.get("model_options") or {}).get("box_channels", 6)
        )
    return Budget(
        max_flops=max_flops,
        max_params=max_params,
        input_size=tuple(info.input_size),  # type: ignore[arg-type]
        task=task,
        num_classes=int(info.num_classes),
        options=options,
    )


def enforce_budget(trial: Any, budget: Budget | None, code: Any) -> None:
    """Record the code's exact cost against ``budget`` on ``trial``; raise
    :class:`optuna.TrialPruned` (without training) when it is over the budget."""
    if budget is None:
        return
    vec = np.asarray(code, dtype=np.int64)
    violation = float(budget.violation(vec))
    flops = int(budget.flops(vec))
    n_params = int(budget.params(vec))
    attrs: dict[str, Any] = {
        VIOLATION_ATTR: violation,
        "macs_analytic": flops,
        "params_analytic": n_params,
    }
    if violation > 0:
        attrs["fail_reason"] = OVER_BUDGET
    for k, v in attrs.items():
        try:
            trial.set_user_attr(k, v)
        except Exception:  # a trial without storage (FixedTrial)
            break
    if violation > 0:
        import optuna

        try:  # Optuna's samplers (TPE, GP, ...) rank constrained trials as infeasible
            trial.set_constraint(CONSTRAINT, violation)
        except Exception:  # a trial without storage
            pass
        raise optuna.TrialPruned(
            f"{OVER_BUDGET}: {flops / 1e9:.4g} GFLOPs, {n_params / 1e6:.4g} M params "
            f"(budget {budget.describe()}); not trained"
        )


def is_over_budget(trial: Any) -> bool:
    """Whether a (frozen) trial was refused for its budget."""
    return bool(trial.user_attrs.get("fail_reason") == OVER_BUDGET)
