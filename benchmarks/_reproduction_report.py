"""The report of ``benchmarks/reproduce_paper.py``: the paper's reference numbers and the
README sections built from ``results.json`` (pure functions of the recorded results)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ncp_hpo.experiments._markdown import markdown_table

LAMBDAS = (0.1, 0.3, 0.5, 0.7, 0.9)
NB201_LAMBDAS = (0.5, 0.3, 0.2, 0.1, 0.0)
STRATEGIES = ("continuous", "winner_takes_all")

# Paper Appendix A.2, Table 6: validation L1 (%) of the main metric per setting.
PAPER_TABLE6 = {
    "cls-50-1000": 0.56,
    "cls-50-100": 1.07,
    "cls-10-1000": 0.83,
    "seg": 0.75,
    "seg-4x": 0.88,
    "video": 1.07,
}
# Paper Table 2 (Cityscapes, FLOPs at 512x1024; mIoU of the found models *retrained*).
PAPER_TABLE2 = [
    ("NCP-Net-S-continuous", 0.7, "continuous", 20.07, 76.98),
    ("NCP-Net-M-continuous", 0.3, "continuous", 36.25, 78.36),
    ("NCP-Net-M-winner-takes-all", 0.3, "winner_takes_all", 32.88, 77.91),
    ("NCP-Net-L-continuous", 0.1, "continuous", 179.98, 80.05),
]
PAPER_NB201 = {"acc": 46.8, "flops": 90.36, "table_best": 47.33, "best_at_budget": 47.03}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = [float(x) for x in values]
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return "\n".join(markdown_table(headers, rows))


def _fmt(m: float, s: float, nd: int = 2) -> str:
    return f"{m:.{nd}f} ± {s:.{nd}f}"


def quality_section(q: dict[str, Any]) -> str:
    rows = []
    for setting, d in q["settings"].items():
        p = d["paper_summary"]
        a = d["heldout_noselect_summary"]
        b = d["heldout_select_summary"]
        paper = d["paper_table6"]
        rows.append(
            [
                setting,
                d["main_metric"],
                f"{paper:.2f}" if paper is not None else "-",
                _fmt(*p["mae"]),
                _fmt(*a["mae"]),
                _fmt(*b["mae"]),
                _fmt(*p["kendall"], nd=3),
                _fmt(*a["kendall"], nd=3),
                _fmt(*b["kendall"], nd=3),
            ]
        )
    table = _md_table(
        [
            "setting",
            "metric",
            "paper Table 6",
            "MAE paper protocol (val = selection)",
            "MAE held-out, 2,000 train, last epoch",
            "MAE held-out, 1,600 train + 400 selection",
            "τ paper protocol",
            "τ held-out (2,000)",
            "τ held-out (1,600+400)",
        ],
        rows,
    )
    n = len(q["seeds"])
    text = f"""## 1. Predictor quality (paper Appendix A.2, Table 6)

Main-metric mean absolute error (percentage points) and Kendall's τ, mean ± sd over split
seeds {", ".join(map(str, q["seeds"]))} ({n} seeds). The paper reports the "validation L1" of
its predictor; upstream picks the best epoch on that same validation split, so its number is
the *paper protocol* column. The two held-out columns score the 507 codes that neither
training nor checkpoint selection saw (the same 507 codes for both, per seed).

{table}
"""
    if q["missing"]:
        text += (
            f"\nNot available locally (not measured): {', '.join(q['missing'])}; "
            "`ncp-hpo data fetch` downloads them.\n"
        )
    return text


_NB201_TEXT = """## 2. NAS-Bench-201 (paper Appendix C, Fig. 6)

Predictor on random cells of the ImageNet16-120 table (Acc and FLOPs heads), continuous
propagation of the 30-dim one-hot from `{s[cell]}` ({s[acc]:.2f} %, {s[flops]:.2f}
MFLOPs: the lowest-accuracy cell among the 128 with ≥ 150 MFLOPs), lr 3, exact FLOPs term,
arg-max every 10 iterations (a "step"), 70 iterations. The found cell is the one after the
last step; its accuracy and FLOPs are the table's (exact). Medians over
{n_seeds} seeds (the seed draws the training cells and initialises the predictor).

Paper: {paper[acc]} % at {paper[flops]} MFLOPs (λ not stated). Table best
{nb[table_best][acc]:.2f} % ({nb[table_best][flops]:.2f} MFLOPs); best at ≤ 90.36
MFLOPs {nb[best_at_paper_flops]:.2f} %.

{table}

Per seed, 2,000 + 500 cells:

