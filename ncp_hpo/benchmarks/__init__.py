"""Benchmark data: NAS-Bench-MR (9 settings) and NAS-Bench-201, loaded safely.

Also the surrogate oracle for codes outside NAS-Bench-MR (:func:`load_oracle`, see
:mod:`ncp_hpo.benchmarks._oracle`), Optuna objectives (:class:`BenchmarkObjective`,
:class:`NB201Objective`, see :mod:`ncp_hpo.benchmarks._objectives`). The head-to-head
sampler comparison behind ``ncp-hpo compare`` lives in :mod:`ncp_hpo.experiments`. Two
public modules hold what ``ncp-hpo search`` runs: :mod:`ncp_hpo.benchmarks.predictors` (each
setting's neural predictor, trained once and cached) and
:mod:`ncp_hpo.benchmarks.setting_search`
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
from ncp_hpo.benchmarks._registry import SEARCH_LIST as SEARCH_LIST
from ncp_hpo.benchmarks._registry import SETTINGS, Setting, get_setting
from ncp_hpo.benchmarks._registry import UPSTREAM_COMMIT as UPSTREAM_COMMIT
from ncp_hpo.benchmarks._registry import UPSTREAM_REPO as UPSTREAM_REPO
from ncp_hpo.benchmarks._registry import Resource as Resource
from ncp_hpo.benchmarks._safe_pickle import safe_load_pickle as safe_load_pickle
from ncp_hpo.benchmarks._store import FetchResult, Location, fetch, find_setting, resolve_path
from ncp_hpo.benchmarks._store import cache_dir as cache_dir
from ncp_hpo.benchmarks._store import load_search_list as load_search_list
from ncp_hpo.benchmarks._store import search_dirs as search_dirs
from ncp_hpo.benchmarks._table import NB201_FILE_OPS as NB201_FILE_OPS
from ncp_hpo.benchmarks._table import BenchmarkTable
from ncp_hpo.exceptions import DataNotFoundError
from ncp_hpo.exceptions import OracleCacheWarning as OracleCacheWarning
from ncp_hpo.exceptions import UnsupportedSettingError as UnsupportedSettingError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._objectives import OBJECTIVES, BenchmarkObjective, NB201Objective
    from ncp_hpo.benchmarks._oracle import SurrogateOracle, load_oracle
    from ncp_hpo.benchmarks._oracle import cached_oracles as cached_oracles
    from ncp_hpo.benchmarks._oracle import oracle_cache_path as oracle_cache_path
    from ncp_hpo.benchmarks._oracle_model import Fidelity as Fidelity
    from ncp_hpo.benchmarks._oracle_model import OracleConfig, OracleResult
    from ncp_hpo.benchmarks._oracle_model import oracle_features as oracle_features
    from ncp_hpo.benchmarks._snapper import TableSnapper as TableSnapper

# The objectives and oracle pull in Optuna, torch and scikit-learn: they load on first use,
# so `import ncp_hpo.benchmarks` (and `ncp-hpo --help`) stays fast.
_LAZY = {
    **dict.fromkeys(
        ("OBJECTIVES", "BenchmarkObjective", "NB201Objective"), "ncp_hpo.benchmarks._objectives"
    ),
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


# Public: the names in __all__. The others imported here (``x as x``: the upstream registry
# and file locations, the oracle's internals) are for ncp_hpo's own use; private.
__all__ = [
    "OBJECTIVES",
    "SETTINGS",
    "BenchmarkObjective",
    "BenchmarkTable",
    "DataStatus",
    "FetchResult",
    "NB201Objective",
    "OracleConfig",
    "OracleResult",
    "Setting",
    "SurrogateOracle",
    "clear_cache",
    "data_status",
    "fetch",
    "get_setting",
    "load_benchmark",
    "load_oracle",
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
