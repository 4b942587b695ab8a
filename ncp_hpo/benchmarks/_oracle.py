"""Surrogate oracle and table-restricted snapping for NAS-Bench-MR settings.

NAS-Bench-MR holds 2,507 of ~10^23 multi-resolution codes, so a searched code is usually
not in the table. :class:`SurrogateOracle` evaluates a code exactly when the table holds it
and otherwise predicts it with a model of a *different family* from the NCP predictor (an
MLP): an ensemble of gradient-boosted trees (scikit-learn
:class:`~sklearn.ensemble.HistGradientBoostingRegressor`), one ensemble per task metric,
fitted on the whole table. This is NAS-Bench-301's method: every number the oracle produces
carries the oracle's held-out fidelity (:class:`Fidelity`), and ``flops``/``params`` are
always exact (closed form, :mod:`ncp_hpo.spaces.cost`).

Model
-----
* **Features** (:func:`oracle_features`, 45 columns): the 27 code integers, ``log`` of the
  exact FLOPs (G, the table's thop convention) and parameters (M), and per stage ``s``:
  total residual units ``b_s * sum(n_s)``, width-weighted units ``b_s * sum(n_s * c_s)``,
  and the mean and minimum branch width.
* **Ensemble**: ``members`` boosted models per metric, each fitted on its own random
  ``subsample`` of the rows (without replacement). The prediction is the members' mean;
  the members' standard deviation (population std, ``ddof=0``) is returned as ``std``: a
  spread that grows where the members disagree (little or conflicting data), to flag
  extrapolation. It is not a calibrated error bar: :attr:`Fidelity.spread_error_spearman`
  measures how well it ranks the actual out-of-fold errors.
* **Fidelity**: ``cv_folds``-fold cross-validation (shuffled, seeded) of the same ensemble
  on the main metric: Spearman's rho and Kendall's tau-b (:mod:`scipy.stats`), MAE and RMSE
  of the out-of-fold means. Computed once at fit time and stored with the model.
* **Determinism**: every random choice derives from ``seed`` through
  :class:`numpy.random.SeedSequence`; fits run with one OpenMP thread (no oversubscription
  on shared machines, identical trees everywhere).

Cache (no pickle)
-----------------
:func:`load_oracle` keeps fitted oracles in ``<user cache>/oracles/`` (the folder of
:func:`ncp_hpo.benchmarks.cache_dir`, so ``NCP_HPO_CACHE`` moves both). A fitted ensemble is
converted into flat node arrays (feature, threshold, children, leaf value) and written with
``numpy.savez(allow_pickle=False)`` next to a JSON header, so loading never unpickles and
never needs scikit-learn; prediction walks the arrays with vectorised numpy. The file name
holds a key hashing the oracle format version, the table's contents (codes and metric
values), the hyper-parameters and the seed: a changed table or setting fits a new oracle.
Files are written to a temporary file and moved into place with :func:`os.replace`; a file
that fails its checks (truncated, modified, another key) is refused with a warning and
rebuilt.

Table-restricted mode
---------------------
:class:`TableSnapper` maps a proposal to the nearest table code (Euclidean distance after
standardising each code dimension by the table's mean and standard deviation) among the
rows not yet used by the caller's tracker, a surrogate-free second view.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
import zipfile
from collections.abc import Collection, Mapping, MutableSet
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ncp_hpo.exceptions import DataError, InvalidCodeError, NCPError, NCPWarning

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = [
    "COST_METRICS",
    "FEATURE_NAMES",
    "ORACLE_VERSION",
    "Fidelity",
    "OracleCacheWarning",
    "OracleConfig",
    "OracleResult",
    "SurrogateOracle",
    "TableSnapper",
    "UnsupportedSettingError",
    "cached_oracles",
    "load_oracle",
    "oracle_cache_path",
    "oracle_features",
]

ORACLE_VERSION = 1
"""Bumped whenever features, fitting or the file layout change (invalidates caches)."""

ORACLE_DIR = "oracles"
COST_METRICS: tuple[str, ...] = ("flops", "params")
"""Metrics computed in closed form, never modelled."""

Source = Literal["table", "surrogate"]


class UnsupportedSettingError(NCPError, ValueError):
    """The setting has no surrogate oracle (NAS-Bench-201's table is complete)."""


class OracleCacheWarning(NCPWarning):
    """A cached oracle file was unusable and has been rebuilt, or could not be written."""


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
    return _features_and_costs(codes)[0]


def _features_and_costs(codes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


# -- tree ensembles as flat arrays --------------------------------------------------------
_FOREST_ARRAYS = (
    "feature",
    "threshold",
    "left",
    "right",
    "value",
    "roots",
    "tree_group",
    "baseline",
)


@dataclass(frozen=True)
class _Forest:
    """Boosted trees of ``n_groups`` models as flat node arrays.

    Leaves point to themselves with threshold ``+inf``, so a fixed number of ``depth``
    steps takes every sample to its leaf. Trees are ordered by ``tree_group``; a group's
    prediction is its baseline plus the sum of its trees' leaf values.
    """

    feature: np.ndarray  # int32 nodes
    threshold: np.ndarray  # float64 nodes
    left: np.ndarray  # int32 nodes
    right: np.ndarray  # int32 nodes
    value: np.ndarray  # float64 nodes
    roots: np.ndarray  # int32 trees
    tree_group: np.ndarray  # int32 trees, non-decreasing
    baseline: np.ndarray  # float64 groups
    depth: int
    n_features: int
    _starts: np.ndarray = field(init=False, repr=False)
    _child: np.ndarray = field(init=False, repr=False)
    _feature: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_nodes, n_groups = len(self.value), len(self.baseline)
        ok = (
            len(self.feature) == len(self.threshold) == len(self.left) == len(self.right) == n_nodes
            and len(self.roots) == len(self.tree_group) > 0
            and n_groups > 0
            and self.depth >= 0
        )
        if ok:
            ok = bool(
                np.all((self.left >= 0) & (self.left < n_nodes))
                and np.all((self.right >= 0) & (self.right < n_nodes))
                and np.all((self.feature >= 0) & (self.feature < self.n_features))
                and np.all((self.roots >= 0) & (self.roots < n_nodes))
                and np.all(np.diff(self.tree_group) >= 0)
                and np.array_equal(np.unique(self.tree_group), np.arange(n_groups))
                and np.all(np.isfinite(self.value))
                and not np.any(np.isnan(self.threshold))
            )
        if not ok:
            raise DataError("inconsistent tree arrays in the oracle model")
        starts = np.searchsorted(self.tree_group, np.arange(n_groups)).astype(np.intp)
        object.__setattr__(self, "_starts", starts)
        child = np.stack([self.left, self.right], axis=1).ravel().astype(np.intp)
        object.__setattr__(self, "_child", child)
        object.__setattr__(self, "_feature", self.feature.astype(np.intp))

    @property
    def n_groups(self) -> int:
        return len(self.baseline)

    @classmethod
    def from_models(cls, models: list[Any], n_features: int) -> _Forest:
        """Pack fitted ``HistGradientBoostingRegressor`` s (one group each)."""
        feats, thrs, lefts, rights, vals, roots, groups, base = [], [], [], [], [], [], [], []
        offset, depth = 0, 0
        for g, model in enumerate(models):
            base.append(float(np.asarray(model._baseline_prediction).ravel()[0]))
            for it in model._predictors:
                for pred in it:
                    nodes = pred.nodes
                    if np.any(nodes["is_categorical"]):
                        raise NCPError("categorical splits are not supported")  # never fitted
                    leaf = nodes["is_leaf"].astype(bool)
                    own = np.arange(len(nodes), dtype=np.int64) + offset
                    feats.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int32))
                    thrs.append(np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64))
                    lefts.append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
                    rights.append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
                    vals.append(np.where(leaf, nodes["value"], 0.0).astype(np.float64))
                    roots.append(offset)
                    groups.append(g)
                    depth = max(depth, int(nodes["depth"].max()))
                    offset += len(nodes)
        return cls(
            feature=np.concatenate(feats),
            threshold=np.concatenate(thrs),
            left=np.concatenate(lefts).astype(np.int32),
            right=np.concatenate(rights).astype(np.int32),
            value=np.concatenate(vals),
            roots=np.asarray(roots, dtype=np.int32),
            tree_group=np.asarray(groups, dtype=np.int32),
            baseline=np.asarray(base, dtype=np.float64),
            depth=depth,
            n_features=n_features,
        )

    @classmethod
    def concat(cls, forests: list[_Forest]) -> _Forest:
        """One forest whose groups are those of ``forests`` in order."""
        offset, g0 = 0, 0
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _FOREST_ARRAYS}
        for f in forests:
            shifted = {
                "left": f.left + offset,
                "right": f.right + offset,
                "roots": f.roots + offset,
                "tree_group": f.tree_group + g0,
            }
            for k in _FOREST_ARRAYS:
                parts[k].append(shifted.get(k, getattr(f, k)))
            offset += len(f.value)
            g0 += f.n_groups
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        for k in ("feature", "left", "right", "roots", "tree_group"):
            arrays[k] = arrays[k].astype(np.int32)
        return cls(
            **arrays,
            depth=max(f.depth for f in forests),
            n_features=forests[0].n_features,
        )

    def predict(self, x: np.ndarray, *, chunk_cells: int = 1 << 21) -> np.ndarray:
        """Raw predictions of every group: ``n x n_features`` -> ``n x n_groups``."""
        n, n_trees = len(x), len(self.roots)
        out = np.empty((n, self.n_groups), dtype=np.float64)
        step = max(1, chunk_cells // n_trees)
        roots = self.roots.astype(np.intp)
        for lo in range(0, n, step):
            xc = np.ascontiguousarray(x[lo : lo + step], dtype=np.float64)
            m = len(xc)
            # Flat walk: every (sample, tree) pair moves one level per step; ``_child`` holds
            # (left, right) pairs, so the next node is child[2 * node + went_right].
            offsets = np.repeat(np.arange(m, dtype=np.intp) * xc.shape[1], n_trees)
            node = np.tile(roots, m)
            flat = xc.ravel()
            for _ in range(self.depth):
                went_right = flat.take(offsets + self._feature.take(node)) > self.threshold.take(
                    node
                )
                node = self._child.take(2 * node + went_right)
            leaf = self.value.take(node).reshape(m, n_trees)
            out[lo : lo + m] = np.add.reduceat(leaf, self._starts, axis=1) + self.baseline
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in _FOREST_ARRAYS}