{per_seed_table}
"""


def nb201_section(nb: dict[str, Any]) -> str:
    rows = []
    for n_train in (2000, 200):
        for lam in nb["lambdas"]:
            rs = [r for r in nb["runs"] if r["n_train"] == n_train and r["lam"] == lam]
            fa = [r["found_acc"] for r in rs]
            ff = [r["found_flops"] for r in rs]
            bt = [r["best_train_acc"] for r in rs]
            bs = [r["best_seen_acc"] for r in rs]
            beats = sum(r["found_acc"] > r["best_seen_acc"] for r in rs)
            n_val = rs[0]["n_val"]
            rows.append(
                [
                    f"{n_train} + {n_val}",
                    f"{lam:g}",
                    f"{statistics.median(fa):.2f}",
                    f"{min(fa):.2f} – {max(fa):.2f}",
                    f"{statistics.median(ff):.2f}",
                    f"{statistics.median(bt):.2f}",
                    f"{statistics.median(bs):.2f}",
                    f"{beats}/{len(rs)}",
                    f"{statistics.median([r['test_kendall'] for r in rs]):.3f}",
                ]
            )
    table = _md_table(
        [
            "train + val cells",
            "λ",
            "found Acc % (median)",
            "found Acc range",
            "found MFLOPs (median)",
            "best Acc in train cells (median)",
            "best Acc in train+val cells (median)",
            "seeds where found > best seen",
            "predictor test τ (median)",
        ],
        rows,
    )
    per_seed_table = _nb201_per_seed_table(nb)
    s = nb["start"]
    return _NB201_TEXT.format(
        s=s,
        nb=nb,
        n_seeds=len(nb["seeds"]),
        paper=PAPER_NB201,
        table=table,
        per_seed_table=per_seed_table,
    )


def _nb201_per_seed_table(nb: dict[str, Any]) -> str:
    per_seed = []
    for r in nb["runs"]:
        if r["n_train"] == 2000 and r["lam"] in (0.5, 0.2):
            per_seed.append(
                [
                    f"{r['lam']:g}",
                    r["seed"],
                    f"{r['found_acc']:.2f}",
                    f"{r['found_flops']:.2f}",
                    " → ".join(f"{a:.1f}" for a in r["steps_acc"]),
                    f"{r['best_seen_acc']:.2f} @ {r['best_seen_flops']:.2f}",
                ]
            )
    return _md_table(
        [
            "λ",
            "seed",
            "found Acc %",
            "found MFLOPs",
            "Acc at steps 0..7",
            "best seen (train+val) Acc @ MFLOPs",
        ],
        per_seed,
    )


def sweep_section(sw: dict[str, Any]) -> str:
    rows = []
    for strategy in STRATEGIES:
        for lam in sw["lambdas"]:
            rs = [r for r in sw["runs"] if r["strategy"] == strategy and r["lam"] == lam]
            srcs = sorted({r["true_source"] for r in rs})
            rows.append(
                [
                    strategy,
                    f"{lam:g}",
                    _fmt(*mean_sd([r["flops_g"] for r in rs]), nd=3),
                    _fmt(*mean_sd([r["flops_g_512x1024"] for r in rs]), nd=1),
                    _fmt(*mean_sd([r["params_m"] for r in rs]), nd=2),
                    _fmt(*mean_sd([r["predicted_miou"] for r in rs])),
                    _fmt(*mean_sd([r["true_miou"] for r in rs])),
                    "/".join(srcs),
                    _fmt(*mean_sd([r["table_best_at_flops"] for r in rs])),
                ]
            )
    table = _md_table(
        [
            "strategy",
            "λ",
            "GFLOPs (128x128, table column)",
            "GFLOPs (512x1024, seg head)",
            "params (M)",
            "predicted mIoU",
            "oracle mIoU",
            "source",
            "best table mIoU at ≤ these FLOPs",
        ],
        rows,
    )
    seed0 = _sweep_seed0_table(sw)
    paper = _md_table(
        ["paper model", "λ", "strategy", "GFLOPs (512x1024)", "mIoU (retrained)"],
        [[n, lam, st, fl, m] for n, lam, st, fl, m in PAPER_TABLE2],
    )
    fid = sw["oracle_fidelity"] or {}
    st = sw["start"]
    return f"""## 3. λ sweep on seg (shape of paper Table 2)

From the paper's start `{st["code"]}` ({st["flops_g"]:.3f} GFLOPs at 128x128,
{st["flops_g_512x1024"]:.1f} at 512x1024; its table mIoU {st["true"]["metrics"]["mIoU"]:.2f}),
70 iterations, exact FLOPs term, predictors of seeds {", ".join(map(str, sw["seeds"]))}
(2,000 + 500 codes); mean ± sd over the seeds. FLOPs are exact (closed form, thop count).
"Oracle mIoU" is the table's value when the found code is in NAS-Bench-MR and otherwise the
surrogate oracle's estimate (gradient-boosted trees on the whole table, a different model
family from the predictor); its held-out fidelity on seg: Spearman
{fid.get("spearman", float("nan")):.3f}, Kendall {fid.get("kendall", float("nan")):.3f},
MAE {fid.get("mae", float("nan")):.2f} ({fid.get("folds")}-fold CV). Source `surrogate`
means none of the found codes is in the table. The last column is the best measured mIoU
among the 2,507 table codes whose FLOPs do not exceed the found code's: what picking from
the table alone would give at that budget.

