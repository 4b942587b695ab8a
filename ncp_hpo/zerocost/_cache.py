"""Proxy score tables: computed once per code, cached pickle-free with a checksum.

Files, in ``<cache_dir()>/zerocost/`` (``NCP_HPO_CACHE`` overrides the user cache folder):

* ``<benchmark>.<proxy>.npz``: ``codes`` (int64 ``n x d``, sorted by row bytes),
  ``scores`` (float64 ``n``) and ``seconds`` (float64 ``n``, wall time of each score);
  written with numpy's plain array format and read with ``allow_pickle=False``;
* ``<benchmark>.<proxy>.json``: the proxy, :data:`PROXY_VERSION`, the scored network, the
  initialisation seed, the torch and numpy versions, the row count, the SHA-256 of the codes
  array, the SHA-256 of the ``.npz`` file, and ``last_run`` (codes scored, worker
  processes and wall seconds of the call that last added codes).

A table is read only when the ``.npz`` matches its recorded SHA-256 and the version is the
current one; anything else raises :class:`ProxyCacheError` naming the file and the command
that rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ncp_hpo.exceptions import DataError
from ncp_hpo.zerocost._targets import INIT_SEED, PROXIES, PROXY_VERSION, Target, get_target

__all__ = [
    "ProxyCacheError",
    "ScoreTable",
    "cache_paths",
    "load_scores",
    "row_order",
    "score_table",
]

CACHE_FORMAT = 1
DATA_FREE = ("synflow",)
"""Proxies a table can be precomputed for (they need no data)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: codes scored so far, codes to score."""


class ProxyCacheError(DataError, ValueError):
    """A cached proxy table is missing, stale or fails its checksum; the message names the
    file and the command that rebuilds it."""


def _rebuild_hint(benchmark: str, proxy: str) -> str:
    return f"ncp-hpo data proxies --benchmark {benchmark} --proxy {proxy} --force"


def row_order(codes: np.ndarray) -> np.ndarray:
    """The permutation that sorts the rows of ``codes`` (``n x d``) as a table stores them."""
    return np.argsort(_row_keys(codes), kind="stable")


def _row_keys(codes: np.ndarray) -> np.ndarray:
    """One sortable void scalar per row of an int64 ``n x d`` array: shape ``n``."""
    arr = np.ascontiguousarray(codes, dtype=np.int64)
    return arr.view(np.dtype((np.void, arr.dtype.itemsize * arr.shape[1]))).ravel()


@dataclass(frozen=True)
class ScoreTable:
    """Proxy scores of a set of codes, with an O(log n) vectorised lookup.

    Attributes:
        benchmark, proxy: what was scored, and how.
        codes: int64 ``n x d``, sorted (by row bytes).
        scores: float64 ``n`` (synflow: ``sum |theta * grad|``, unitless, may be ``inf``).
        seconds: float64 ``n``, wall time of each score (s, one thread).
        path: the ``.npz`` it was read from or written to (``None`` if not cached).
    """

    benchmark: str
    proxy: str
    codes: np.ndarray
    scores: np.ndarray
    seconds: np.ndarray
    path: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.scores)

    @functools.cached_property
    def _keys(self) -> np.ndarray:
        return _row_keys(self.codes)

    def lookup(self, codes: Any, default: float = float("nan")) -> np.ndarray:
        """Scores of ``codes`` (``d`` or ``n x d``): float64 ``()`` or ``n``; ``default``
        where a code is not in the table."""
        arr = np.asarray(codes, dtype=np.int64)
        rows = arr.reshape(-1, self.codes.shape[1])
        keys = _row_keys(rows)
        pos = np.searchsorted(self._keys, keys).clip(0, max(len(self) - 1, 0))
        found = (self._keys[pos] == keys) if len(self) else np.zeros(len(keys), dtype=bool)
        out = np.where(found, self.scores[pos] if len(self) else default, default)
        return out.reshape(arr.shape[:-1]).astype(np.float64)

    def score(self, code: Any) -> float:
        """Score of one code (``d``). Raises ``KeyError`` if it is not in the table."""
        value = float(self.lookup(np.asarray(code).reshape(-1)))
        if np.isnan(value) and not self._contains(code):
            raise KeyError(f"code not in the {self.benchmark} {self.proxy} table")
        return value

    def _contains(self, code: Any) -> bool:
        keys = _row_keys(np.asarray(code, dtype=np.int64).reshape(1, -1))
        pos = int(np.searchsorted(self._keys, keys)[0])
        return pos < len(self) and bool(self._keys[pos] == keys[0])


def cache_paths(benchmark: str, proxy: str, cache: str | Path | None = None) -> tuple[Path, Path]:
    """``(npz, json)`` paths of a table in ``cache`` (default ``cache_dir()/zerocost``)."""
    from ncp_hpo.benchmarks import cache_dir

    root = Path(cache).expanduser() if cache is not None else cache_dir() / "zerocost"
    stem = f"{benchmark}.{proxy}"
    return root / f"{stem}.npz", root / f"{stem}.json"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_codes(codes: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(codes, dtype="<i8").tobytes()).hexdigest()


def _meta(table: ScoreTable, target: Target, npz_sha: str, run: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {
        "format": CACHE_FORMAT,
        "benchmark": table.benchmark,
        "proxy": table.proxy,
        "proxy_version": PROXY_VERSION,
        "network": target.describe(),
        "init_seed": INIT_SEED,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "rows": len(table),
        "codes_sha256": _sha256_codes(table.codes),
        "npz_sha256": npz_sha,
        "seconds_total": float(table.seconds.sum()),
        "last_run": run,
    }


def _write(
    table: ScoreTable, target: Target, cache: str | Path | None, run: dict[str, Any]
) -> ScoreTable:
    npz, meta = cache_paths(table.benchmark, table.proxy, cache)
    npz.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=npz.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as fh:
        np.savez(fh, codes=table.codes, scores=table.scores, seconds=table.seconds)
    digest = _sha256_file(Path(tmp))
    os.replace(tmp, npz)
    text = json.dumps(_meta(table, target, digest, run), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=npz.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, meta)
    return ScoreTable(table.benchmark, table.proxy, table.codes, table.scores, table.seconds, npz)


def load_scores(
    benchmark: str, proxy: str = "synflow", *, cache: str | Path | None = None
) -> ScoreTable:
    """The cached score table of ``benchmark`` (e.g. ``"nas-bench-201"``) and ``proxy``.

    Raises:
        ProxyCacheError: no table yet, a stale one (other :data:`PROXY_VERSION`), or one
            whose ``.npz`` does not match the SHA-256 in its ``.json``; the message names the
            file and the ``ncp-hpo data proxies`` command that (re)builds it.
    """
    npz, meta_path = cache_paths(benchmark, proxy, cache)
    hint = _rebuild_hint(benchmark, proxy)
    if not npz.is_file() or not meta_path.is_file():
        raise ProxyCacheError(f"no cached {proxy} scores for {benchmark} at {npz}; run '{hint}'")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded, version = meta["npz_sha256"], meta["proxy_version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProxyCacheError(
            f"unreadable cache metadata {meta_path} ({exc}); run '{hint}'"
        ) from None
    actual = _sha256_file(npz)
    if actual != recorded:
        raise ProxyCacheError(
            f"checksum mismatch for {npz}: sha256 {actual[:12]}..., recorded "
            f"{str(recorded)[:12]}... in {meta_path.name}; the file was changed or damaged; "
            f"rebuild it with '{hint}'"
        )
    if version != PROXY_VERSION:
        raise ProxyCacheError(
            f"stale cache {npz}: proxy version {version}, this ncp-hpo computes version "
            f"{PROXY_VERSION}; rebuild it with '{hint}'"
        )
    with np.load(npz, allow_pickle=False) as data:
        codes, scores, seconds = data["codes"], data["scores"], data["seconds"]
    if _sha256_codes(codes) != meta.get("codes_sha256"):
        raise ProxyCacheError(f"codes in {npz} do not match {meta_path.name}; run '{hint}'")
    return ScoreTable(benchmark, proxy, codes, scores, seconds, npz)


def _computed(
    target: Target, proxy: str, codes: np.ndarray, jobs: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and seconds of ``codes`` (``n x d``), in ``jobs`` processes of one thread."""
    from ncp_hpo.zerocost._targets import score_chunk

    n = len(codes)
    if jobs <= 1 or n < 2:
        scores, seconds = np.empty(n), np.empty(n)
        step = 64
        for lo in range(0, n, step):
            scores[lo : lo + step], seconds[lo : lo + step] = score_chunk(
                target, proxy, codes[lo : lo + step]
            )
            if progress is not None:
                progress(min(lo + step, n), n)
        return scores, seconds
    return _computed_pool(target, proxy, codes, jobs, progress)


