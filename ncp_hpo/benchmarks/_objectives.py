"""Optuna-ready benchmark objectives (NAS-Bench-MR via the surrogate oracle, NAS-Bench-201 exact).

>>> import optuna                                                        # doctest: +SKIP
>>> obj = BenchmarkObjective("seg", objective="metric+flops")            # doctest: +SKIP
>>> study = optuna.create_study(directions=obj.directions)               # doctest: +SKIP
>>> study.optimize(obj, n_trials=100)                                    # doctest: +SKIP

Modes
-----
``"surrogate"`` (NAS-Bench-MR default)
    A code in the table gets its measured values (``source="table"``); any other code gets
    the :class:`~ncp_hpo.benchmarks.SurrogateOracle`'s prediction (``source="surrogate"``)
    with the ensemble spread and the oracle's cross-validated fidelity.
``"table"``
    Surrogate-free: the proposal is snapped to the nearest table code not yet used in this
    study (:class:`~ncp_hpo.benchmarks.TableSnapper`) and that code's measured values are
    returned. The sampler's trial keeps its proposed parameters; the snapped code is in the
    user attributes. Used rows are read back from the study's trials (user attribute
    ``snapped_index``), so the tracker is per study and survives restarts; two workers
    evaluating at the same instant may snap to the same row. Without a study (an
    :class:`optuna.trial.FixedTrial`, or :meth:`BenchmarkObjective.evaluate`) the objective's
    own tracker is used; :meth:`BenchmarkObjective.reset` clears it.
``"exact"`` (NAS-Bench-201 default)
    The table holds every code of the space; values are looked up.

Objective values
----------------
``objective="metric"``
    One value: the main metric (``top1``, ``mIoU``, ``Acc`` ...), to maximise.
``objective="metric+flops"`` with ``flops_weight=None`` (the default)
    Two values ``(metric, flops)``, directions ``["maximize", "minimize"]``; ``flops`` in the
    table's unit (GFLOPs at 128x128 for NAS-Bench-MR, MFLOPs for NAS-Bench-201).
``objective="metric+params"``
    Two values ``(metric, params)``, directions ``["maximize", "minimize"]``: the table's
    parameter count in millions (batch-norm weights included). On NAS-Bench-201 every
    cell's parameter count rises with its FLOPs (both are set by the numbers of 3x3 and
    1x1 convolutions), so the two trade-offs share one Pareto set of cells; on
    NAS-Bench-MR they differ (a branch at a low resolution costs parameters, not FLOPs).
``objective="metric+flops"`` with ``flops_weight=λ`` (a float >= 0)
    One value to maximise: ``metric - λ * (flops - μ) / σ``, where ``μ`` and ``σ`` are the
    mean and standard deviation (``ddof=0``) of the table's ``flops`` column
    (:attr:`BenchmarkObjective.flops_mean`, :attr:`BenchmarkObjective.flops_std`). λ is
    therefore in metric units per standard deviation of FLOPs: with ``λ=0.5`` a network one
    FLOPs-std above the table mean must be 0.5 metric points better to tie with one at it.

User attributes set on every trial
----------------------------------
``source`` (``"table"``/``"surrogate"``), ``code`` (the evaluated code as a string: in table
mode the snapped code), ``std`` (ensemble spread of the main metric, 0 for table values),
``flops``, ``params``, ``metrics`` (every metric's value, the main one included),
``table_index`` (row of the evaluated code or ``None``), ``table_value`` (the measured main
metric, only when the evaluated code is in the table), ``fidelity`` (the oracle's
cross-validated Spearman/Kendall/MAE..., surrogate mode only), and in table mode
``snapped_index`` and ``snap_distance`` (standardised distance from the proposal). Each
attribute is one write to the storage, so the list is kept short.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, MutableSet
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo.benchmarks._oracle import SurrogateOracle, load_oracle
from ncp_hpo.benchmarks._oracle_model import OracleConfig, OracleResult
from ncp_hpo.benchmarks._snapper import TableSnapper
from ncp_hpo.exceptions import DataError

if TYPE_CHECKING:
    import optuna

    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = [
    "OBJECTIVES",
    "BenchmarkObjective",
    "NB201Objective",
    "check_flops_weight",
    "renamed_lam",
    "scalarize",
]

Mode = Literal["surrogate", "table", "exact"]
ObjectiveKind = Literal["metric", "metric+flops", "metric+params"]

_MODES = ("surrogate", "table", "exact")
OBJECTIVES = ("metric", "metric+flops", "metric+params")
"""The objective kinds of :class:`BenchmarkObjective` (and of ``compare --objective``)."""
# the second objective of each two-objective kind: a column of the table, minimised
_COST_OF = {"metric+flops": "flops", "metric+params": "params"}


class BenchmarkObjective:
    """An Optuna objective (and a plain evaluator) over one benchmark setting.

    Args:
        setting: a setting name (``"seg"``, ``"cls-50-1000"``, ``"nas-bench-201"`` ...) or a
            :class:`~ncp_hpo.benchmarks.BenchmarkTable`.
        mode: ``"surrogate"``, ``"table"`` or ``"exact"`` (see the module docstring);
            ``None`` picks ``"exact"`` for a complete table, else ``"surrogate"``.
        objective: ``"metric"``, ``"metric+flops"`` or ``"metric+params"``.
        flops_weight: with ``"metric+flops"``, scalarise into one objective with this weight
            on the FLOPs z-score (see the module docstring); ``None`` (the default) keeps two
            objectives. Not a sampler's ``lam``: this changes the values the study sees.
        data_dir: where to look for the table first (as ``load_benchmark``).
        max_flops: a FLOPs budget: maximise subject to the code's exact FLOPs (the table's
            unit) ``<= max_flops``; a number, or ``"p25"`` (a percentile of the table's
            FLOPs; :mod:`ncp_hpo.benchmarks._budget`). :attr:`space` is then restricted to
            it and a code over it is refused unevaluated (a PRUNED trial).
        oracle: a ready :class:`~ncp_hpo.benchmarks.SurrogateOracle` for this setting
            (surrogate mode); by default one is loaded with :func:`load_oracle`.
        oracle_config, seed, cache: passed to :func:`load_oracle` when ``oracle`` is None.
        lam: deprecated old name of ``flops_weight`` (a :class:`FutureWarning`; removed in
            a later release).

    Raises:
        ValueError: unknown ``mode``/``objective``, a bad ``flops_weight``, or contradictory
            arguments (``flops_weight`` with ``objective="metric"``, ``oracle`` outside
            surrogate mode, an oracle of another setting, ``"exact"`` on a partial table).
        TypeError: both ``flops_weight`` and its old name ``lam``.
    """

    def __init__(
        self,
        setting: str | BenchmarkTable,
        *,
        mode: Mode | None = None,
        objective: ObjectiveKind = "metric",
        flops_weight: float | None = None,
        data_dir: str | Path | None = None,
        max_flops: float | str | None = None,
        oracle: SurrogateOracle | None = None,
        oracle_config: OracleConfig | None = None,
        seed: int = 0,
        cache: bool | str | Path = True,
        lam: float | None = None,
    ) -> None:
        flops_weight = renamed_lam(flops_weight, lam, type(self).__name__)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES} or None, got {mode!r}")
        flops_weight = check_flops_weight(flops_weight, objective)
        if oracle is not None:
            table = oracle.table
            name = setting if isinstance(setting, str) else setting.name
            if name != table.name:
                raise ValueError(f"oracle is for setting {table.name!r}, not {name!r}")
        elif isinstance(setting, str):
            from ncp_hpo.benchmarks import load_benchmark

            table = load_benchmark(setting, data_dir)
        else:
            table = setting
        complete = table.complete
        mode = mode or ("exact" if complete else "surrogate")
        if mode == "exact" and not complete:
            raise ValueError(
                f"mode='exact' needs a complete table; {table.name} holds {len(table)} codes "
                "of its space: use mode='surrogate' or mode='table'"
            )
        if oracle is not None and mode != "surrogate":
            raise ValueError(f"oracle is only used with mode='surrogate', got mode={mode!r}")

        self.table = table
        self.mode: Mode = mode
        self.objective: ObjectiveKind = objective
        self.flops_weight = flops_weight
        self.oracle: SurrogateOracle | None = None
        self.snapper: TableSnapper | None = None
        if mode == "surrogate" and not complete:
            self.oracle = oracle or load_oracle(table, config=oracle_config, seed=seed, cache=cache)
        elif mode == "table":
            self.snapper = TableSnapper(table)
        if mode == "surrogate" and complete:
            self.mode = "exact"  # nothing to predict: every code is in the table
        fl = np.asarray(table.metrics["flops"], dtype=np.float64)
        self.flops_mean = float(fl.mean())
        self.flops_std = float(fl.std()) or 1.0
        self._used: set[int] = set()
        self.max_flops: float | None = None
        self.max_flops_spec: float | str | None = None
        self._space: Any = table.space
        if max_flops is not None:
            self._set_budget(max_flops)

    def _set_budget(self, spec: float | str) -> None:
        from ncp_hpo.benchmarks._budget import budgeted_space, check_max_flops, resolve_max_flops

        if self.n_objectives != 1:
            raise ValueError(
                "max_flops maximises the metric within a FLOPs budget: use objective='metric' "
                "(or 'metric+flops' with a flops_weight), not two objectives"
            )
        if self.mode == "table":
            raise ValueError("max_flops needs mode 'exact' or 'surrogate' (table mode snaps)")
        self.max_flops_spec = check_max_flops(spec)
        self.max_flops = resolve_max_flops(self.table, spec)
        self._space = budgeted_space(self.table, self.max_flops)

    def __repr__(self) -> str:
        w = self.flops_weight
        weight = f", flops_weight={w}" if w is not None else ""
        if self.max_flops is not None:
            weight += f", max_flops={self.max_flops:g}"
        return (
            f"{type(self).__name__}({self.setting!r}, mode={self.mode!r}, "
            f"objective={self.objective!r}{weight})"
        )

    # -- description ----------------------------------------------------------------------
    @property
    def lam(self) -> float | None:
        """Deprecated old name of :attr:`flops_weight`."""
        warnings.warn(
            f"{type(self).__name__}.lam is deprecated: use .flops_weight",
            FutureWarning,
            stacklevel=2,
        )
        return self.flops_weight

    @property
    def setting(self) -> str:
        return self.table.name

    @property
    def space(self) -> Any:
        """The code space (:class:`~ncp_hpo.spaces.CodeSpace`) the objective suggests in;
        with ``max_flops``, the budgeted view of the table's space (samplers given it
        propose only within the budget)."""
        return self._space

    @property
    def main_metric(self) -> str:
        return self.table.main_metric

    @property
    def cost(self) -> str | None:
        """The table column of the second objective (``"flops"``, ``"params"``), minimised;
        ``None`` for one objective (``"metric"``, or FLOPs scalarised by ``flops_weight``)."""
        return _COST_OF.get(self.objective) if self.flops_weight is None else None

    @property
    def n_objectives(self) -> int:
        return 1 if self.cost is None else 2

    @property
    def directions(self) -> list[str]:
        """For ``optuna.create_study(directions=...)``."""
        return ["maximize", "minimize"] if self.n_objectives == 2 else ["maximize"]

    @property
    def objective_names(self) -> list[str]:
        """Names of the returned values (e.g. for ``optuna_dashboard.set_objective_names``)."""
        m = self.main_metric
        if self.cost is not None:
            return [m, self.cost]
        if self.flops_weight is not None:
            return [f"{m} - {self.flops_weight:g}*z(flops)"]
        return [m]

    # -- evaluation -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the rows used by table-mode evaluations outside a study."""
        self._used.clear()

    def objective_values(self, metrics: Mapping[str, float]) -> float | tuple[float, float]:
        """What :meth:`__call__` returns for a result's ``metrics``."""
        value = float(metrics[self.main_metric])
        if self.cost is not None:
            return value, float(metrics[self.cost])
        if self.flops_weight is None:
            return value
        flops = float(metrics["flops"])
        return float(
            scalarize(
                value, flops, weight=self.flops_weight, mean=self.flops_mean, std=self.flops_std
            )
        )

    def evaluate(self, code: Any, *, used: MutableSet[int] | None = None) -> dict[str, Any]:
        """Evaluate one code without Optuna.

        Args:
            code: an array of the space's integers, its string form, or a parameter dict
                as ``space.to_params`` / Ax produce.
            used: table mode only: the caller's set of used rows (updated); default the
                objective's own tracker.

        Returns:
            A JSON-ready dict: ``setting``, ``mode``, ``code`` (string), ``code_vector``,
            ``source``, ``value``, ``std``, ``metrics``, ``stds``, ``fidelity`` (dict or
            None), ``table_index``, ``objective`` (float, or ``[metric, cost]``) and in
            table mode ``proposed_code``, ``snapped_index``, ``snap_distance``.

        Raises:
            InvalidCodeError: not a valid code (NaN, off-grid, wrong shape, unknown op ...).
        """
        if isinstance(code, Mapping):
            code = self.space.from_params(code)
        vec = self.table.as_code(code)
        extra: dict[str, Any] = {}
        if self.mode == "table":
            assert self.snapper is not None
            row, dist = self.snapper.snap(vec, self._used if used is None else used)
            extra = {
                "proposed_code": self._encode(vec),
                "snapped_index": row,
                "snap_distance": dist,
            }
            result = _table_result(self.table, row)
        elif self.oracle is not None:
            result = self.oracle.evaluate(vec)
        else:
            row_or_none = self.table.index(vec)
            if row_or_none is None:  # pragma: no cover - complete tables hold every code
                raise DataError(f"{self.setting}: code {self._encode(vec)} missing from the table")
            result = _table_result(self.table, row_or_none)
        values = self.objective_values(result.metrics)
        out = {
            "setting": self.setting,
            "mode": self.mode,
            "code": self._encode(np.asarray(result.code)),
            "code_vector": list(result.code),
            **{k: v for k, v in result.to_dict().items() if k not in ("setting", "code")},
            "objective": list(values) if isinstance(values, tuple) else values,
        }
        out.update(extra)
        return out

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, float]:
        """Suggest a code on ``trial``, evaluate it, record user attributes, return values."""
        code = self.space.suggest(trial)
        if self.max_flops is not None:
            from ncp_hpo.benchmarks._budget import refuse_over_budget

            refuse_over_budget(trial, self._space, code)  # TrialPruned, unevaluated
        used = self._study_used(trial) if self.mode == "table" else None
        res = self.evaluate(code, used=used)
        metrics = res["metrics"]
        attrs: dict[str, Any] = {
            "source": res["source"],
            "code": res["code"],
            "std": res["std"],
            "flops": metrics["flops"],
            "params": metrics["params"],
            "metrics": metrics,
            "table_index": res["table_index"],
        }
        if res["source"] == "table":
            attrs["table_value"] = res["value"]
        if self.mode == "surrogate":
            attrs["fidelity"] = res["fidelity"]
        if self.mode == "table":
            attrs |= {"snapped_index": res["snapped_index"], "snap_distance": res["snap_distance"]}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        values = res["objective"]
        return (float(values[0]), float(values[1])) if isinstance(values, list) else values

    # -- helpers --------------------------------------------------------------------------
    def _encode(self, vec: np.ndarray) -> str:
        encode = getattr(self.space, "encode", None)
        if encode is None:  # pragma: no cover - both spaces have a string form
            return "_".join(str(int(v)) for v in vec)
        return str(encode(vec))

    def _study_used(self, trial: Any) -> MutableSet[int]:
        """Rows snapped by the other trials of ``trial``'s study (the own tracker without one)."""
        study = getattr(trial, "study", None)
        if study is None:
            return self._used
        used: set[int] = set()
        for t in study.get_trials(deepcopy=False):
            row = t.user_attrs.get("snapped_index")
            if row is not None and t.number != trial.number:
                used.add(int(row))
        return used


