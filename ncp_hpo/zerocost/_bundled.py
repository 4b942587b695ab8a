"""Zero-cost score tables shipped with the package, so NCP's default warm start needs no
precompute: data-free proxies of whole code spaces only.

``tables/nas-bench-201.synflow.npy`` holds the synflow score of each of the 15,625
NAS-Bench-201 cells (float64, little-endian, ``numpy.save`` format, read with
``allow_pickle=False``), in the order of :meth:`~ncp_hpo.spaces.NB201Space.enumerate_all`.
It is what ``ncp-hpo data proxies --benchmark nas-bench-201`` computes (proxy version
:data:`BUNDLED_VERSION`, torch 2.13.0, the pinned CPU math of :mod:`ncp_hpo._numerics`);
``tests/zerocost/test_bundled.py`` recomputes a sample of cells and compares. A file that
fails its SHA-256 below is refused.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from ncp_hpo.exceptions import DataError
from ncp_hpo.zerocost._cache import ScoreTable, row_order

__all__ = ["BUNDLED", "BUNDLED_VERSION", "bundled_scores", "bundled_table"]

_HERE = Path(__file__).resolve().parent / "tables"

BUNDLED: dict[tuple[str, str], tuple[str, str]] = {
    ("nas-bench-201", "synflow"): (
        "nas-bench-201.synflow.npy",
        "a931bfbef653ec614bc79b088525baf7f849e25e6a9e582389082962adaae9dd",
    ),
}
"""``(benchmark, proxy) -> (file under tables/, its SHA-256)``."""

BUNDLED_VERSION = 1
"""The proxy version (:data:`ncp_hpo.zerocost.PROXY_VERSION`) the bundled tables hold."""


@functools.cache
def bundled_scores(benchmark: str, proxy: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, scores)`` of a shipped table (``n x d`` int64 and ``n`` float64, codes in
    the space's enumeration order), or ``None`` when none is shipped for the pair.

    Raises:
        DataError: the shipped file fails its checksum (a damaged install).
    """
    entry = BUNDLED.get((benchmark, proxy))
    if entry is None:
        return None
    name, sha = entry
    path = _HERE / name
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha:
        raise DataError(
            f"{path} fails its checksum (sha256 {actual[:12]}..., expected {sha[:12]}...): "
            "the installed package is damaged; reinstall ncp-hpo"
        )
    scores = np.load(path, allow_pickle=False)
    from ncp_hpo.spaces import NB201Space

    codes = NB201Space().enumerate_all()
    if scores.shape != (len(codes),):
        raise DataError(f"{path} holds {scores.shape} scores for {len(codes)} cells")
    return codes, np.asarray(scores, dtype=np.float64)


@functools.cache
def bundled_table(benchmark: str, proxy: str) -> ScoreTable | None:
    """The shipped table as a :class:`~ncp_hpo.zerocost.ScoreTable` (``path`` the shipped
    file), or ``None`` when none is shipped for the pair."""
    shipped = bundled_scores(benchmark, proxy)
    if shipped is None:
        return None
    codes, scores = shipped
    order = row_order(codes)
    name = BUNDLED[(benchmark, proxy)][0]
    return ScoreTable(
        benchmark, proxy, codes[order], scores[order], np.zeros(len(codes)), _HERE / name
    )
