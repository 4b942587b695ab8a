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

Features, configuration and result types: :mod:`ncp_hpo.benchmarks._oracle_model`; the
flat tree arrays and the fitting: :mod:`ncp_hpo.benchmarks._forest`; table-restricted
mode (nearest unused table code): :mod:`ncp_hpo.benchmarks._snapper`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.benchmarks._forest import FOREST_ARRAYS, Forest, cross_validate, fit_ensemble
from ncp_hpo.benchmarks._oracle_model import (
    FEATURE_NAMES,
    Fidelity,
    OracleConfig,
    OracleResult,
    Source,
    features_and_costs,
    modelled_metrics,
    oracle_features,
)
from ncp_hpo.exceptions import DataError, OracleCacheWarning

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = [
    "ORACLE_VERSION",
    "SurrogateOracle",
    "cached_oracles",
    "load_oracle",
    "oracle_cache_path",
]

ORACLE_VERSION = 1
"""Bumped whenever features, fitting or the file layout change (invalidates caches)."""

ORACLE_DIR = "oracles"


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
        forest: Forest,
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
        metrics = modelled_metrics(table, config)
        start = time.perf_counter()
        x = oracle_features(table.codes)
        seqs = np.random.SeedSequence([seed, 0]).spawn(len(metrics))
        with threadpool_limits(limits=1, user_api="openmp"):
            forest = Forest.concat(
                [
                    fit_ensemble(x, np.asarray(table.metrics[m], dtype=np.float64), config, s)
                    for m, s in zip(metrics, seqs, strict=True)
                ]
            )
            fidelity = cross_validate(x, np.asarray(table.main), config, seed, table.main_metric)
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
                arrays = {k: npz[k] for k in FOREST_ARRAYS}
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
            forest = Forest(**arrays, depth=int(meta["depth"]), n_features=int(meta["n_features"]))
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
        x, fl, pa = features_and_costs(codes)
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
        return self.evaluate_many([self.table.as_code(code)])[0]

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
    modelled_metrics(table, config)  # fail fast on a bad setting/config
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