def _table_result(table: BenchmarkTable, row: int) -> OracleResult:
    metrics = {k: float(v[row]) for k, v in table.metrics.items()}
    return OracleResult(
        setting=table.name,
        code=tuple(int(v) for v in table.codes[row]),
        source="table",
        main_metric=table.main_metric,
        metrics=MappingProxyType(metrics),
        stds=MappingProxyType(dict.fromkeys(metrics, 0.0)),
        fidelity=None,
        table_index=row,
    )


class NB201Objective(BenchmarkObjective):
    """NAS-Bench-201 (ImageNet16-120 ``Acc``), exact: the table holds all 15,625 cells.

    ``objective="metric+flops"`` returns ``(Acc, flops)`` with the file's FLOPs in MFLOPs
    (``flops_weight`` scalarises as in :class:`BenchmarkObjective`). ``mode="table"`` snaps
    to unused cells instead (no cell evaluated twice per study).
    """

    def __init__(
        self,
        *,
        mode: Literal["exact", "table"] = "exact",
        objective: ObjectiveKind = "metric",
        flops_weight: float | None = None,
        data_dir: str | Path | None = None,
        lam: float | None = None,
    ) -> None:
        if mode not in ("exact", "table"):
            raise ValueError(f"NB201Objective mode must be 'exact' or 'table', got {mode!r}")
        super().__init__(
            "nas-bench-201",
            mode=mode,
            objective=objective,
            flops_weight=renamed_lam(flops_weight, lam, type(self).__name__),
            data_dir=data_dir,
        )