def _computed_pool(
    target: Target, proxy: str, codes: np.ndarray, jobs: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from ncp_hpo.zerocost._targets import score_chunk

    n = len(codes)
    step = max(1, min(128, n // (4 * jobs) or 1))
    scores, seconds = np.empty(n), np.empty(n)
    done = 0
    # spawn: a fresh interpreter per worker (no forked torch thread pools); the CPU-math
    # variables set by pin_cpu_math are inherited through the environment
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {
            pool.submit(score_chunk, target, proxy, codes[lo : lo + step]): lo
            for lo in range(0, n, step)
        }
        for fut in as_completed(futures):
            lo = futures[fut]
            s, t = fut.result()
            scores[lo : lo + len(s)], seconds[lo : lo + len(s)] = s, t
            done += len(s)
            if progress is not None:
                progress(done, n)
    return scores, seconds


def score_table(
    benchmark: str,
    proxy: str = "synflow",
    codes: Any = None,
    *,
    jobs: int = 1,
    cache: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    data_dir: str | Path | None = None,
) -> ScoreTable:
    """Score ``codes`` (default: every code of the benchmark's table), reusing the cache.

    Codes already in the cached table are not scored again; new ones are scored and the
    table is rewritten with them (a union). Returns the scores of the requested codes.

    Args:
        benchmark: a setting name (``"nas-bench-201"``, ``"seg"``, ...).
        proxy: a data-free proxy (``"synflow"``).
        codes: ``n x d`` codes of the benchmark's space, or ``None`` for the whole table.
        jobs: worker processes (one torch thread each).
        cache: folder of the tables (default ``cache_dir()/zerocost``).
        force: ignore (and replace) an existing table, even a stale or damaged one.
        progress: called as ``progress(done, total)`` while scoring.
        data_dir: where to find the benchmark table when ``codes`` is ``None``.

    Raises:
        ValueError: unknown or data-based proxy, ``jobs`` < 1.
        ProxyCacheError: a damaged or stale cached table (without ``force``).
        UnsupportedSettingError: a setting without a scoring target (``3ddet``).
    """
    if proxy not in PROXIES:
        raise ValueError(f"unknown proxy {proxy!r}; known: {', '.join(PROXIES)}")
    if proxy not in DATA_FREE:
        raise ValueError(
            f"proxy {proxy!r} needs a minibatch of the task's data, so it has no table; "
            "score codes with proxy_score(benchmark, code, proxy=..., batch=...)"
        )
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    target = get_target(benchmark)
    from ncp_hpo.benchmarks import get_setting, load_benchmark

    name = get_setting(benchmark).name
    if codes is None:
        codes = load_benchmark(name, data_dir).codes
    from ncp_hpo.benchmarks._table import space_for

    valid = space_for(target.kind).validate(np.asarray(codes))
    wanted = np.unique(valid.reshape(-1, valid.shape[-1]), axis=0)
    wanted = wanted[row_order(wanted)]
    empty = np.empty(0)
    old = ScoreTable(name, proxy, wanted[:0], empty, empty)
    if not force and cache_paths(name, proxy, cache)[0].exists():
        old = load_scores(name, proxy, cache=cache)
    missing = wanted[np.isnan(old.lookup(wanted))] if len(old) else wanted
    if len(missing):
        t0 = time.perf_counter()
        scores, seconds = _computed(target, proxy, missing, jobs, progress)
        run = {"scored": len(missing), "jobs": jobs, "wall_seconds": time.perf_counter() - t0}
        merged = np.concatenate([old.codes, missing])
        order = row_order(merged)
        table = ScoreTable(
            name,
            proxy,
            merged[order],
            np.concatenate([old.scores, scores])[order],
            np.concatenate([old.seconds, seconds])[order],
        )
        old = _write(table, target, cache, run)
    keep = np.searchsorted(old._keys, _row_keys(wanted))
    return ScoreTable(name, proxy, old.codes[keep], old.scores[keep], old.seconds[keep], old.path)
