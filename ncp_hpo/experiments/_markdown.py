"""Markdown tables: the one helper behind every table the experiments write
(``compare``'s ``summary.md``, the paper protocol's tables, the benchmark scripts' reports)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]

_RULE = {"l": "---", "r": "---:"}


def markdown_table(
    head: Sequence[object], rows: Iterable[Sequence[object]], *, align: str = ""
) -> list[str]:
    """The lines of a GitHub-flavoured Markdown table (no trailing newline).

    Args:
        head: the column titles (``k`` of them).
        rows: the rows, each ``k`` cells; a cell is written with ``str``.
        align: one character per column, ``"l"`` (left, ``---``) or ``"r"`` (right,
            ``---:``); columns past its end are left-aligned.

    Raises:
        ValueError: ``align`` names another alignment or has more than ``k`` characters,
            or a row has not ``k`` cells.
    """
    k = len(head)
    if len(align) > k or any(a not in _RULE for a in align):
        raise ValueError(f"align must be up to {k} characters 'l' or 'r', got {align!r}")
    rule = [_RULE[a] for a in align.ljust(k, "l")]
    lines = [_row(head), "|" + "|".join(rule) + "|"]
    for i, r in enumerate(rows):
        if len(r) != k:
            raise ValueError(f"row {i} has {len(r)} cells, the table {k} columns")
        lines.append(_row(r))
    return lines


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
