"""Benchmark data: NAS-Bench-MR (9 settings) and NAS-Bench-201, loaded safely.

Also the surrogate oracle for codes outside NAS-Bench-MR (:func:`load_oracle`, see
:mod:`ncp_hpo.benchmarks._oracle`), Optuna objectives (:class:`BenchmarkObjective`,
:class:`NB201Objective`, see :mod:`ncp_hpo.benchmarks._objectives`), and the head-to-head
sampler comparison behind ``ncp-hpo compare`` (:func:`run_comparison`,
:class:`CompareConfig`, see :mod:`ncp_hpo.experiments.compare`). Two public modules hold
what ``ncp-hpo search`` runs: :mod:`ncp_hpo.benchmarks.predictors` (each setting's neural
predictor, trained once and cached) and :mod:`ncp_hpo.benchmarks.setting_search`
(:func:`~ncp_hpo.benchmarks.setting_search.run_setting_search`).

>>> from ncp_hpo.benchmarks import load_benchmark            # doctest: +SKIP
>>> seg = load_benchmark("seg")                              # doctest: +SKIP
>>> seg.query(seg.codes[0])["mIoU"]                          # doctest: +SKIP

Files are the upstream pickles of ``dingmyu/NCP`` at a pinned commit (see :data:`SETTINGS`).
They are checksum-verified before an allow-listed unpickler reads them, and
``ncp-hpo data fetch`` converts them into a pickle-free cache. Lookup order: the
``data_dir`` argument, ``NCP_HPO_DATA``, then the user cache (``NCP_HPO_CACHE``); see
:mod:`ncp_hpo.benchmarks._store`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr
from ncp_hpo.benchmarks._inventory import DataStatus, data_status
from ncp_hpo.benchmarks._registry import (
    SEARCH_LIST,
    SETTINGS,
    UPSTREAM_COMMIT,
    UPSTREAM_REPO,
    Resource,
    Setting,
    get_setting,
)
from ncp_hpo.benchmarks._safe_pickle import safe_load_pickle
from ncp_hpo.benchmarks._store import (
    FetchResult,
    Location,
    cache_dir,
    fetch,
    find_setting,
    load_search_list,
    resolve_path,
    search_dirs,
)
from ncp_hpo.benchmarks._table import NB201_FILE_OPS, BenchmarkTable
from ncp_hpo.exceptions import DataNotFoundError, OracleCacheWarning, UnsupportedSettingError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._objectives import BenchmarkObjective, NB201Objective
    from ncp_hpo.benchmarks._oracle import (
        SurrogateOracle,
        cached_oracles,
        load_oracle,
        oracle_cache_path,
    )
    from ncp_hpo.benchmarks._oracle_model import (
        Fidelity,
        OracleConfig,
        OracleResult,
        oracle_features,
    )
    from ncp_hpo.benchmarks._snapper import TableSnapper
    from ncp_hpo.exceptions import CompareError
    from ncp_hpo.experiments.compare import CompareConfig, ComparisonResult, run_comparison

# The comparison, objectives and oracle pull in Optuna, torch and scikit-learn: they load on
# first use, so `import ncp_hpo.benchmarks` (and `ncp-hpo --help`) stays fast.
_LAZY = {
    **dict.fromkeys(
        ("CompareConfig", "ComparisonResult", "run_comparison"), "ncp_hpo.experiments.compare"
    ),
    "CompareError": "ncp_hpo.exceptions",
    **dict.fromkeys(("BenchmarkObjective", "NB201Objective"), "ncp_hpo.benchmarks._objectives"),
    **dict.fromkeys(
        ("SurrogateOracle", "cached_oracles", "load_oracle", "oracle_cache_path"),
        "ncp_hpo.benchmarks._oracle",
    ),
    **dict.fromkeys(
        ("Fidelity", "OracleConfig", "OracleResult", "oracle_features"),
        "ncp_hpo.benchmarks._oracle_model",
    ),
    "TableSnapper": "ncp_hpo.benchmarks._snapper",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "NB201_FILE_OPS",
    "SEARCH_LIST",
    "SETTINGS",
    "UPSTREAM_COMMIT",
    "UPSTREAM_REPO",
    "BenchmarkObjective",
    "BenchmarkTable",
    "CompareConfig",
    "CompareError",
    "ComparisonResult",
    "DataStatus",
    "FetchResult",
    "Fidelity",
    "Location",
    "NB201Objective",
    "OracleCacheWarning",
    "OracleConfig",
    "OracleResult",
    "Resource",
    "Setting",
    "SurrogateOracle",
    "TableSnapper",
    "UnsupportedSettingError",
    "cache_dir",
    "cached_oracles",
    "clear_cache",
    "data_status",
    "fetch",
    "find_setting",
    "get_setting",
    "load_benchmark",
    "load_oracle",
    "load_search_list",
    "oracle_cache_path",
    "oracle_features",
    "resolve_path",
    "run_comparison",
    "safe_load_pickle",
    "search_dirs",
]


def load_benchmark(
    name: str, data_dir: str | Path | None = None, *, allow_unverified: bool = False
) -> BenchmarkTable:
    """Load benchmark setting ``name`` as a read-only :class:`BenchmarkTable`.

    Tables are cached per process, keyed on the resolved file and its modification time,
    so repeated calls are free.

    Args:
        name: a key of :data:`SETTINGS` (``"seg"``, ``"nas-bench-201"`` ...).
        data_dir: a folder searched before ``NCP_HPO_DATA`` and the cache.
        allow_unverified: read an upstream pickle that has no pinned checksum (``3ddet``).

    Raises:
        UnknownSettingError: unknown ``name`` (lists the known ones).
        DataNotFoundError: not found anywhere; the message says how to get it.
        ChecksumError: the file is not the pinned upstream file.
        UnsafePickleError: the pickle references a global outside the allow-list.
    """
    setting = get_setting(name)
    loc = find_setting(setting.name, data_dir)
    if loc is None:
        resolve_path(setting.name, data_dir)  # raises with the how-to message
        raise DataNotFoundError(setting.name)  # pragma: no cover
    path = loc.path.resolve()
    stat = path.stat()
    return _load_cached(
        str(path), loc.format, setting.name, stat.st_mtime_ns, stat.st_size, allow_unverified
    )


@functools.lru_cache(maxsize=32)
def _load_cached(
    path: str, fmt: str, name: str, mtime_ns: int, size: int, allow_unverified: bool
) -> BenchmarkTable:
    from ncp_hpo.benchmarks._store import load_arrays
    from ncp_hpo.benchmarks._table import space_for

    setting = get_setting(name)
    loc = Location(name, "data_dir", Path(path), fmt)  # type: ignore[arg-type]
    codes, metrics, digest = load_arrays(loc, allow_unverified=allow_unverified)
    return BenchmarkTable(
        name=name,
        codes=codes,
        metrics=metrics,
        main_metric=setting.main_metric,
        space=space_for(setting.kind),
        units=setting.units,
        source=path,
        sha256=digest,
    )


def clear_cache() -> None:
    """Forget the tables loaded in this process."""
    _load_cached.cache_clear()