{table}

The paper's Table 2 rows (its mIoU comes from retraining each found model on Cityscapes,
which no table or surrogate here reproduces; compare the FLOPs and the direction of the
trade-off, not the mIoU levels):

{paper}

Found codes, seed 0:

{seed0}
"""


def _sweep_seed0_table(sw: dict[str, Any]) -> str:
    return _md_table(
        ["strategy", "λ", "found code (seed 0)", "GFLOPs 512x1024", "predicted", "oracle"],
        [
            [
                r["strategy"],
                f"{r['lam']:g}",
                f"`{r['code']}`",
                f"{r['flops_g_512x1024']:.1f}",
                f"{r['predicted_miou']:.2f}",
                f"{r['true_miou']:.2f} ± {r['true_miou_std']:.2f}",
            ]
            for r in sw["runs"]
            if r["seed"] == 0
        ],
    )


def shortfalls(r: dict[str, Any]) -> str:
    """Bullet points comparing the measured numbers with the paper's, computed from them."""
    out: list[str] = []
    if r.get("quality"):
        out += _quality_shortfalls(r["quality"])
    if r.get("nb201"):
        out += _nb201_shortfalls(r["nb201"])
    if r.get("sweep"):
        out += _sweep_shortfalls(r["sweep"])
    return "\n".join(out)


def _quality_shortfalls(q: dict[str, Any]) -> list[str]:
    out: list[str] = []
    items = []
    for setting, d in q["settings"].items():
        if d["paper_table6"] is None:
            continue
        p = d["paper_summary"]["mae"][0]
        h = d["heldout_select_summary"]["mae"][0]
        items.append(f"{setting} {p:.2f} / {h:.2f} vs {d['paper_table6']:.2f}")
    out.append(
        "- **Predictor MAE** (paper protocol / held-out with separate selection vs paper "
        "Table 6): " + "; ".join(items) + ". Where ours is higher, the paper's number is "
        "not reproduced by this predictor and training recipe; the paper does not give "
        "its split seeds, and REFERENCE-FIGURES.md measured the upstream code at 0.752 on "
        "seg with its own 80/20 split. The upstream code itself, rerun on these tables "
        "with its own split and protocol, misses Table 6 on five of the six settings by "
        'similar margins (`benchmarks/results/predictor-mae.md`, section "The reference '
        "implementation's own figures\")."
    )
    return out


