"""Finding, verifying, converting and caching the benchmark files.

Where data is looked for, in order (the first place holding a setting wins):

1. the ``data_dir`` argument,
2. the ``NCP_HPO_DATA`` environment variable,
3. the user cache: ``NCP_HPO_CACHE`` if set, else the platform cache folder
   (``$XDG_CACHE_HOME/ncp-hpo`` or ``~/.cache/ncp-hpo`` on Linux,
   ``~/Library/Caches/ncp-hpo`` on macOS, ``%LOCALAPPDATA%\\ncp-hpo\\Cache`` on Windows).

A folder may hold converted tables (``<setting>/table.npz`` + ``<setting>/meta.json``, what
:func:`fetch` writes) or the upstream layout (``<setting>/trainval.pkl``, also under a
``data/`` subfolder as in a clone of the upstream repository). Converted tables are
preferred; upstream pickles are checksum-verified and unpickled with the allow-list of
:mod:`ncp_hpo.benchmarks._safe_pickle` on every load.

The cache is pickle-free: ``table.npz`` (written with ``allow_pickle=False``: ``codes`` and
one ``metric__<name>`` array per metric) plus ``meta.json`` (setting, source SHA-256,
whether it was verified, the npz's own SHA-256). Files are written to a temporary file in
the same folder and moved into place with ``os.replace``; ``meta.json`` goes last and marks
the entry complete, and a failure removes what the attempt wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ncp_hpo.benchmarks._registry import (
    SEARCH_LIST,
    SETTINGS,
    Resource,
    Setting,
    get_resource,
    get_setting,
)
from ncp_hpo.benchmarks._safe_pickle import safe_load_pickle, sha256_hex
from ncp_hpo.benchmarks._table import records_to_arrays
from ncp_hpo.exceptions import ChecksumError, DataError, DataNotFoundError

__all__ = [
    "CACHE_FORMAT",
    "FetchResult",
    "Location",
    "cache_dir",
    "fetch",
    "find_setting",
    "read_cache",
    "resolve_path",
    "search_dirs",
]

CACHE_FORMAT = 1
ENV_DATA = "NCP_HPO_DATA"
ENV_CACHE = "NCP_HPO_CACHE"
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
TABLE_FILE = "table.npz"
META_FILE = "meta.json"

SourceKind = Literal["data_dir", "NCP_HPO_DATA", "cache"]


# -- where --------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The user cache folder (``NCP_HPO_CACHE`` overrides the platform default)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ncp-hpo" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ncp-hpo"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ncp-hpo"


def search_dirs(data_dir: str | Path | None = None) -> list[tuple[SourceKind, Path]]:
    """The folders searched for data, in priority order, labelled by where they came from."""
    dirs: list[tuple[SourceKind, Path]] = []
    if data_dir is not None:
        dirs.append(("data_dir", Path(data_dir).expanduser()))
    env = os.environ.get(ENV_DATA)
    if env:
        dirs.append(("NCP_HPO_DATA", Path(env).expanduser()))
    dirs.append(("cache", cache_dir()))
    return dirs


@dataclass(frozen=True)
class Location:
    """Where a setting was found: ``origin`` (which search folder), the file and its format."""

    name: str
    origin: SourceKind
    path: Path
    format: Literal["npz", "pickle", "text"]


def _raw_candidates(root: Path, res: Resource) -> list[Path]:
    return [root / res.local_name, root / res.upstream_path]


def _find_in(root: Path, res: Resource) -> tuple[Path, Literal["npz", "pickle", "text"]] | None:
    if isinstance(res, Setting):
        entry = root / res.name
        if (entry / META_FILE).is_file() and (entry / TABLE_FILE).is_file():
            return entry / TABLE_FILE, "npz"
    for cand in _raw_candidates(root, res):
        if cand.is_file():
            return cand, ("pickle" if isinstance(res, Setting) else "text")
    return None


def find_setting(name: str, data_dir: str | Path | None = None) -> Location | None:
    """The first place (see module doc) holding setting or resource ``name``, or ``None``."""
    res = get_resource(name)
    for origin, root in search_dirs(data_dir):
        hit = _find_in(root, res)
        if hit is not None:
            return Location(res.name, origin, hit[0], hit[1])
    return None


def _missing_message(name: str, data_dir: str | Path | None) -> str:
    looked = "; ".join(f"{o}: {p}" for o, p in search_dirs(data_dir))
    return (
        f"benchmark data '{name}' not found (looked in {looked}); get it with "
        f"'ncp-hpo data fetch --data-dir DIR {name}' (DIR holding {name}/trainval.pkl), "
        f"'ncp-hpo data fetch {name}' (downloads), or set {ENV_DATA}=DIR"
    )


def resolve_path(name: str, data_dir: str | Path | None = None) -> Path:
    """The file :func:`ncp_hpo.benchmarks.load_benchmark` would read for ``name``.

    Raises:
        UnknownSettingError: ``name`` is not registered.
        DataNotFoundError: no search folder holds it (the message says how to get it).
    """
    loc = find_setting(name, data_dir)
    if loc is None:
        raise DataNotFoundError(_missing_message(name, data_dir))
    return loc.path


# -- cache files --------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; cache files are ordinary data
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _npz_bytes(codes: np.ndarray, metrics: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    arrays = {"codes": np.asarray(codes, dtype=np.int64)}
    arrays |= {f"metric__{k}": np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    np.savez(buf, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _write_cache_entry(
    root: Path,
    setting: Setting,
    codes: np.ndarray,
    metrics: dict[str, np.ndarray],
    *,
    source_sha256: str,
    verified: bool,
    source: str,
) -> Path:
    entry = root / setting.name
    table_bytes = _npz_bytes(codes, metrics)
    meta = {
        "format": CACHE_FORMAT,
        "setting": setting.name,
        "kind": setting.kind,
        "rows": len(codes),
        "metrics": list(metrics),
        "main_metric": setting.main_metric,
        "source": source,
        "source_sha256": source_sha256,
        "verified": verified,
        "table_sha256": sha256_hex(table_bytes),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    table_path, meta_path = entry / TABLE_FILE, entry / META_FILE
    # Remove a stale marker first so a crash between the two writes cannot pair an old
    # meta.json with a new table.npz.
    with contextlib.suppress(FileNotFoundError):
        meta_path.unlink()
    try:
        _atomic_write(table_path, table_bytes)
        _atomic_write(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    except BaseException:
        for p in (meta_path, table_path):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            entry.rmdir()  # only if empty
        raise
    return table_path


def read_meta(table_path: Path) -> dict[str, Any]:
    """The ``meta.json`` beside a converted ``table.npz``."""
    meta_path = table_path.parent / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable cache metadata {meta_path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise DataError(
            f"{meta_path} has an unknown cache format; re-run 'ncp-hpo data fetch --force'"
        )
    return meta


def read_cache(
    table_path: Path, setting: Setting
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """Read and check a converted table: ``(codes, metrics, meta)``.

    Raises:
        DataError: metadata missing or for another setting, or ``table.npz`` does not match
            the digest recorded at write time.
        ChecksumError: it was converted from bytes other than the pinned upstream file.
    """
    meta = read_meta(table_path)
    if meta.get("setting") != setting.name:
        raise DataError(f"{table_path} holds {meta.get('setting')!r}, not {setting.name!r}")
    if setting.sha256 is not None and meta.get("source_sha256") != setting.sha256:
        raise ChecksumError(
            f"cached {setting.name} at {table_path} was converted from sha256 "
            f"{meta.get('source_sha256')}, expected {setting.sha256}; re-run "
            f"'ncp-hpo data fetch --force {setting.name}'"
        )
    data = table_path.read_bytes()
    if sha256_hex(data) != meta.get("table_sha256"):
        raise DataError(
            f"{table_path} does not match its recorded digest (modified or truncated); "
            f"re-run 'ncp-hpo data fetch --force {setting.name}'"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        codes = npz["codes"]
        metrics = {
            k.removeprefix("metric__"): npz[k] for k in npz.files if k.startswith("metric__")
        }
    return codes, metrics, meta


# -- fetch --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchResult:
    """Outcome of fetching one setting or resource."""

    name: str
    path: Path
    action: Literal["converted", "up to date"]
    sha256: str
    verified: bool
    rows: int


def _urlopen(url: str, timeout: float) -> Any:  # replaced in tests
    return urllib.request.urlopen(url, timeout=timeout)  # https, pinned host


def _download(res: Resource, timeout: float) -> bytes:
    url = res.url
    try:
        with _urlopen(url, timeout) as resp:
            data = resp.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download {res.name} from {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"could not download {res.name} from {url}: {reason}; offline? copy the files "
            "and run 'ncp-hpo data fetch --data-dir DIR'"
        ) from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise DataError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes; refusing it")
    return bytes(data)


def _read_source(res: Resource, source: Path | None, timeout: float) -> tuple[bytes, str]:
    if source is None:
        return _download(res, timeout), res.url
    for cand in _raw_candidates(source, res):
        if cand.is_file():
            return cand.read_bytes(), str(cand)
    raise DataNotFoundError(
        f"{res.name} not found under {source} (expected {source / res.local_name})"
    )


def _check_digest(res: Resource, data: bytes, label: str, allow_unverified: bool) -> str:
    actual = sha256_hex(data)
    if res.sha256 is None:
        if not allow_unverified:
            raise DataError(
                f"{res.name} has no pinned checksum; using it needs --allow-unverified "
                "(allow_unverified=True)"
            )
    elif actual != res.sha256:
        raise ChecksumError(
            f"checksum mismatch for {label}: expected sha256 {res.sha256}, got {actual}"
        )
    return actual


def _fetch_one(
    res: Resource,
    root: Path,
    source: Path | None,
    *,
    allow_unverified: bool,
    force: bool,
    timeout: float,
) -> FetchResult:
    if res.sha256 is None and not allow_unverified:
        raise DataError(
            f"{res.name} has no pinned checksum; fetching it needs --allow-unverified "
            "(allow_unverified=True)"
        )
    if not force:
        done = _up_to_date(res, root)
        if done is not None:
            return done
    data, label = _read_source(res, source, timeout)
    digest = _check_digest(res, data, label, allow_unverified)
    if isinstance(res, Setting):
        records = safe_load_pickle(
            data, sha256=digest, allow_unverified=allow_unverified, name=label
        )
        codes, metrics = records_to_arrays(res, records, label=label)
        path = _write_cache_entry(
            root,
            res,
            codes,
            metrics,
            source_sha256=digest,
            verified=res.sha256 is not None,
            source=label,
        )
        rows = len(codes)
    else:
        path = root / res.local_name
        _atomic_write(path, data)
        rows = len(data.decode().splitlines())
    return FetchResult(res.name, path, "converted", digest, res.sha256 is not None, rows)


def _up_to_date(res: Resource, root: Path) -> FetchResult | None:
    """The existing cache entry when it is complete and from the pinned bytes."""
    if isinstance(res, Setting):
        table = root / res.name / TABLE_FILE
        if not table.is_file():
            return None
        try:
            meta = read_meta(table)
        except DataError:
            return None
        if res.sha256 is None or meta.get("source_sha256") != res.sha256:
            return None
        if sha256_hex(table.read_bytes()) != meta.get("table_sha256"):
            return None
        return FetchResult(res.name, table, "up to date", res.sha256, True, int(meta["rows"]))
    path = root / res.local_name
    if path.is_file() and res.sha256 and sha256_hex(path.read_bytes()) == res.sha256:
        rows = len(path.read_text().splitlines())
        return FetchResult(res.name, path, "up to date", res.sha256, True, rows)
    return None


def default_fetch_names(source: Path | None, allow_unverified: bool) -> list[str]:
    """What ``fetch`` with no names fetches: with ``source``, every resource present
    there; without, every resource with a pinned checksum (plus unpinned ones on opt-in)."""
    names = [*SETTINGS, SEARCH_LIST.name]
    if source is not None:
        return [n for n in names if _find_raw(source, get_resource(n))]
    return [n for n in names if allow_unverified or get_resource(n).sha256 is not None]


def _find_raw(root: Path, res: Resource) -> bool:
    return any(c.is_file() for c in _raw_candidates(root, res))


def fetch(
    names: str | Iterable[str] | None = None,
    *,
    source: str | Path | None = None,
    cache: str | Path | None = None,
    allow_unverified: bool = False,
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Verify, convert and cache benchmark files (pickle-free).

    Args:
        names: settings (and/or ``"search_list"``) to fetch; ``None``: see
            :func:`default_fetch_names`.
        source: read ``<name>/trainval.pkl`` from this folder (offline) instead of
            downloading from the pinned upstream commit.
        cache: destination (default :func:`cache_dir`).
        allow_unverified: accept a setting without a pinned checksum (``3ddet``).
        force: convert again even when the cache is up to date.
        timeout: download timeout in seconds.
        progress: called with each result as it completes.

    Stops at the first failure; settings completed before it stay cached, and the failed
    one leaves no file behind.

    Raises:
        UnknownSettingError, DataNotFoundError, ChecksumError, UnsafePickleError, DataError.
    """
    src = Path(source).expanduser() if source is not None else None
    if src is not None and not src.is_dir():
        raise DataNotFoundError(f"--data-dir folder {src} does not exist")
    if names is None:
        todo = default_fetch_names(src, allow_unverified)
        if not todo:
            where = f"under {src}" if src is not None else "to download"
            raise DataNotFoundError(f"no benchmark files {where} (expected <setting>/trainval.pkl)")
    else:
        todo = [names] if isinstance(names, str) else list(names)
    resources = [get_resource(n) for n in todo]  # unknown names fail before any work
    if src is not None:
        absent = [r.name for r in resources if not _find_raw(src, r)]
        if absent:
            raise DataNotFoundError(
                f"not found under {src}: {', '.join(absent)} "
                f"(expected {src / get_resource(absent[0]).local_name}, or the same under data/)"
            )
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    results = []
    for res in resources:
        result = _fetch_one(
            res, root, src, allow_unverified=allow_unverified, force=force, timeout=timeout
        )
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def load_search_list(data_dir: str | Path | None = None) -> list[str]:
    """The 2,510 upstream NAS-Bench-MR code strings (checksum-verified)."""
    loc = find_setting(SEARCH_LIST.name, data_dir)
    if loc is None:
        raise DataNotFoundError(_missing_message(SEARCH_LIST.name, data_dir))
    data = loc.path.read_bytes()
    _check_digest(SEARCH_LIST, data, str(loc.path), allow_unverified=False)
    return [line.strip() for line in data.decode().splitlines() if line.strip()]


def load_arrays(
    loc: Location, *, allow_unverified: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """``(codes, metrics, source_sha256)`` of a located setting (npz or upstream pickle)."""
    setting = get_setting(loc.name)
    if loc.format == "npz":
        codes, metrics, meta = read_cache(loc.path, setting)
        return codes, metrics, str(meta.get("source_sha256", ""))
    data = loc.path.read_bytes()
    digest = _check_digest(setting, data, str(loc.path), allow_unverified)
    records = safe_load_pickle(data, sha256=digest, allow_unverified=True, name=str(loc.path))
    codes, metrics = records_to_arrays(setting, records, label=str(loc.path))
    return codes, metrics, digest
