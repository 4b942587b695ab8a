"""Paired tests at every budget from ``ncp-hpo compare`` folders: one sampler against the rest.

``compare``'s own report tests every sampler against ``ncp`` at the final budget only. This
reads the ``runs.csv`` of one or more compare folders (the same benchmark and seeds; a
sampler found in two folders must hold the same scores there) and prints, per budget, each
sampler's median [IQR] score and a paired two-sided Wilcoxon test against ``--reference``
(zero differences dropped, W/T/L from the other sampler's side), as Markdown.

    python benchmarks/paired_table.py OUT [OUT2 ...] --reference ncp+prior [--budgets 10,25,50]
        [--digits 4]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ncp_hpo.experiments.compare._stats import paired_wilcoxon, summary_stat


def read_scores(folders: list[Path]) -> dict[str, dict[tuple[int, int], float]]:
    """``{sampler: {(seed, budget): score}}`` over the folders' ``runs.csv``.

    Raises:
        SystemExit: a folder without ``runs.csv``, or a sampler whose scores differ between
            two folders.
    """
    scores: dict[str, dict[tuple[int, int], float]] = {}
    for folder in folders:
        path = folder / "runs.csv"
        if not path.is_file():
            raise SystemExit(f"paired_table: no runs.csv in {folder}")
        mine: dict[str, dict[tuple[int, int], float]] = {}
        with path.open() as fh:
            for r in csv.DictReader(fh):
                key = (int(r["seed"]), int(r["budget"]))
                mine.setdefault(r["sampler"], {})[key] = float(r["score"])
        for sampler, by in mine.items():
            seen = scores.setdefault(sampler, {})
            clash = [k for k in by if k in seen and abs(seen[k] - by[k]) > 1e-9]
            if clash:
                raise SystemExit(
                    f"paired_table: {sampler} seed {clash[0][0]} differs between folders"
                )
            seen.update(by)
    return scores


def table(
    scores: dict[str, dict[tuple[int, int], float]],
    reference: str,
    budgets: list[int],
    digits: int = 2,
) -> list[str]:
    """Markdown rows: median [IQR] per budget, then p (W/T/L) against ``reference``."""
    if reference not in scores:
        raise SystemExit(f"paired_table: no sampler {reference!r}; found {sorted(scores)}")
    ref = scores[reference]
    head = " | ".join(f"@{b}" for b in budgets)
    ps = " | ".join(f"p @{b} (W/T/L)" for b in budgets)
    out = [f"| sampler | {head} | {ps} |", "|---" * (2 * len(budgets) + 1) + "|"]
    for sampler, by in scores.items():
        cells, tests = [], []
        for b in budgets:
            seeds = sorted(s for s, bb in by if bb == b and (s, b) in ref)
            cells.append(summary_stat([by[(s, b)] for s in seeds]).format(digits))
            if sampler == reference:
                tests.append("")
                continue
            t = paired_wilcoxon([ref[(s, b)] for s in seeds], [by[(s, b)] for s in seeds])
            p = "n/a" if t.p_value is None else f"{t.p_value:.2g}"
            tests.append(f"{p} ({t.wins}/{t.ties}/{t.losses})")
        n = len({s for s, _ in by})
        out.append(f"| `{sampler}` ({n} seeds) | " + " | ".join(cells + tests) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="compare output folders")
    ap.add_argument("--reference", default="ncp", help="the sampler every other is tested against")
    ap.add_argument("--budgets", default="10,25,50,100", help="comma list (default 10,25,50,100)")
    ap.add_argument("--digits", type=int, default=2, help="decimals of the medians (default 2)")
    args = ap.parse_args(argv)
    budgets = [int(b) for b in args.budgets.split(",") if b]
    print("\n".join(table(read_scores(args.folders), args.reference, budgets, args.digits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
