"""The paper protocol's reports: ``paper_table{2,3,4}.md`` (medians over seeds with the
inter-quartile range), their per-seed CSVs and ``paper_protocol.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo._numerics import environment_line
from ncp_hpo.experiments._files import jsonable, write_csv
from ncp_hpo.experiments._markdown import markdown_table
from ncp_hpo.experiments.compare._provenance import git_provenance
from ncp_hpo.experiments.compare._stats import summary_stat

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkTable
    from ncp_hpo.experiments.paper._protocol import PaperProtocolResult

__all__ = ["SHORT", "median_rows", "tradeoff_rows", "write_reports"]

SHORT = {"cls-50-1000": "Cls", "seg": "Seg", "video": "Video", "cls-50-100": "Cls-B",
         "cls-10-1000": "Cls-C", "seg-4x": "Seg-4x"}  # fmt: skip


def median_rows(rows: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per ``key`` value (first-seen order): numeric columns -> median over seeds, plus
    ``<col>:q25``/``<col>:q75``; text columns -> the most common value or a count."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    out = []
    for k, rs in groups.items():
        row: dict[str, Any] = {key: k, "n_seeds": len(rs)}
        cols = dict.fromkeys(c for r in rs for c in r)
        for c in cols:
            if c in (key, "seed"):
                continue
            vals = [r.get(c) for r in rs]
            nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
            if nums and len(nums) == len(vals):
                st = summary_stat(nums)
                row[c], row[f"{c}:q25"], row[f"{c}:q75"] = st.median, st.q25, st.q75
            else:
                texts = [str(v) for v in vals]
                uniq = sorted(set(texts))
                row[c] = (
                    uniq[0] if len(uniq) == 1 else ", ".join(f"{u} x{texts.count(u)}" for u in uniq)
                )
        out.append(row)
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return "n/a" if v is None else str(v)


def _iqr(row: Mapping[str, Any], col: str, digits: int = 2) -> str:
    lo, hi = row.get(f"{col}:q25"), row.get(f"{col}:q75")
    base = _fmt(row.get(col), digits)
    if row.get("n_seeds", 1) > 1 and isinstance(lo, float) and isinstance(hi, float):
        return f"{base} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return base


def _header(result: PaperProtocolResult, title: str, settings: Sequence[str]) -> list[str]:
    lines = [f"# {title}", ""]
    n = len(result.seeds)
    lines.append(
        f"- Seeds: {n} (predictors fitted with "
        + ("seed 0" if n == 1 else f"seeds 0..{n - 1}")
        + " on 2,000 table codes, 500 for "
        "validation); numbers are medians over seeds"
        + (", [25th, 75th percentile] where shown" if n > 1 else "")
        + "."
    )
    for s in settings:
        fid = result.fidelity.get(s)
        if fid:
            lines.append(
                f"- Oracle `{s}` ({fid['metric']}): held-out Spearman {fid['spearman']:.3f}, "
                f"Kendall {fid['kendall']:.3f}, MAE {fid['mae']:.3f} "
                f"({fid['folds']}-fold CV over {fid['rows']} codes)."
            )
        sc = result.predictor_scores.get(s)
        if sc:
            sp = [float(x["spearman"]) for x in sc if x.get("spearman") is not None]
            if sp:
                lines.append(
                    f"- NCP predictor `{s}`: validation Spearman (500 codes) median "
                    f"{float(np.median(sp)):.3f}."
                )
    lines.append(
        "- Source: `table` = the code is in NAS-Bench-MR (measured value); `surrogate` = the "
        "oracle's prediction. FLOPs: GFLOPs at 128x128 (table convention), exact."
    )
    if result.skipped:
        lines.append(f"- Skipped (data not available): {', '.join(result.skipped)}.")
    git = git_provenance().get("git")
    lines.append(
        f"- Created {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
        + (f" by the code at git {git}" if git else "")
        + f"; {result.elapsed_s:.0f} s for the whole protocol."
    )
    lines.append(f"- Environment: {environment_line()}.")
    return [*lines, ""]


def write_reports(
    result: PaperProtocolResult, out: Path, tables: Mapping[str, BenchmarkTable]
) -> dict[str, Path]:
    """Write the tables (Markdown and per-seed CSV) and ``paper_protocol.json`` under
    ``out``; returns name -> path (``table2_md``, ``table2_csv``, ... ``json``)."""
    files: dict[str, Path] = {}
    t2 = median_rows(result.table2, "method")
    hv_rows = tradeoff_rows(result.table2_points, tables[result.setting])
    hv = median_rows(hv_rows, "method")
    files["table2_md"] = out / "paper_table2.md"
    lines = [*_table2_lines(result, t2, tables), "", *_tradeoff_lines(hv, tables[result.setting])]
    files["table2_md"].write_text("\n".join(lines) + "\n")
    files["table2_csv"] = write_csv(out / "paper_table2.csv", result.table2)
    if hv_rows:
        files["tradeoff_csv"] = write_csv(out / "paper_table2_tradeoff.csv", hv_rows)
    if result.table3:
        files["table3_md"] = out / "paper_table3.md"
        files["table3_md"].write_text("\n".join(_table3_lines(result, tables)) + "\n")
        files["table3_csv"] = write_csv(out / "paper_table3.csv", result.table3)
    if result.table4:
        files["table4_md"] = out / "paper_table4.md"
        files["table4_md"].write_text("\n".join(_table4_lines(result)) + "\n")
        files["table4_csv"] = write_csv(out / "paper_table4.csv", result.table4)
    files["json"] = out / "paper_protocol.json"
    doc = {
        "setting": result.setting,
        "seeds": result.seeds,
        "elapsed_s": result.elapsed_s,
        "fidelity": result.fidelity,
        "predictor_scores": result.predictor_scores,
        "skipped": result.skipped,
        "table2": result.table2,
        "table3": result.table3,
        "table4": result.table4,
        "table2_median": t2,
        "table2_tradeoff": hv,
    }
    files["json"].write_text(json.dumps(jsonable(doc), indent=1))
    return files


def _table2_lines(
    result: PaperProtocolResult,
    t2: Sequence[Mapping[str, Any]],
    tables: Mapping[str, BenchmarkTable],
) -> list[str]:
    b = result.setting
    tab = tables[b]
    main = tab.main_metric
    others = [k for k in tab.metrics if k not in (main, "flops", "params")]
    lines = _header(result, f"Paper protocol, Table 2 shape: search strategies on {b}", [b])
    head = ["method", "params (M)", "FLOPs (G)", main, *others, f"predicted {main}",
            "oracle evaluations", "source"]  # fmt: skip
    rows = [
        [
            r["method"],
            _fmt(r["params_m"]),
            _fmt(r["flops_g"], 3),
            _iqr(r, f"{b}:{main}"),
            *[_fmt(r.get(f"{b}:{m}")) for m in others],
            _fmt(r.get(f"{b}:predicted")),
            str(int(r["evaluations"])),
            str(r.get(f"{b}:source", "")),
        ]
        for r in t2
    ]
    lines += markdown_table(head, rows, align="l" + "r" * (len(head) - 2))
    return [
        *lines,
        "",
        "Random Search reports the best of 100 oracle-evaluated random codes and the Neural "
        "Predictor the best of its top 10 (oracle-evaluated) among 10,000 predicted codes; "
        "NCP and NetAdapt make one proposal each, evaluated once. `predicted` is the NCP "
        "predictor's own estimate of the reported code.",
    ]


def tradeoff_rows(
    points: Sequence[Mapping[str, Any]], table: BenchmarkTable
) -> list[dict[str, Any]]:
    """Per method and seed: its oracle evaluations as a trade-off of the main metric against
    FLOPs, scored by ``compare``'s normalised hypervolume
    (:func:`~ncp_hpo.experiments.compare._records.tradeoff_hypervolume`), and that score as
    a share of the table front's."""
    from ncp_hpo.experiments.compare._records import tradeoff_hypervolume

    groups: dict[tuple[str, int], list[list[float]]] = {}
    for p in points:
        groups.setdefault((p["method"], p["seed"]), []).append([p["metric"], p["flops_g"]])
    m, f = table.metrics[table.main_metric], table.metrics["flops"]
    front = np.stack([np.asarray(m, dtype=np.float64), np.asarray(f, dtype=np.float64)], 1)
    best = tradeoff_hypervolume(front, table)
    rows = []
    for (method, seed), vals in groups.items():
        hv = tradeoff_hypervolume(np.asarray(vals), table)
        rows.append(
            {"method": method, "seed": seed, "evaluations": len(vals), "hypervolume": hv,
             "share_of_table_front": hv / best}
        )  # fmt: skip
    return rows


