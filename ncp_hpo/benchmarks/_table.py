"""In-memory benchmark tables and the conversion of upstream records into them.

NAS-Bench-201 one-hot order
---------------------------
The upstream ``nas-bench-201/trainval.pkl`` stores each cell as a 30-float one-hot whose
order is undocumented. It is *not* the usual operation order. We inferred it from the data
(all 15,625 cells present exactly once, one 1 per block of 5):

* **Blocks are edges, 5 slots each.** Every block of 5 holds exactly one 1.
* **Slots 3 and 4 are the convolutions.** Changing one edge to slot 3 adds 3.93 MFLOPs
  and 0.028 M params, to slot 4 adds 35.39 MFLOPs and 0.243 M params (ratio 9: 1x1 vs
  3x3), independently of the edge. Slots 0, 1 and 2 add nothing, as ``none``,
  ``skip_connect`` and ``avg_pool_3x3`` cost nothing in NAS-Bench-201's counter.
* **Slot 1 is ``none``.** The minimum accuracy, 0.833 % = 1/120, is chance on
  ImageNet16-120. Reading slot 1 as ``none``, all 341 cells in which every input-output
  path holds a ``none`` edge are at chance (plus 4 connected cells that failed to train).
  Slot 1 on all three of file edges {0, 1, 3}, {0, 3, 5} or {3, 4, 5} gives chance
  accuracy (125 cells each), and no other edge triple does: these are the three 3-edge
  cuts of the cell DAG, {1<-0, 2<-0, 3<-0} (the input edges), {1<-0, 3<-0, 3<-2} and
  {3<-0, 3<-1, 3<-2} (the output edges). This fixes the edge order up to reversing the
  DAG (node i <-> 3-i, which swaps 1<-0 with 3<-2 and 2<-0 with 3<-1).
* **Slot 2 is ``skip_connect``, slot 0 ``avg_pool_3x3``.** Reading slot 2 as the identity
  makes functionally identical cells (e.g. ``3<-0: op`` and ``1<-0: skip, 3<-1: op``) fall
  into one class: the pooled within-class standard deviation of ``Acc`` is 0.88 points.
  Reading slot 0 as the identity instead gives 3.97.
* **Edge order: canonical, not reversed.** The reversed reading gives 0.90 on the same
  statistic. Refining the classes (a convolution followed by batch norm ignores the scale
  of its input, pooling is linear), pairs of cells equivalent only under the canonical
  reading differ by 1.10 points on average, pairs equivalent only under the reversed one
  by 1.26 (17,927 pairs each; canonical wins 469 of 500 bootstrap resamples of the
  cells). A conversion from arch strings also yields the canonical order. The data cannot
  rule the reversal out completely; it maps each cell to a mirror cell of equal cost.

So the file's slot order is ``(avg_pool_3x3, none, skip_connect, nor_conv_1x1,
nor_conv_3x3)`` and its edge order is the standard ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``.
:data:`NB201_FILE_OPS` records it and the loader permutes slots into
:data:`ncp_hpo.spaces.nb201.OPS` order.

The file's ``Flops``/``Params`` are those of the NAS-Bench-201 network on 32x32 inputs with
100 classes (CIFAR-100 costs; ``Acc`` is ImageNet16-120): the closed form in
:class:`~ncp_hpo.spaces.nb201.NB201Space` reproduces both columns to their printed precision
on 15,475 cells. On the other 150 both columns are off by exactly one convolution, mostly
where ``1<-0`` is ``skip_connect``; they are kept as published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ncp_hpo.benchmarks._registry import Setting
from ncp_hpo.exceptions import DataError, InvalidCodeError
from ncp_hpo.spaces import CodeSpace

__all__ = ["NB201_FILE_OPS", "BenchmarkTable", "records_to_arrays"]

NB201_FILE_OPS: tuple[str, ...] = (
    "avg_pool_3x3",
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
)
"""Operation of each of the 5 slots per edge in the upstream NAS-Bench-201 file."""


def _nb201_slot_permutation() -> np.ndarray:
    """Index array ``p`` with ``canonical[..., j] = file[..., p[j]]`` per edge."""
    from ncp_hpo.spaces.nb201 import OPS

    return np.array([NB201_FILE_OPS.index(op) for op in OPS], dtype=np.int64)


def space_for(kind: str) -> CodeSpace:
    """The code space of a setting kind."""
    if kind == "nb201":
        from ncp_hpo.spaces.nb201 import NB201Space

        return NB201Space()
    from ncp_hpo.spaces.multires import MultiResolutionSpace

    return MultiResolutionSpace()


def _float_keys(record: Mapping[str, Any]) -> list[str]:
    return [
        k
        for k, v in record.items()
        if isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool)
    ]


def records_to_arrays(
    setting: Setting, records: Any, *, label: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Upstream record list -> ``(codes, metrics)`` in our canonical layout.

    ``codes`` is int64 ``N x 27`` (NAS-Bench-MR) or ``N x 30`` (NAS-Bench-201, canonical
    slot order); ``metrics`` maps every registered metric name (plus any extra numeric
    record key) to a float64 array ``N``.

    Raises:
        DataError: the records do not have the registered shape.
    """
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        raise DataError(f"{label}: expected a list of result dicts, got {type(records).__name__}")
    if setting.rows and len(records) != setting.rows:
        raise DataError(f"{label}: expected {setting.rows} records, found {len(records)}")
    source = {m: setting.source_metrics.get(m, m) for m in setting.metrics}
    extra = [
        k
        for k in _float_keys(records[0])
        if k not in source.values() and k not in ("input_channel", "last_channel")
    ]
    try:
        emb = np.asarray([r["embedding"] for r in records])
        metrics = {
            m: np.asarray([r[k] for r in records], dtype=np.float64) for m, k in source.items()
        }
        metrics |= {k: np.asarray([r[k] for r in records], dtype=np.float64) for k in extra}
    except KeyError as exc:
        raise DataError(
            f"{label}: a record lacks key {exc}; keys present: {', '.join(sorted(records[0]))}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{label}: records have irregular values ({exc})") from None

    space = space_for(setting.kind)
    if setting.kind == "nb201":
        if emb.ndim != 2 or emb.shape[1] != 30:
            raise DataError(f"{label}: NB201 embeddings must be 30-long, got shape {emb.shape}")
        blocks = emb.reshape(-1, 6, 5)[:, :, _nb201_slot_permutation()]
        raw = blocks.reshape(-1, 30)
    else:
        raw = emb
    try:
        codes = space.validate(raw).astype(np.int64)
    except InvalidCodeError as exc:
        raise DataError(f"{label}: invalid code in file: {exc}") from None
    return codes, metrics


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class BenchmarkTable:
    """One benchmark setting as arrays: codes and their measured metrics.

    Tables come from :func:`ncp_hpo.benchmarks.load_benchmark`, which caches them per
    process, so every array is read-only; copy before modifying.

    Attributes:
        name: setting name, e.g. ``"seg"``.
        codes: int64 ``N x d`` codes (``d = 27`` NAS-Bench-MR, ``30`` NAS-Bench-201 in
            :data:`ncp_hpo.spaces.nb201.OPS` slot order).
        metrics: metric name -> float64 array ``N`` (always ``flops`` and ``params``).
        main_metric: the metric to maximise (``top1``, ``mIoU``, ``Acc`` ...).
        space: the :class:`~ncp_hpo.spaces.CodeSpace` the codes live in.
        units: metric name -> unit string.
        source: where the table was read from (file path).
        sha256: SHA-256 of the upstream file it was converted from.
    """

    name: str
    codes: np.ndarray
    metrics: Mapping[str, np.ndarray]
    main_metric: str
    space: CodeSpace
    units: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    sha256: str = ""
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = _readonly(np.asarray(self.codes, dtype=np.int64))
        if codes.ndim != 2 or codes.shape[1] != self.space.dim:
            raise DataError(f"{self.name}: codes must be N x {self.space.dim}, got {codes.shape}")
        metrics = {k: _readonly(np.asarray(v, dtype=np.float64)) for k, v in self.metrics.items()}
        for k, v in metrics.items():
            if v.shape != (len(codes),):
                raise DataError(f"{self.name}: metric {k} has shape {v.shape}, not ({len(codes)},)")
        if self.main_metric not in metrics:
            raise DataError(f"{self.name}: main metric {self.main_metric!r} missing")
        index: dict[bytes, int] = {}
        for i, row in enumerate(codes):
            index.setdefault(row.tobytes(), i)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "metrics", MappingProxyType(metrics))
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return (
            f"BenchmarkTable(name={self.name!r}, rows={len(self)}, "
            f"metrics={list(self.metrics)}, main_metric={self.main_metric!r})"
        )

    @property
    def main(self) -> np.ndarray:
        """The main metric's values, shape ``N``."""
        return self.metrics[self.main_metric]

    # -- lookup ---------------------------------------------------------------------------
    def _key(self, code: Any) -> bytes:
        if isinstance(code, str):
            decode = getattr(self.space, "decode", None)
            if decode is None:
                raise InvalidCodeError(f"{type(self.space).__name__} has no string format")
            code = decode(code)
        arr = np.asarray(code)
        if arr.shape != (self.space.dim,):
            raise InvalidCodeError(
                f"query takes one code of shape ({self.space.dim},), got shape {arr.shape}"
            )
        if not np.issubdtype(arr.dtype, np.integer):
            arr = self.space.validate(arr)
        return np.ascontiguousarray(arr, dtype=np.int64).tobytes()

    def index(self, code: Any) -> int | None:
        """Row of ``code`` (array-like, or the space's string format), or ``None``. O(1)."""
        return self._index.get(self._key(code))

    def query(self, code: Any) -> dict[str, float] | None:
        """Metrics of ``code`` as ``{name: value}``, or ``None`` when it is not in the table."""
        i = self.index(code)
        if i is None:
            return None
        return {k: float(v[i]) for k, v in self.metrics.items()}

    def __contains__(self, code: object) -> bool:
        try:
            return self.index(code) is not None
        except InvalidCodeError:
            return False

    # -- subsets --------------------------------------------------------------------------
    def split(
        self, n_train: int, n_val: int = 0, seed: int | np.random.Generator | None = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random disjoint row indices ``(train, val, test)``; test is all remaining rows.

        Deterministic for an int ``seed`` (a permutation drawn from
        ``numpy.random.default_rng(seed)``). Use :meth:`subset` to turn indices into tables.

        Raises:
            ValueError: negative sizes, or ``n_train + n_val`` above the table size.
        """
        for nm, v in (("n_train", n_train), ("n_val", n_val)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"{nm} must be a non-negative integer, got {v!r}")
        if n_train + n_val > len(self):
            raise ValueError(
                f"n_train + n_val = {n_train + n_val} exceeds the {len(self)} rows of {self.name}"
            )
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        perm = rng.permutation(len(self))
        return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]

    def subset(self, indices: Sequence[int] | np.ndarray) -> BenchmarkTable:
        """A new table with the given rows (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return BenchmarkTable(
            name=self.name,
            codes=self.codes[idx],
            metrics={k: v[idx] for k, v in self.metrics.items()},
            main_metric=self.main_metric,
            space=self.space,
            units=self.units,
            source=self.source,
            sha256=self.sha256,
        )