# -- fitting ------------------------------------------------------------------------------
def _fit_ensemble(
    x: np.ndarray, y: np.ndarray, config: OracleConfig, seq: np.random.SeedSequence
) -> _Forest:
    """``config.members`` boosted models on random row subsets, packed as one forest."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    n = len(y)
    size = max(2, round(float(config.subsample) * n))
    models = []
    for child in seq.spawn(config.members):
        rng = np.random.default_rng(child)
        rows = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
        model = HistGradientBoostingRegressor(
            max_iter=config.max_iter,
            learning_rate=config.learning_rate,
            max_leaf_nodes=config.max_leaf_nodes,
            min_samples_leaf=config.min_samples_leaf,
            l2_regularization=config.l2_regularization,
            early_stopping=False,
            random_state=int(rng.integers(2**31 - 1)),
        )
        model.fit(x[rows], y[rows])
        models.append(model)
    forest = _Forest.from_models(models, x.shape[1])
    # Our array walk must reproduce scikit-learn's own predictions (guards against a
    # change of its private tree layout).
    ours = forest.predict(x[: min(n, 256)])
    theirs = np.stack([m.predict(x[: min(n, 256)]) for m in models], axis=1)
    if not np.allclose(ours, theirs, rtol=1e-9, atol=1e-9 * (1.0 + np.abs(theirs).max())):
        raise NCPError(
            "packing HistGradientBoostingRegressor trees failed (scikit-learn's tree layout "
            "changed?); max deviation "
            f"{np.abs(ours - theirs).max():.3g}"
        )
    return forest


def _cross_validate(
    x: np.ndarray, y: np.ndarray, config: OracleConfig, seed: int, metric: str
) -> Fidelity:
    from scipy.stats import kendalltau, spearmanr
    from sklearn.model_selection import KFold

    pred = np.empty_like(y)
    spread = np.empty_like(y)
    folds = KFold(config.cv_folds, shuffle=True, random_state=seed).split(x)
    seqs = np.random.SeedSequence([seed, 1]).spawn(config.cv_folds)
    for (tr, te), seq in zip(folds, seqs, strict=True):
        raw = _fit_ensemble(x[tr], y[tr], config, seq).predict(x[te])
        pred[te], spread[te] = raw.mean(1), raw.std(1)
    err = np.abs(pred - y)
    if config.members > 1 and np.ptp(spread) > 0:
        se = float(spearmanr(spread, err).statistic)
    else:
        se = float("nan")
    return Fidelity(
        metric=metric,
        spearman=float(spearmanr(y, pred).statistic),
        kendall=float(kendalltau(y, pred).statistic),
        mae=float(err.mean()),
        rmse=float(np.sqrt(np.mean((pred - y) ** 2))),
        folds=config.cv_folds,
        rows=len(y),
        spread_mean=float(spread.mean()),
        spread_error_spearman=se,
    )


def _table_digest(table: BenchmarkTable) -> str:
    """SHA-256 over the table's name, codes and metric values (what the oracle learns)."""
    h = hashlib.sha256()
    h.update(table.name.encode())
    h.update(np.ascontiguousarray(table.codes, dtype=np.int64).tobytes())
    for k in sorted(table.metrics):
        h.update(k.encode() + b"\0")
        h.update(np.ascontiguousarray(table.metrics[k], dtype=np.float64).tobytes())
    return h.hexdigest()