def _tradeoff_lines(hv: Sequence[Mapping[str, Any]], table: BenchmarkTable) -> list[str]:
    if not hv:
        return []
    several = any(r.get("n_seeds", 1) > 1 for r in hv)
    head = ["method", "oracle evaluations", "hypervolume",
            "share of the table front's hypervolume"]  # fmt: skip
    rows = [
        [r["method"], str(int(r["evaluations"])), _iqr(r, "hypervolume", 4),
         _iqr(r, "share_of_table_front", 3)]
        for r in hv
    ]  # fmt: skip
    m = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    spread = "Median [25th, 75th percentile] over seeds. " if several else "One seed. "
    return [
        f"## The trade-off: {table.main_metric} against FLOPs (as `compare --objective "
        "metric+flops` scores it)",
        "",
        "Every oracle evaluation a method made is a point (its metric, its exact GFLOPs), and "
        "its score is the normalised 2-D hypervolume `compare --objective metric+flops` "
        f"gives a study; higher is better. Both axes span the {table.name} table of "
        f"NAS-Bench-MR ({len(m):,} codes): {table.main_metric} from the best code's "
        f"{m.max():.1f} (0) to the worst's {m.min():.1f} (1), FLOPs from the cheapest code "
        "(0) to the dearest (1); "
        "reference point (1, 1). The metric axis reaches down to the table's worst code, so "
        "every method's codes lie near its top and FLOPs decide most of the differences: a "
        "method that finds the most accurate codes at a high cost can score below one that "
        "finds slightly less accurate, much cheaper ones. NCP's rows pool their lambdas "
        f"(one code each). {spread}The last column divides by the hypervolume of the "
        "table's own front (all its codes).",
        "",
        *markdown_table(head, rows, align="lrrr"),
    ]


