"""Why a cross-task prior does (not) help NCPSampler: ranking quality and first proposals.

Three measurements on a target setting's table, for the prior fitted on a source setting
(``fit_setting_predictor``, seed 0, as ``transfer_compare.py``):

1. Rank correlation (Kendall tau, Spearman rho) of the prior's main-metric prediction with
   the target's measured main metric over every target table code, before any
   fine-tuning; against a predictor fitted from scratch on k random target codes
   (the paper-mode online predictor), the prior fine-tuned on the same k codes (100
   warm-started epochs, as NCPSampler fine-tuned a prior before the re-scaling) and the
   prior re-scaled to the target's units first (``recalibrate``, then the same 100
   epochs: NCPSampler's fine-tune now), for k = 5, 10, 20, each scored on the codes not
   used for fitting, over ``--repeats`` draws of the k codes.
2. From ``transfer_compare.py --json`` outputs: the true metric of the prior variant's
   first proposal against the scratch sampler's random start-up trials (percentile), and
   the anytime median best per variant.

    OMP_NUM_THREADS=1 nice python benchmarks/transfer_analysis.py --target seg \
        --runs benchmarks/results/transfer/seg-table.json --out benchmarks/results/transfer
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_compare import _variant_sampler, fit_prior

KS = (5, 10, 20)


def _rank(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(kendalltau(pred, y).statistic), float(spearmanr(pred, y).statistic)


def _main_pred(p: Any, codes: np.ndarray) -> np.ndarray:
    return np.asarray(p.predict(codes, as_dict=True)[p.main_metric_], dtype=float)


def rank_table(
    target: str, prior: Any, data_dir: str | None, repeats: int = 5, ks: Sequence[int] = KS
) -> list[dict[str, Any]]:
    """Rows ``{predictor, k, kendall, spearman}`` (mean over ``repeats``; k = 0: the prior)."""
    from ncp_hpo import load_benchmark
    from ncp_hpo.predictor import NeuralPredictor, fine_tune, recalibrate
    from ncp_hpo.search import NCPProposer

    table = load_benchmark(target, data_dir)
    codes = np.asarray(table.codes)
    y = np.asarray(table.metrics[table.main_metric], dtype=float)
    tau, rho = _rank(_main_pred(prior, codes), y)
    rows = [{"predictor": "prior (no fine-tune)", "k": 0, "kendall": tau, "spearman": rho}]
    params = dict(NCPProposer.predictor_defaults.predictor_params)  # paper mode's
    for k in ks:
        acc: dict[str, list[tuple[float, float]]] = {"scratch": [], "prior fine-tuned": []}
        for r in range(repeats):
            idx = np.random.default_rng(r).permutation(len(codes))
            fit, rest = idx[:k], idx[k:]
            scratch = NeuralPredictor(**{**params, "seed": r}).fit(codes[fit], {"y": y[fit]})
            acc["scratch"].append(_rank(_main_pred(scratch, codes[rest]), y[rest]))
            for name, rescale in (
                ("prior fine-tuned", False),
                ("prior re-scaled + fine-tuned", True),
            ):
                start = copy.deepcopy(prior)
                if rescale:
                    recalibrate(start, codes[fit], y[fit])
                tuned = fine_tune(start, codes[fit], y[fit], epochs=100, seed=r)
                acc.setdefault(name, []).append(_rank(_main_pred(tuned, codes[rest]), y[rest]))
        for name, vals in acc.items():
            a = np.asarray(vals)
            rows.append(
                {"predictor": name, "k": k, "kendall": float(a[:, 0].mean()),
                 "spearman": float(a[:, 1].mean()), "kendall_sd": float(a[:, 0].std())}
            )  # fmt: skip
    return rows


def takeover(
    target: str, prior: Any, data_dir: str | None, mode: str, seeds: Sequence[int], trials: int
) -> list[dict[str, Any]]:
    """Per seed of ``NCPSampler(prior=prior)`` (paper mode, as ``ncp+prior``): the trial
    count at which its fine-tune first replaced the re-scaled prior (``None``: never) and
    whether the fine-tune was in use after the last trial."""
    import optuna

    from ncp_hpo._numerics import deterministic_threads
    from ncp_hpo.benchmarks import BenchmarkObjective

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    objective = BenchmarkObjective(target, mode=mode, data_dir=data_dir)
    rows = []
    for seed in seeds:
        with deterministic_threads(1):
            sampler = _variant_sampler("ncp+prior", prior, seed, None)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=trials)
        t = sampler._source.transfer
        rows.append({"seed": seed, "takeover_n": t.takeover_n, "at_end": t.using_fine_tune})
    return rows


def prior_top(target: str, prior: Any, data_dir: str | None, top: int = 10) -> dict[str, float]:
    """The target's measured metric of the table codes the prior ranks highest, with their
    percentile within the table (what a perfect optimiser of the prior would find)."""
    from ncp_hpo import load_benchmark

    table = load_benchmark(target, data_dir)
    y = np.asarray(table.metrics[table.main_metric], dtype=float)
    order = np.argsort(-_main_pred(prior, np.asarray(table.codes)))
    pct = lambda v: float(np.mean(y < v) * 100)  # noqa: E731
    return {
        "table_best": float(y.max()), "table_median": float(np.median(y)),
        "prior_top1": float(y[order[0]]), "prior_top1_pct": pct(y[order[0]]),
        f"prior_top{top}_median": float(np.median(y[order[:top]])),
        f"prior_top{top}_best": float(y[order[:top]].max()),
        f"prior_top{top}_best_pct": pct(y[order[:top]].max()),
    }  # fmt: skip


def first_proposals(runs: dict[str, Any], startup: int = 10) -> list[dict[str, Any]]:
    """Per ``+prior`` variant: its first trial's metric, and the percentile of it within the
    scratch twin's first ``startup`` (random) trials over all seeds."""
    vals = {v: np.asarray(a, dtype=float) for v, a in runs["values"].items()}
    out = []
    pairs = [(v, v.split("+")[0]) for v in vals if v.endswith("prior")]
    for v, twin in pairs:
        if v not in vals or twin not in vals:
            continue
        rand = vals[twin][:, :startup].ravel()
        first = vals[v][:, 0]
        pct = [float(np.mean(rand < f) * 100) for f in first]
        out.append(
            {"variant": v, "first_median": float(np.median(first)),
             "first_unique": sorted({round(float(f), 3) for f in first}),
             "random_median": float(np.median(rand)), "percentile_median": float(np.median(pct))}
        )  # fmt: skip
    return out