def _cache_key(
    table: BenchmarkTable, config: OracleConfig, seed: int
) -> tuple[str, dict[str, Any]]:
    key_fields = {
        "oracle_version": ORACLE_VERSION,
        "setting": table.name,
        "data_sha256": _table_digest(table),
        "config": config.to_dict(),
        "seed": int(seed),
    }
    blob = json.dumps(key_fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), key_fields


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


# -- the oracle ---------------------------------------------------------------------------
class SurrogateOracle:
    """Exact table lookup, else a boosted-tree ensemble prediction, for one NAS-Bench-MR table.

    Build one with :func:`load_oracle` (cached) or :meth:`fit` (not cached). See the module
    docstring for the model, its fidelity and the cache.

    Example:
        >>> oracle = load_oracle("seg")                                 # doctest: +SKIP
        >>> r = oracle.evaluate(oracle.table.space.sample(1, seed=0)[0])  # doctest: +SKIP
        >>> r.source, r.value, r.std, r.fidelity.spearman              # doctest: +SKIP
        ('surrogate', 74.9, 0.31, 0.91)

    Attributes:
        table: the :class:`~ncp_hpo.benchmarks.BenchmarkTable` it was fitted on.
        config: its :class:`OracleConfig`; seed: its seed.
        metrics: the modelled metrics, main metric first.
        fidelity: the held-out :class:`Fidelity` of the main metric.
        key: the cache key (hex SHA-256).
        fit_seconds: wall time of the original fit (including cross-validation).
        load_seconds: wall time of reading it from the cache (``None`` if just fitted).
        path: the cache file it was loaded from or saved to (``None`` if neither).
    """

    def __init__(
        self,
        table: BenchmarkTable,
        *,
        forest: _Forest,
        metrics: tuple[str, ...],
        config: OracleConfig,
        seed: int,
        fidelity: Fidelity,
        key: str,
        fit_seconds: float,
        load_seconds: float | None = None,
        path: Path | None = None,
    ) -> None:
        # Internal: use ``load_oracle`` or ``SurrogateOracle.fit``.
        if forest.n_groups != len(metrics) * config.members:
            raise DataError(
                f"oracle model has {forest.n_groups} models, expected "
                f"{len(metrics)} metrics x {config.members} members"
            )
        self.table = table
        self.config = config
        self.seed = seed
        self.metrics = metrics
        self.fidelity = fidelity
        self.key = key
        self.fit_seconds = fit_seconds
        self.load_seconds = load_seconds
        self.path = path
        self._forest = forest

    def __repr__(self) -> str:
        return (
            f"SurrogateOracle(setting={self.setting!r}, metrics={list(self.metrics)}, "
            f"members={self.config.members}, {self.fidelity.summary()})"
        )

    @property
    def setting(self) -> str:
        return self.table.name

    @property
    def main_metric(self) -> str:
        return self.table.main_metric

    # -- construction -------------------------------------------------------------------
    @classmethod
    def fit(
        cls, table: BenchmarkTable, *, config: OracleConfig | None = None, seed: int = 0
    ) -> SurrogateOracle:
        """Fit the oracle on every row of ``table`` and cross-validate its main metric.

        Raises:
            UnsupportedSettingError: ``table`` is not a NAS-Bench-MR (multi-resolution) table.
            ValueError: ``config.metrics`` names a metric the table lacks, or a bad seed.
        """
        from threadpoolctl import threadpool_limits

        config = config or OracleConfig()
        seed = _check_seed(seed)
        metrics = _modelled_metrics(table, config)
        start = time.perf_counter()
        x = oracle_features(table.codes)
        seqs = np.random.SeedSequence([seed, 0]).spawn(len(metrics))
        with threadpool_limits(limits=1, user_api="openmp"):
            forest = _Forest.concat(
                [
                    _fit_ensemble(x, np.asarray(table.metrics[m], dtype=np.float64), config, s)
                    for m, s in zip(metrics, seqs, strict=True)
                ]
            )
            fidelity = _cross_validate(x, np.asarray(table.main), config, seed, table.main_metric)
        key, _ = _cache_key(table, config, seed)
        return cls(
            table,
            forest=forest,
            metrics=metrics,
            config=config,
            seed=seed,
            fidelity=fidelity,
            key=key,
            fit_seconds=time.perf_counter() - start,
        )

    def save(self, path: str | Path) -> Path:
        """Write the oracle to ``path`` (``.npz``, pickle-free) atomically."""
        from ncp_hpo.benchmarks._store import _atomic_write

        arrays = self._forest.arrays()
        _, key_fields = _cache_key(self.table, self.config, self.seed)
        import sklearn

        meta = {
            "format": ORACLE_VERSION,
            "key": self.key,
            "key_fields": key_fields,
            "setting": self.setting,
            "main_metric": self.main_metric,
            "metrics": list(self.metrics),
            "config": self.config.to_dict(),
            "seed": self.seed,
            "depth": self._forest.depth,
            "n_features": self._forest.n_features,
            "feature_names": list(FEATURE_NAMES),
            "fidelity": self.fidelity.to_dict(),
            "fit_seconds": self.fit_seconds,
            "arrays_sha256": _arrays_digest(arrays),
            "sklearn_version": sklearn.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, meta=np.asarray(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        path = Path(path)
        _atomic_write(path, buf.getvalue())
        self.path = path
        return path

    @classmethod
    def load(
        cls, path: str | Path, table: BenchmarkTable, *, expected_key: str | None = None
    ) -> SurrogateOracle:
        """Read an oracle written by :meth:`save` for ``table`` (no unpickling).

        Raises:
            DataError: unreadable, truncated or modified file, another format version or
                key, or fitted on a table other than ``table``.
        """
        start = time.perf_counter()
        path = Path(path)
        try:
            data = path.read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"][()]))
                arrays = {k: npz[k] for k in _FOREST_ARRAYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"unreadable oracle cache {path}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != ORACLE_VERSION:
            raise DataError(f"{path}: not an oracle file of format {ORACLE_VERSION}")
        if _arrays_digest(arrays) != meta.get("arrays_sha256"):
            raise DataError(f"{path}: model arrays do not match their recorded digest")
        if expected_key is not None and meta.get("key") != expected_key:
            raise DataError(f"{path}: holds oracle {meta.get('key')}, expected {expected_key}")
        key_fields = meta.get("key_fields", {})
        if key_fields.get("data_sha256") != _table_digest(table):
            raise DataError(f"{path}: fitted on other data than table {table.name!r}")
        try:
            cfg = dict(meta["config"])
            if cfg.get("metrics") is not None:
                cfg["metrics"] = tuple(cfg["metrics"])
            config = OracleConfig(**cfg)
            seed = _check_seed(meta["seed"])
            key, _ = _cache_key(table, config, seed)
            if key != meta.get("key"):
                raise DataError(f"{path}: header does not match its key")
            forest = _Forest(**arrays, depth=int(meta["depth"]), n_features=int(meta["n_features"]))
            if forest.n_features != len(FEATURE_NAMES):
                raise DataError(f"{path}: model uses {forest.n_features} features")
            oracle = cls(
                table,
                forest=forest,
                metrics=tuple(meta["metrics"]),
                config=config,
                seed=seed,
                fidelity=Fidelity.from_dict(meta["fidelity"]),
                key=key,
                fit_seconds=float(meta["fit_seconds"]),
                path=path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed oracle header ({exc})") from None
        oracle.load_seconds = time.perf_counter() - start
        return oracle

    # -- prediction ---------------------------------------------------------------------
    def predict_all(self, codes: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Surrogate ``(means, stds)`` of every modelled metric for codes (``27`` or
        ``n x 27``); arrays of shape ``n`` (``()`` for one code). Ignores the table."""
        means, stds, _, _ = self._predict_features(codes)
        if np.ndim(codes) == 1:
            return {m: v[0] for m, v in means.items()}, {m: v[0] for m, v in stds.items()}
        return means, stds

    def _predict_features(
        self, codes: Any
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
        x, fl, pa = _features_and_costs(codes)
        raw = self._forest.predict(x).reshape(len(x), len(self.metrics), self.config.members)
        mean, std = raw.mean(-1), raw.std(-1)
        means = {m: mean[:, i] for i, m in enumerate(self.metrics)}
        stds = {m: std[:, i] for i, m in enumerate(self.metrics)}
        return means, stds, fl, pa

    def predict(
        self, codes: Any, metric: str | None = None, *, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Surrogate prediction of ``metric`` (default: the main metric), table ignored.

        Returns the mean (shape ``n``, or ``()`` for one code), or ``(mean, std)``.
        """
        metric = metric or self.main_metric
        if metric not in self.metrics:
            raise ValueError(f"{metric!r} is not modelled; modelled: {', '.join(self.metrics)}")
        means, stds = self.predict_all(codes)
        return (means[metric], stds[metric]) if return_std else means[metric]

    def evaluate(self, code: Any) -> OracleResult:
        """The table's values for ``code`` when it holds it, else the surrogate's.

        ``code``: 27 integers or the upstream string. ``flops``/``params`` are exact.

        Raises:
            InvalidCodeError: not a valid code (NaN, off-grid, wrong shape ...).
        """
        return self.evaluate_many([_as_code(self.table, code)])[0]

    def evaluate_many(self, codes: Any) -> list[OracleResult]:
        """:meth:`evaluate` for ``n x 27`` codes, one surrogate batch for the misses."""
        x = np.atleast_2d(self.table.space.validate(codes))
        rows = [self.table.index(c) for c in x]
        miss = [i for i, r in enumerate(rows) if r is None]
        pred: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
        if miss:
            means, stds, fl, pa = self._predict_features(x[miss])
            for j, i in enumerate(miss):
                mv = {m: float(means[m][j]) for m in self.metrics}
                sv = {m: float(stds[m][j]) for m in self.metrics}
                mv |= {"flops": float(fl[j]), "params": float(pa[j])}
                sv |= {"flops": 0.0, "params": 0.0}
                pred[i] = (mv, sv)
        out = []
        for i, (code, row) in enumerate(zip(x, rows, strict=True)):
            if row is not None:
                mv = {k: float(v[row]) for k, v in self.table.metrics.items()}
                sv = dict.fromkeys(mv, 0.0)
                src: Source = "table"
            else:
                mv, sv = pred[i]
                src = "surrogate"
            out.append(
                OracleResult(
                    setting=self.setting,
                    code=tuple(int(v) for v in code),
                    source=src,
                    main_metric=self.main_metric,
                    metrics=MappingProxyType(mv),
                    stds=MappingProxyType(sv),
                    fidelity=self.fidelity,
                    table_index=row,
                )
            )
        return out


def _as_code(table: BenchmarkTable, code: Any) -> np.ndarray:
    if isinstance(code, str):
        decode = getattr(table.space, "decode", None)
        if decode is None:
            raise InvalidCodeError(f"{type(table.space).__name__} has no string format")
        code = decode(code)
    arr = table.space.validate(code)
    if arr.ndim != 1:
        raise InvalidCodeError(
            f"evaluate takes one code of shape ({table.space.dim},), got {arr.shape}"
        )
    return arr


def _modelled_metrics(table: BenchmarkTable, config: OracleConfig) -> tuple[str, ...]:
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


# -- cache --------------------------------------------------------------------------------
def oracle_cache_path(
    table: BenchmarkTable,
    *,
    config: OracleConfig | None = None,
    seed: int = 0,
    cache: str | Path | None = None,
) -> Path:
    """Where :func:`load_oracle` keeps the oracle of ``table``/``config``/``seed``:
    ``<cache>/oracles/<setting>-<key[:16]>.npz`` (``cache`` defaults to the user cache)."""
    from ncp_hpo.benchmarks._store import cache_dir

    key, _ = _cache_key(table, config or OracleConfig(), _check_seed(seed))
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    return root / ORACLE_DIR / f"{table.name}-{key[:16]}.npz"


def load_oracle(
    setting: str | BenchmarkTable,
    *,
    data_dir: str | Path | None = None,
    config: OracleConfig | None = None,
    seed: int = 0,
    cache: bool | str | Path = True,
    refit: bool = False,
) -> SurrogateOracle:
    """The surrogate oracle of a NAS-Bench-MR setting, from the cache or freshly fitted.

    Args:
        setting: a setting name (loaded with :func:`~ncp_hpo.benchmarks.load_benchmark`)
            or a :class:`~ncp_hpo.benchmarks.BenchmarkTable`.
        data_dir: where to look for the table first (as ``load_benchmark``).
        config: ensemble hyper-parameters (default :class:`OracleConfig`).
        seed: seed of every random choice of the fit.
        cache: ``True``: the user cache folder; a path: that folder instead; ``False``: fit
            without reading or writing a cache.
        refit: fit and overwrite even when a valid cache file exists.

    A cache file that fails its checks is reported with an :class:`OracleCacheWarning`
    and replaced; a cache that cannot be written is also a warning (the oracle is returned).

    Raises:
        UnsupportedSettingError: NAS-Bench-201 (complete table; evaluate it exactly).
        UnknownSettingError, DataNotFoundError, ...: from ``load_benchmark``.
    """
    from ncp_hpo.benchmarks import load_benchmark

    table = load_benchmark(setting, data_dir) if isinstance(setting, str) else setting
    config = config or OracleConfig()
    seed = _check_seed(seed)
    _modelled_metrics(table, config)  # fail fast on a bad setting/config
    if cache is False:
        return SurrogateOracle.fit(table, config=config, seed=seed)
    root = None if cache is True else Path(cache)
    path = oracle_cache_path(table, config=config, seed=seed, cache=root)
    key, _ = _cache_key(table, config, seed)
    if path.is_file() and not refit:
        try:
            return SurrogateOracle.load(path, table, expected_key=key)
        except DataError as exc:
            warnings.warn(
                f"refitting the surrogate oracle: {exc}", OracleCacheWarning, stacklevel=2
            )
    oracle = SurrogateOracle.fit(table, config=config, seed=seed)
    try:
        oracle.save(path)
    except OSError as exc:  # read-only or full cache: still usable, just not cached
        warnings.warn(
            f"could not cache the surrogate oracle at {path}: {exc}",
            OracleCacheWarning,
            stacklevel=2,
        )
    return oracle


def cached_oracles(
    table: BenchmarkTable, *, cache: str | Path | None = None
) -> list[SurrogateOracle]:
    """Every readable cached oracle fitted on exactly ``table``'s data (any config or seed),
    newest first. Nothing is fitted; unreadable or stale files are skipped."""
    from ncp_hpo.benchmarks._store import cache_dir

    root = Path(cache).expanduser() if cache is not None else cache_dir()
    found = []
    for path in (root / ORACLE_DIR).glob(f"{table.name}-*.npz"):
        try:
            found.append((path.stat().st_mtime_ns, SurrogateOracle.load(path, table)))
        except (DataError, OSError):
            continue
    return [o for _, o in sorted(found, key=lambda t: t[0], reverse=True)]


# -- table-restricted mode ----------------------------------------------------------------
class TableSnapper:
    """Snap proposals to the nearest table code not yet used (table-restricted mode).

    Distance: Euclidean, after standardising each code dimension by the table's mean and
    standard deviation (constant dimensions keep scale 1). Ties go to the lowest row. The
    caller owns the set of used rows (e.g. one per study), so two studies never interfere.

    Example:
        >>> snapper = TableSnapper(load_benchmark("seg"))     # doctest: +SKIP
        >>> used: set[int] = set()
        >>> row, dist = snapper.snap(code, used)              # row is now in ``used``
    """

    def __init__(self, table: BenchmarkTable) -> None:
        self.table = table
        codes = np.asarray(table.codes, dtype=np.float64)
        self.mean = codes.mean(0)
        scale = codes.std(0)
        self.scale = np.where(scale > 0, scale, 1.0)
        self._z = (codes - self.mean) / self.scale

    def __len__(self) -> int:
        return len(self._z)

    def nearest(self, code: Any, *, exclude: Collection[int] = ()) -> tuple[int, float]:
        """``(row, distance)`` of the nearest table code whose row is not in ``exclude``.

        Raises:
            InvalidCodeError: ``code`` is not a valid code of the table's space.
            NCPError: every row is excluded (the table is exhausted).
        """
        z = (_as_code(self.table, code).astype(np.float64) - self.mean) / self.scale
        d2 = np.einsum("ij,ij->i", self._z - z, self._z - z)
        if exclude:
            idx = np.fromiter((int(i) for i in exclude), dtype=np.int64)
            idx = idx[(idx >= 0) & (idx < len(d2))]
            d2[idx] = np.inf
            if len(np.unique(idx)) >= len(d2):
                raise NCPError(
                    f"table-restricted mode: all {len(d2)} codes of {self.table.name} are used"
                )
        row = int(np.argmin(d2))
        return row, float(np.sqrt(d2[row]))

    def snap(self, code: Any, used: MutableSet[int]) -> tuple[int, float]:
        """:meth:`nearest` excluding ``used``, then add the row to ``used``."""
        row, dist = self.nearest(code, exclude=used)
        used.add(row)
        return row, dist
