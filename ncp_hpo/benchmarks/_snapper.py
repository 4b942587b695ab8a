"""Table-restricted mode: snap proposals to the nearest table code not yet used.

A surrogate-free second view of a search on NAS-Bench-MR: every proposal is mapped to the
nearest table code (Euclidean distance after standardising each code dimension by the
table's mean and standard deviation) among the rows the caller has not used yet, and that
code's measured values are returned.
"""

from __future__ import annotations

from collections.abc import Collection, MutableSet
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import NCPError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable

__all__ = ["TableSnapper"]


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
        z = (self.table.as_code(code).astype(np.float64) - self.mean) / self.scale
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
