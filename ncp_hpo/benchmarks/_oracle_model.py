"""The surrogate oracle's model description: features, configuration and reports.

* :func:`oracle_features` (45 columns): the 27 code integers, ``log`` of the exact FLOPs
  (G, the table's thop convention) and parameters (M), and per stage ``s``: total residual
  units ``b_s * sum(n_s)``, width-weighted units ``b_s * sum(n_s * c_s)``, and the mean and
  minimum branch width.
* :class:`OracleConfig`: the ensemble's hyper-parameters (all part of the cache key).
* :class:`Fidelity`: the held-out fidelity of the main metric (k-fold CV).
* :class:`OracleResult`: one evaluated code.

The oracle itself (fit, cache, evaluate) is :mod:`ncp_hpo.benchmarks._oracle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo.exceptions import UnsupportedSettingError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = [
    "COST_METRICS",
    "FEATURE_NAMES",
    "Fidelity",
    "OracleConfig",
    "OracleResult",
    "features_and_costs",
    "modelled_metrics",
    "oracle_features",
]

COST_METRICS: tuple[str, ...] = ("flops", "params")
"""Metrics computed in closed form, never modelled."""

Source = Literal["table", "surrogate"]


# -- features ---------------------------------------------------------------------------
def _feature_names() -> tuple[str, ...]:
    from ncp_hpo.spaces.multires import DIM_NAMES, NUM_STAGES

    names = [*DIM_NAMES, "log_flops", "log_params"]
    for s in range(1, NUM_STAGES + 1):
        names += [f"units{s}", f"wunits{s}", f"cmean{s}", f"cmin{s}"]
    return tuple(names)


FEATURE_NAMES: tuple[str, ...] = _feature_names()
"""Column names of :func:`oracle_features` (45)."""


def oracle_features(codes: Any) -> np.ndarray:
    """Features of valid multi-resolution codes (``27`` or ``n x 27``) -> float64 ``n x 45``.

    See the module docstring; the cost columns are the exact table ``flops``/``params``.

    Raises:
        InvalidCodeError: a code is not valid.
    """
    return features_and_costs(codes)[0]


def features_and_costs(codes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features n x 45, flops n [G, thop], params n [M])`` of valid codes."""
    from ncp_hpo.spaces.cost import flops, params
    from ncp_hpo.spaces.multires import STAGE_INDEX, MultiResolutionSpace

    x = np.atleast_2d(MultiResolutionSpace().validate(codes))
    f = flops(x, convention="thop").astype(np.float64) / 1e9
    p = params(x).astype(np.float64) / 1e6
    cols = [x.astype(np.float64), np.log(f)[:, None], np.log(p)[:, None]]
    for b, ns, cs in STAGE_INDEX:
        n, c, blocks = x[:, ns], x[:, cs], x[:, b]
        cols += [
            (blocks * n.sum(1))[:, None],
            (blocks * (n * c).sum(1))[:, None],
            c.mean(1, keepdims=True),
            c.min(1, keepdims=True),
        ]
    return np.hstack(cols).astype(np.float64), f, p