def _nb201_shortfalls(nb: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def med(n_train: int, lam: float, key: str) -> float:
        return statistics.median(
            x[key] for x in nb["runs"] if x["n_train"] == n_train and x["lam"] == lam
        )

    by_lam = {lam: med(2000, lam, "found_acc") for lam in nb["lambdas"]}
    best_lam = max(by_lam, key=lambda k: by_lam[k])
    seen = med(2000, best_lam, "best_seen_acc")
    settle = [
        next(k for k, c in enumerate(x["steps_rows"]) if c == x["steps_rows"][-1])
        for x in nb["runs"]
        if x["n_train"] == 2000
    ]
    moved01 = sum(x["moved"] for x in nb["step01_runs"])
    diff = by_lam[best_lam] - seen
    verdict = (
        f"{diff:+.2f} points: propagation does not beat simply taking the best cell it "
        "was trained on"
        if diff <= 0.1
        else f"{diff:+.2f} points: propagation adds a little beyond its training data"
    )
    out.append(
        f"- **NAS-Bench-201**: at the paper's default λ 0.5 the median found cell has "
        f"{by_lam.get(0.5, float('nan')):.2f} % at {med(2000, 0.5, 'found_flops'):.2f} "
        f"MFLOPs (paper: 46.8 % at 90.36; λ not stated there). The best λ here (picked "
        f"with the table's accuracies, so optimistic), {best_lam:g}, gives a median "
        f"{by_lam[best_lam]:.2f} % at {med(2000, best_lam, 'found_flops'):.2f} MFLOPs, "
        f"against a median best of {seen:.2f} % among the 2,500 cells the predictor was "
        f"trained and validated on ({verdict}). The cell stops changing after a median of "
        f"{statistics.median(settle):.0f} step(s), at most {max(settle)} (the paper shows "
        f"6 steps with oscillation in steps 2-4). With upstream's 10x smaller target step "
        f"(0.1) the cell moved away from the start in {moved01} of "
        f"{len(nb['step01_runs'])} runs: 10 iterations between arg-max resets are too few "
        "for any edge to flip."
    )
    return out


def _sweep_shortfalls(sw: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def mean(strategy: str, lam: float, key: str) -> float:
        return statistics.fmean(
            x[key] for x in sw["runs"] if x["strategy"] == strategy and x["lam"] == lam
        )

    rows = []
    for name, lam, strategy, fl, miou in PAPER_TABLE2:
        if lam in sw["lambdas"]:
            rows.append(
                f"{name}: {mean(strategy, lam, 'flops_g_512x1024'):.1f} G vs {fl} G "
                f"(oracle mIoU {mean(strategy, lam, 'true_miou'):.2f} vs retrained {miou})"
            )
    off_table = sum(x["true_source"] != "table" for x in sw["runs"])
    out.append(
        "- **λ sweep on seg**: " + "; ".join(rows) + f". {off_table} of "
        f"{len(sw['runs'])} found codes are outside the table, so their mIoU is a "
        "surrogate estimate (fidelity above), not a measurement, and nothing here "
        "retrains a model as the paper's Table 2 does."
    )
    cont = statistics.fmean(x["true_miou"] for x in sw["runs"] if x["strategy"] == "continuous")
    wta = statistics.fmean(
        x["true_miou"] for x in sw["runs"] if x["strategy"] == "winner_takes_all"
    )
    optimism = statistics.fmean(x["predicted_miou"] - x["true_miou"] for x in sw["runs"])
    out.append(
        f"- The predictor rates its own found codes {optimism:+.2f} mIoU points above the "
        "oracle on average: propagation climbs into regions where the predictor "
        "over-estimates (it is evaluated off its training distribution), so predicted "
        "gains are not realised gains."
    )
    gaps = []
    for strategy in STRATEGIES:
        for lam in sw["lambdas"]:
            g = mean(strategy, lam, "true_miou") - mean(strategy, lam, "table_best_at_flops")
            gaps.append(f"{'cont' if strategy == 'continuous' else 'WTA'} λ {lam:g}: {g:+.2f}")
    out.append(
        f"- Averaged over λ and seeds, continuous codes reach an oracle mIoU of {cont:.2f} "
        f"and winner-takes-all codes {wta:.2f}. Oracle mIoU of the found code minus the "
        "best *measured* mIoU among table codes with at most its FLOPs (negative: the "
        "table already holds a better code at that budget): " + "; ".join(gaps) + ". The "
        "large positive values sit at small FLOPs, where the table has no code that "
        "good: that is where the surrogate extrapolates furthest, so those gains are "
        "unverified estimates, not measurements."
    )
    return out


def write_readme(out: Path, runner: Any, figures: list[str], wall: float) -> Path:
    r = runner.results
    m = r["machine"]
    fit_min = sum(f["fit_time"] for f in runner.fits.values()) / 60
    n_fresh = sum(not f["cached"] for f in runner.fits.values())
    parts = [
        "# Reproduction of the NCP paper's numbers with ncp-hpo",
        "",
        f"Generated by `python benchmarks/reproduce_paper.py` on {r['date']} "
        f"(ncp-hpo {m['ncp_hpo']}, torch {m['torch']}, Python {m['python']}).",
        f"Environment: {m.get('environment', 'not recorded')}.",
        f"Machine: {m['cpu']}, {m['cores']} cores visible "
        f"(load average at start {m['load_average_at_start']}); CPU only. "
        f"Total wall time {wall / 60:.1f} min; per section: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in runner.timings.items())
        + f". {len(runner.fits)} predictors, {fit_min:.1f} min of training in total as "
        f"timed when each was fitted; {n_fresh} of them trained in this run, "
        "the rest loaded from the `ncp-hpo search` cache (so a rerun's wall time is mostly "
        "propagation and evaluation). Each propagation (70 iterations) takes well under a "
        "second; see results.json (`propagation_s`).",
        "",
        f"Predictors: the paper's MLP (256 shared, 128 per head, dropout 0.5, swish), "
        f"smooth-L1, Adam, one-cycle lr 0.01, batch 128, {runner.epochs} epochs, heads for the "
        "main metric and FLOPs. Propagation: `ncp_hpo.propagation.propagate` with the "
        "paper's defaults (lr 3, 70 iterations, targets p + 1 / f - 1 reset every iteration).",
        "",
    ]
    if "quality" in r:
        parts.append(quality_section(r["quality"]))
    if "nb201" in r:
        parts.append(nb201_section(r["nb201"]))
    if "sweep" in r:
        parts.append(sweep_section(r["sweep"]))
    if figures:
        parts.append("## Figures\n")
        parts += [f"![{f}]({f})\n" for f in figures]
    if "summary" in r:
        parts.append("## Where this falls short of the paper\n\n" + r["summary"] + "\n")
    path = out / "README.md"
    path.write_text("\n".join(parts))
    return path