def scalarize(
    metric: Any, flops: Any, *, weight: float, mean: float = 0.0, std: float = 1.0
) -> Any:
    """``metric - weight x (flops - mean) / std``: one objective from a metric and its FLOPs.

    The benchmark objectives' ``metric+flops`` objective (``mean``/``std`` of the table's
    FLOPs: a z-score) and the paper protocol's NetAdapt score (``mean=0``) are this one
    formula. Works on floats and on NumPy arrays of any (matching) shape.
    """
    return metric - weight * (flops - mean) / std


def check_flops_weight(
    flops_weight: Any, objective: str = "metric+flops", *, name: str = "flops_weight"
) -> float | None:
    """``flops_weight`` as a float (``None`` stays ``None``: two objectives, no scalarising).

    The one check of the objective-side FLOPs weight (:class:`BenchmarkObjective`,
    ``CompareConfig``, ``ncp-hpo compare``/``worker --flops-weight`` all call it); ``name``
    is how the caller spells it in the message (``"--flops-weight"`` on the command line).

    Raises:
        ValueError: not a finite number >= 0, or given with an ``objective`` other than
            ``"metric+flops"``.
    """
    if flops_weight is None:
        return None
    if isinstance(flops_weight, bool) or not isinstance(
        flops_weight, int | float | np.integer | np.floating
    ):
        raise ValueError(f"{name} must be a number >= 0 or None, got {flops_weight!r}")
    if not (np.isfinite(flops_weight) and flops_weight >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {flops_weight!r}")
    if objective != "metric+flops":
        needs = "--objective metric+flops" if name.startswith("--") else "objective='metric+flops'"
        what = (
            "optimises the metric alone"
            if objective == "metric"
            else f"is two objectives, the metric and {_COST_OF.get(objective, objective)}"
        )
        raise ValueError(
            f"{name} scalarises metric and FLOPs: use it with {needs} "
            f"(objective {objective!r} {what})"
        )
    return float(flops_weight)


def renamed_lam(
    flops_weight: float | None, lam: float | None, where: str, *, stacklevel: int = 3
) -> float | None:
    """The objective's FLOPs weight from ``flops_weight=`` or its old name ``lam=``
    (deprecated: a :class:`FutureWarning`; ``lam`` now only names a sampler's FLOPs penalty)."""
    if lam is None:
        return flops_weight
    if flops_weight is not None:
        raise TypeError(f"{where}: pass flops_weight only (lam is its deprecated old name)")
    warnings.warn(
        f"{where}(lam=...) is deprecated: the objective's FLOPs weight is now called "
        "flops_weight (lam names a sampler's FLOPs penalty); lam= will be removed",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return lam