# -- configuration and reports ----------------------------------------------------------
@dataclass(frozen=True)
class OracleConfig:
    """Hyper-parameters of the surrogate ensemble (all part of the cache key).

    Attributes:
        members: boosted models per metric; their spread is the returned ``std``
            (``members=1`` gives ``std = 0``).
        subsample: fraction of the table rows each member is fitted on.
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization:
            passed to :class:`~sklearn.ensemble.HistGradientBoostingRegressor` (no early
            stopping).
        cv_folds: folds of the fidelity cross-validation.
        metrics: task metrics to model; ``None``: every table metric except ``flops`` and
            ``params`` (the main metric is always modelled).
    """

    members: int = 5
    subsample: float = 0.8
    max_iter: int = 200
    learning_rate: float = 0.08
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    cv_folds: int = 5
    metrics: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        ints = {
            "members": (self.members, 1),
            "max_iter": (self.max_iter, 1),
            "max_leaf_nodes": (self.max_leaf_nodes, 2),
            "min_samples_leaf": (self.min_samples_leaf, 1),
            "cv_folds": (self.cv_folds, 2),
        }
        for name, (v, lo) in ints.items():
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
                raise ValueError(f"OracleConfig.{name} must be an integer >= {lo}, got {v!r}")
        if not (0.0 < float(self.subsample) <= 1.0):
            raise ValueError(f"OracleConfig.subsample must be in (0, 1], got {self.subsample!r}")
        if not (float(self.learning_rate) > 0.0 and np.isfinite(self.learning_rate)):
            raise ValueError(f"OracleConfig.learning_rate must be > 0, got {self.learning_rate!r}")
        if not (float(self.l2_regularization) >= 0.0 and np.isfinite(self.l2_regularization)):
            raise ValueError(
                f"OracleConfig.l2_regularization must be >= 0, got {self.l2_regularization!r}"
            )
        if self.metrics is not None:
            if isinstance(self.metrics, str) or not all(isinstance(m, str) for m in self.metrics):
                raise ValueError(
                    f"OracleConfig.metrics must be a tuple of names, got {self.metrics!r}"
                )
            object.__setattr__(self, "metrics", tuple(self.metrics))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the cache key hashes it)."""
        d = asdict(self)
        d["metrics"] = list(self.metrics) if self.metrics is not None else None
        return d


@dataclass(frozen=True)
class Fidelity:
    """Held-out fidelity of the oracle's main-metric predictions (k-fold CV).

    Attributes:
        metric: the main metric.
        spearman: Spearman's rho between out-of-fold predictions and table values.
        kendall: Kendall's tau-b, same pairs.
        mae: mean absolute error (metric units, e.g. percentage points).
        rmse: root mean squared error.
        folds: number of CV folds; rows: table rows.
        spread_mean: mean out-of-fold ensemble ``std``.
        spread_error_spearman: Spearman's rho between ``std`` and ``|error|`` out of fold
            (how well the spread flags large errors; ``nan`` with one member).
    """

    metric: str
    spearman: float
    kendall: float
    mae: float
    rmse: float
    folds: int
    rows: int
    spread_mean: float
    spread_error_spearman: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``nan`` becomes ``None``)."""
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fidelity:
        kw = {f.name: d[f.name] for f in fields(cls)}
        for f in fields(cls):
            if f.type in ("float", float):
                kw[f.name] = float("nan") if kw[f.name] is None else float(kw[f.name])
        return cls(**kw)

    def summary(self) -> str:
        """One line, e.g. ``Spearman 0.912, Kendall 0.761, MAE 0.80 (5-fold CV, 2507 rows)``."""
        return (
            f"Spearman {self.spearman:.3f}, Kendall {self.kendall:.3f}, MAE {self.mae:.3g}, "
            f"RMSE {self.rmse:.3g} on {self.metric} ({self.folds}-fold CV, {self.rows} rows)"
        )


@dataclass(frozen=True)
class OracleResult:
    """One evaluated code.

    Attributes:
        setting: benchmark setting name.
        code: the evaluated code (native ints).
        source: ``"table"`` (measured value) or ``"surrogate"`` (predicted).
        main_metric: name of the main metric.
        metrics: every metric's value; ``flops``/``params`` are exact for both sources.
        stds: ensemble spread per metric (``0.0`` for table values and cost metrics).
        fidelity: the oracle's held-out fidelity (attached to table hits too, since it
            describes the oracle that produced the result); ``None`` without an oracle.
        table_index: row of the code in the table, ``None`` when not in it.
    """

    setting: str
    code: tuple[int, ...]
    source: Source
    main_metric: str
    metrics: Mapping[str, float]
    stds: Mapping[str, float]
    fidelity: Fidelity | None = None
    table_index: int | None = None

    @property
    def value(self) -> float:
        """The main metric's value."""
        return self.metrics[self.main_metric]

    @property
    def std(self) -> float:
        """The main metric's spread (``0.0`` for a table hit)."""
        return self.stds.get(self.main_metric, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "setting": self.setting,
            "code": list(self.code),
            "source": self.source,
            "main_metric": self.main_metric,
            "value": self.value,
            "std": self.std,
            "metrics": dict(self.metrics),
            "stds": dict(self.stds),
            "fidelity": self.fidelity.to_dict() if self.fidelity is not None else None,
            "table_index": self.table_index,
        }


def modelled_metrics(table: BenchmarkTable, config: OracleConfig) -> tuple[str, ...]:
    """The metrics the oracle of ``table`` models under ``config``, main metric first.

    Raises:
        UnsupportedSettingError: not a NAS-Bench-MR table.
        ValueError: ``config.metrics`` names a metric that is not a task metric of ``table``.
    """
    from ncp_hpo.spaces.multires import MultiResolutionSpace

    if not isinstance(table.space, MultiResolutionSpace):
        raise UnsupportedSettingError(
            f"{table.name}: the surrogate oracle covers NAS-Bench-MR settings; this table "
            f"({type(table.space).__name__}) is evaluated exactly instead (NB201Objective)"
        )
    tasks = [m for m in table.metrics if m not in COST_METRICS]
    wanted = list(config.metrics) if config.metrics is not None else tasks
    unknown = [m for m in wanted if m not in tasks]
    if unknown:
        raise ValueError(
            f"OracleConfig.metrics: {', '.join(unknown)} not task metrics of {table.name}; "
            f"available: {', '.join(tasks)}"
        )
    rest = [m for m in wanted if m != table.main_metric]
    return (table.main_metric, *dict.fromkeys(rest))