def figures(
    target: str, rows: list[dict[str, Any]], runs: dict[str, Any] | None, out: Path
) -> None:
    """``<out>/<target>-rank.png`` and, with runs, ``<out>/<target>-<mode>-runs.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    prior_tau = rows[0]["kendall"]
    ax.axhline(prior_tau, color="k", ls="--", label="prior, no fine-tune")
    series = (("scratch", "C0"), ("prior fine-tuned", "C1"), ("prior re-scaled + fine-tuned", "C2"))
    for name, c in series:
        rs = [r for r in rows if r["predictor"] == name]
        ks, taus, sds = ([r[f] for r in rs] for f in ("k", "kendall", "kendall_sd"))
        ax.errorbar(ks, taus, yerr=sds, marker="o", color=c, label=name, capsize=3)
    ax.set_xlabel("target codes fitted on (k)")
    ax.set_ylabel("Kendall tau on the other table codes")
    ax.set_title(f"{target}: ranking quality of the predictor")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{target}-rank.png", dpi=110)
    plt.close(fig)
    if runs is None:
        return
    vals = {v: np.asarray(a, dtype=float) for v, a in runs["values"].items()}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (v, a) in enumerate(vals.items()):
        best = np.maximum.accumulate(a, axis=1)
        x = np.arange(1, a.shape[1] + 1)
        q1, med, q3 = np.percentile(best, [25, 50, 75], axis=0)
        a1.plot(x, med, color=f"C{i}", label=v, ls="-" if "prior" in v else "--")
        a1.fill_between(x, q1, q3, color=f"C{i}", alpha=0.12)
    a1.set_xlabel("trial")
    a1.set_ylabel(f"best {runs.get('metric', 'metric')} (median, IQR)")
    a1.set_title(f"{target} ({runs['mode']}): prior vs scratch")
    a1.legend(fontsize=8)
    if "ncp" in vals:
        a2.hist(vals["ncp"][:, :10].ravel(), bins=30, color="C0", alpha=0.6,
                label="scratch: random start-up trials 1-10")  # fmt: skip
    for i, v in enumerate(v for v in vals if v.endswith("+prior")):  # trial 1 of frozen = it
        for j, f in enumerate(vals[v][:, 0]):
            a2.axvline(f, color=f"C{i + 3}", lw=1, label=f"{v}: trial 1" if j == 0 else None)
    a2.set_xlabel("true metric of the trial")
    a2.set_title("prior's first proposal vs random start-up")
    a2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{target}-{runs['mode']}-runs.png", dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    from ncp_hpo.exceptions import NCPError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--source", default="cls-50-1000")
    ap.add_argument("--runs", action="append", default=[], help="transfer_compare.py --json file")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=".")
    ap.add_argument(
        "--takeover",
        type=int,
        default=0,
        metavar="N",
        help="also run ncp+prior on seeds 0..N-1 (--trials, --mode) and report when its "
        "fine-tune replaced the prior",
    )
    ap.add_argument("--mode", default="table", choices=("table", "surrogate"))
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        prior, info = fit_prior(args.source, args.target, args.data_dir)
        rows = rank_table(args.target, prior, args.data_dir, args.repeats)
    except (NCPError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"target {args.target}, prior {info}")
    print("| predictor | k | Kendall tau | Spearman rho |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['predictor']} | {r['k']} | {r['kendall']:.3f} | {r['spearman']:.3f} |")
    print(f"prior's top table codes: {prior_top(args.target, prior, args.data_dir)}")
    if args.takeover:
        seeds = range(args.takeover)
        rows_t = takeover(args.target, prior, args.data_dir, args.mode, seeds, args.trials)
        taken = sorted(r["takeover_n"] for r in rows_t if r["takeover_n"] is not None)
        print(
            f"ncp+prior ({args.mode}, {args.trials} trials, seeds 0..{args.takeover - 1}): "
            f"the fine-tune took over on {len(taken)} of {len(rows_t)} seeds "
            f"(at {taken} completed trials), in use after the last trial on "
            f"{sum(r['at_end'] for r in rows_t)}"
        )
    figures(args.target, rows, None, out)
    for path in args.runs:
        runs = json.loads(Path(path).read_text())
        figures(args.target, rows, runs, out)
        for f in first_proposals(runs):
            print(f"{runs['mode']}: {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