def _table3_lines(result: PaperProtocolResult, tables: Mapping[str, BenchmarkTable]) -> list[str]:
    t3 = median_rows(result.table3, "method")
    settings = list(dict.fromkeys(s for r in result.table3 for s in r["searched_on"].split("+")))
    lines = _header(result, "Paper protocol, Table 3 shape: single- and multi-task NCP", settings)
    head = ["searched on", "params (M)", "FLOPs (G)"] + [
        f"{SHORT.get(s, s)} {tables[s].main_metric}" for s in settings
    ]
    rows = []
    for r in t3:
        cells = [r["method"], _fmt(r["params_m"]), _fmt(r["flops_g"], 3)]
        for s in settings:
            src = r.get(f"{s}:source", "")
            cells.append(
                f"{_iqr(r, f'{s}:{tables[s].main_metric}')}"
                f"{'' if src == 'surrogate' else f' ({src})'}"
            )
        rows.append(cells)
    lines += markdown_table(head, rows, align="l" + "r" * (len(head) - 1))
    return [
        *lines,
        "",
        "NCP-continuous, λ=0.5, from the paper's start code; pairs use both predictors "
        "(Eq. 7, weight 1 each). Every code is evaluated on every setting's oracle "
        "(values are surrogate predictions unless marked `(table)`).",
    ]


def _table4_lines(result: PaperProtocolResult) -> list[str]:
    keyed = [{**r, "pair": f"{r['source']} -> {r['target']}"} for r in result.table4]
    t4 = median_rows(keyed, "pair")
    settings = list(dict.fromkeys(r["source"] for r in result.table4))
    lines = _header(result, "Paper protocol, Table 4 shape: cross-task transfer", settings)
    head = ["source -> target", "metric", "FLOPs-F (G)", "metric-F", "metric-T",
            "FLOPs-T (G)", "scratch metric", "scratch FLOPs (G)"]  # fmt: skip
    rows = [
        [
            r["pair"],
            r["metric"],
            _fmt(r["flops_f"], 3),
            _iqr(r, "metric_f"),
            _iqr(r, "metric_t"),
            _fmt(r["flops_t"], 3),
            _iqr(r, "metric_scratch"),
            _fmt(r["flops_scratch"], 3),
        ]
        for r in t4
    ]
    lines += markdown_table(head, rows, align="ll" + "r" * (len(head) - 2))
    return [
        *lines,
        "",
        "-F: the source task's NCP code (λ=0.5 from the start code) used as is on the "
        "target; -T: propagated from it with the target's predictor (λ=0.5, 70 "
        "iterations); scratch: NCP on the target from the paper's start code. All values "
        "from the target's oracle.",
    ]
