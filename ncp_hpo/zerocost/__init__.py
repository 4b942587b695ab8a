"""Zero-cost proxies: a score of each architecture code from its untrained network.

Two proxies (math and conventions in :mod:`ncp_hpo.zerocost._proxies`):

* ``"synflow"`` (Abdelfattah et al., ICLR 2021): data-free; float64, absolute-valued
  weights, an all-ones input, no batch norm. Precomputed per benchmark table and cached.
* ``"naswot"`` (Mellor et al., ICML 2021): ``log |det K_H|`` of the ReLU activation-code
  kernel over a minibatch of the task's data; scored per code with :func:`proxy_score`.

Which network a code is scored on (NAS-Bench-201 network or multi-resolution network with
the setting's task head) is fixed per benchmark: :mod:`ncp_hpo.zerocost._targets`.

Public API::

    load_scores(benchmark, proxy="synflow", *, cache=None) -> ScoreTable
    score_table(benchmark, proxy="synflow", codes=None, *, jobs=1, cache=None,
                force=False, progress=None, data_dir=None) -> ScoreTable
    proxy_score(benchmark, code, proxy="synflow", *, batch=None) -> float
    ScoreTable: .codes (n x d int64), .scores (n float64), .seconds (n),
                .lookup(codes, default=nan) -> scores, .score(code) -> float
    ProxyCacheError, PROXIES, PROXY_VERSION

Tables live in ``<cache_dir()>/zerocost/<benchmark>.<proxy>.npz`` (pickle-free) with a
``.json`` sidecar holding the proxy version, torch version and the ``.npz``'s SHA-256; a
table that fails the checksum or has another version is refused. ``ncp-hpo data proxies``
precomputes a whole table.

Example:
    >>> from ncp_hpo.zerocost import load_scores                      # doctest: +SKIP
    >>> table = load_scores("nas-bench-201", proxy="synflow")         # doctest: +SKIP
    >>> table.lookup(codes)  # n x 30 one-hot codes -> n scores       # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ncp_hpo.zerocost._cache import ProxyCacheError, ScoreTable, load_scores, score_table
from ncp_hpo.zerocost._targets import PROXIES, PROXY_VERSION, get_target, score_code

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "PROXIES",
    "PROXY_VERSION",
    "ProxyCacheError",
    "ScoreTable",
    "load_scores",
    "proxy_score",
    "score_table",
]


def proxy_score(
    benchmark: str, code: Any, proxy: str = "synflow", *, batch: Tensor | None = None
) -> float:
    """Score one code on the untrained network of ``benchmark`` (not cached).

    Args:
        benchmark: a setting name; it fixes the space, builder, head and synflow input
            (``"nas-bench-201"``: NAS-Bench-201 network, 120 classes, 3x16x16; ``"seg"``,
            ``"cls-10-1000"``, ...: the multi-resolution network with that task's head).
        code: one valid code of the benchmark's space (``30`` one-hot or ``27`` integers;
            an NB201 arch string or an upstream code string also work).
        proxy: ``"synflow"`` or ``"naswot"``.
        batch: for ``"naswot"``, a minibatch of the task's inputs, ``B x C x H x W``
            (``B x C x T x H x W`` for video), ``B`` >= 2.

    Returns:
        the score (higher is predicted better); synflow is unitless and ``>= 0``, naswot a
        log-determinant (``-inf`` for a singular kernel).

    Raises:
        InvalidCodeError: the code is not valid in the benchmark's space.
        ValueError: unknown proxy, or ``"naswot"`` without a batch.
    """
    target = get_target(benchmark)
    if isinstance(code, str):
        return score_code(target, proxy, code, batch)
    from ncp_hpo.benchmarks._table import space_for

    valid = space_for(target.kind).validate(code)
    if valid.ndim != 1:
        raise ValueError(f"proxy_score takes one code, got shape {valid.shape}")
    return score_code(target, proxy, valid, batch)
