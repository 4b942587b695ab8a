"""Cross-task transfer in the loop: NCPSampler with a prior fitted on another setting
against the same sampler started from scratch (issue 11, goal 6).

The source predictor is fitted once (``fit_setting_predictor`` on the source table, seed 0,
the paper's 2,000 / 500 split). Each variant then runs one Optuna study per seed on the
target's :class:`~ncp_hpo.benchmarks.BenchmarkObjective` (``--mode table``: proposals
snapped to unused table codes, measured values; ``--mode surrogate``: the surrogate oracle
off the table). Variants (NCPSampler defaults otherwise):

* ``ncp`` / ``ncp-local``: from scratch (10 random start-up trials, then the paper / local
  mode on a predictor fitted on the study's trials);
* ``ncp+prior`` / ``ncp-local+prior``: ``prior=`` the source predictor, fine-tuned on every
  completed trial. With a prior NCPSampler's default ``n_startup_trials`` is 0: the first
  trial is already propagated from the prior, so no random start-up is left to shorten;
* ``ncp+frozen-prior`` / ``ncp-local+frozen-prior``: the prior as it is, never fine-tuned
  (``online=False``): a labelled row that separates what the prior knows from what
  fine-tuning on a handful of trials does to it.

Prints median [IQR] best at 10 and 20 trials, paired two-sided Wilcoxon (prior vs scratch,
same seed) and wins / ties / losses::

    OMP_NUM_THREADS=1 nice python benchmarks/transfer_compare.py --target seg \
        --source cls-50-1000 --mode table --seeds 20 --trials 20 --jobs 2 --json seg-table.json

``--first-seed`` runs another seed block; ``--pool A.json --pool B.json`` prints the table
of saved blocks with their seeds stacked (no new studies). Results and their reading:
``benchmarks/results/transfer.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCRATCH_OF = {
    "ncp+prior": "ncp",
    "ncp+frozen-prior": "ncp",
    "ncp-local+prior": "ncp-local",
    "ncp-local+frozen-prior": "ncp-local",
}
VARIANTS = (
    "ncp",
    "ncp+prior",
    "ncp+frozen-prior",
    "ncp-local",
    "ncp-local+prior",
    "ncp-local+frozen-prior",
)
MODES = ("table", "surrogate")
CHECKPOINTS = (10, 20)


@dataclass
class TransferResult:
    """Per-variant trial values of one target x mode.

    ``values[v]`` is ``seeds x trials`` (the main metric of each trial in order, higher is
    better); ``best(v)`` the running best of the same shape."""

    target: str
    source: str
    mode: str
    seeds: list[int]
    trials: int
    values: dict[str, np.ndarray] = field(default_factory=dict)
    prior_info: dict[str, Any] = field(default_factory=dict)

    def best(self, variant: str) -> np.ndarray:
        return np.maximum.accumulate(self.values[variant], axis=1)


def _variant_sampler(variant: str, prior: Any, seed: int, startup: int | None) -> Any:
    from ncp_hpo import NCPSampler
    from ncp_hpo.spaces import MultiResolutionSpace

    mode = "local" if variant.startswith("ncp-local") else "paper"
    uses_prior = variant.endswith("prior")
    return NCPSampler(
        space=MultiResolutionSpace(),
        mode=mode,
        prior=prior if uses_prior else None,
        online=not variant.endswith("frozen-prior"),
        n_startup_trials=startup if uses_prior else None,
        seed=seed,
    )


_OBJECTIVE: dict[tuple[str, str, str | None], Any] = {}
_PRIOR: dict[str, Any] = {}


def _study(job: dict[str, Any]) -> list[float]:
    """One study (a worker's unit): the main metric of each of ``trials`` trials."""
    import optuna

    from ncp_hpo._numerics import deterministic_threads
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.predictor import NeuralPredictor

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    key = (job["target"], job["mode"], job["data_dir"])
    if key not in _OBJECTIVE:
        _OBJECTIVE[key] = BenchmarkObjective(key[0], mode=key[1], data_dir=key[2])
    prior = None
    if job["variant"].endswith("prior"):
        if job["prior"] not in _PRIOR:
            _PRIOR[job["prior"]] = NeuralPredictor.load(job["prior"])
        prior = _PRIOR[job["prior"]]
    with deterministic_threads(1):
        sampler = _variant_sampler(job["variant"], prior, job["seed"], job["startup"])
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(_OBJECTIVE[key], n_trials=job["trials"])
    values = [t.value for t in study.trials]
    if any(v is None for v in values):
        raise RuntimeError(f"{job['variant']} seed {job['seed']}: a trial did not complete")
    return [float(v) for v in values if v is not None]


def fit_prior(source: str, target: str, data_dir: str | None, seed: int = 0) -> tuple[Any, dict]:
    """The source setting's predictor (``fit_setting_predictor``) and its test score."""
    from ncp_hpo import load_benchmark
    from ncp_hpo.predictor import fit_setting_predictor

    if source == target:
        raise ValueError(
            f"source and target are both {target!r}: a prior must come from another setting"
        )
    table = load_benchmark(source, data_dir)
    predictor, info = fit_setting_predictor(table, seed=seed)
    score = info["test_score"]
    return predictor, {
        "source": source,
        "seed": seed,
        "main_metric": table.main_metric,
        "test_mae": float(score.mae[table.main_metric]),
        "test_kendall": float(score.kendall_tau),
    }


def run_transfer(
    *,
    target: str,
    source: str = "cls-50-1000",
    mode: str = "table",
    seeds: Sequence[int] = tuple(range(10)),
    trials: int = 20,
    variants: Sequence[str] = VARIANTS,
    prior_startup: int | None = None,
    data_dir: str | None = None,
    jobs: int = 1,
    prior: Any = None,
) -> TransferResult:
    """Run every variant x seed study of ``trials`` trials on ``target`` in ``mode``.

    Args:
        prior_startup: ``n_startup_trials`` of the prior variants (``None``: the
            sampler's default, 0 with a prior).
        prior: a fitted source predictor (default: :func:`fit_prior` on ``source``).
        jobs: worker processes (each study runs on one thread).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    info: dict[str, Any] = {}
    if prior is None:
        prior, info = fit_prior(source, target, data_dir)
    result = TransferResult(target, source, mode, list(seeds), trials, prior_info=info)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(prior.save(Path(tmp) / "prior.safetensors"))
        jobs_list = [
            {"target": target, "mode": mode, "data_dir": data_dir, "variant": v, "seed": s,
             "trials": trials, "prior": path, "startup": prior_startup}
            for v in variants
            for s in seeds
        ]  # fmt: skip
        if jobs > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
                outs = list(pool.map(_study, jobs_list))
        else:
            outs = [_study(j) for j in jobs_list]
    for v in variants:
        rows = [o for j, o in zip(jobs_list, outs, strict=True) if j["variant"] == v]
        result.values[v] = np.asarray(rows, dtype=float)
    return result


def _cell(x: np.ndarray) -> str:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"{med:.2f} [{q1:.2f}, {q3:.2f}]"


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int, int]:
    """Two-sided Wilcoxon p of ``a`` vs ``b`` (zero differences dropped) and W/T/L of a."""
    from scipy.stats import wilcoxon

    d = a - b
    w, t, lo = int(np.sum(d > 1e-9)), int(np.sum(np.abs(d) <= 1e-9)), int(np.sum(d < -1e-9))
    p = 1.0 if w + lo == 0 else float(wilcoxon(a, b, zero_method="wilcox").pvalue)
    return p, w, t, lo


def summary_rows(result: TransferResult, at: Sequence[int] = CHECKPOINTS) -> list[dict[str, Any]]:
    """One row per variant: median [IQR] best at each checkpoint and, for a ``+prior``
    variant, the paired test against its scratch twin."""
    rows = []
    for v, vals in result.values.items():
        best = result.best(v)
        row: dict[str, Any] = {"variant": v}
        for k in at:
            if k > best.shape[1]:
                continue
            row[f"best@{k}"] = _cell(best[:, k - 1])
            row[f"median@{k}"] = float(np.median(best[:, k - 1]))
            twin = SCRATCH_OF.get(v)
            if twin in result.values:
                p, w, t, lo = paired(best[:, k - 1], result.best(twin)[:, k - 1])
                row[f"p@{k}"], row[f"wtl@{k}"] = p, f"{w}/{t}/{lo}"
        row["first"] = _cell(vals[:, 0])
        rows.append(row)
    return rows


def markdown(result: TransferResult, at: Sequence[int] = CHECKPOINTS) -> str:
    """The summary as a markdown table."""
    at = [k for k in at if k <= result.trials]
    head = ["variant", "trial 1"]
    for k in at:
        head += [f"best@{k}", f"p@{k} vs scratch", f"W/T/L@{k}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary_rows(result, at):
        cells = [f"`{r['variant']}`", r["first"]]
        for k in at:
            p = r.get(f"p@{k}")
            cells += [r[f"best@{k}"], "" if p is None else f"{p:.3g}", r.get(f"wtl@{k}", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled(paths: Sequence[str]) -> TransferResult:
    """The runs saved by ``--json`` in ``paths`` (same target, source and mode; disjoint
    seed blocks) as one result with their seeds stacked in the given order."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    keys = {(r["target"], r["source"], r["mode"]) for r in runs}
    if len(keys) != 1:
        raise ValueError(f"--pool files differ in (target, source, mode): {sorted(keys)}")
    variants = [v for v in runs[0]["values"] if all(v in r["values"] for r in runs)]
    values = {
        v: np.vstack([np.asarray(r["values"][v], dtype=float) for r in runs]) for v in variants
    }
    target, source, mode = keys.pop()
    seeds = [s for r in runs for s in r.get("seeds", [])]
    n, trials = values[variants[0]].shape
    result = TransferResult(target, source, mode, seeds or list(range(n)), trials)
    result.values = values
    return result


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--target",
        required=True,
        choices=("seg", "video", "cls-50-1000", "cls-10-1000", "cls-50-100", "seg-4x"),
    )
    ap.add_argument("--source", default="cls-50-1000")
    ap.add_argument("--mode", default="table", choices=MODES)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--prior-startup",
        type=int,
        default=None,
        help="n_startup_trials of the +prior variants (default: the sampler's, 0)",
    )
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the per-trial values here")
    ap.add_argument(
        "--pool",
        action="append",
        default=[],
        help="only print the table of these --json files, seeds stacked",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ncp_hpo._numerics import environment_line
    from ncp_hpo.exceptions import NCPError

    ap = _parser()
    args = ap.parse_args(argv)
    if args.pool:
        try:
            result = pooled(args.pool)
        except (ValueError, OSError, KeyError) as exc:
            print(f"error: --pool: {exc}", file=sys.stderr)
            return 2
        print(f"{result.target} ({result.mode}), prior from {result.source}; pooled {args.pool}")
        print(markdown(result))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    if args.seeds < 2 or args.trials < 1 or args.jobs < 1 or args.first_seed < 0:
        ap.error("--seeds must be >= 2, --trials and --jobs >= 1, --first-seed >= 0")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    try:
        result = run_transfer(
            target=args.target, source=args.source, mode=args.mode,
            seeds=seeds, trials=args.trials, variants=variants,
            prior_startup=args.prior_startup, data_dir=args.data_dir, jobs=args.jobs,
        )  # fmt: skip
    except (NCPError, ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"$ python benchmarks/transfer_compare.py {shown}")
    print(f"environment: {environment_line()}")
    print(f"target {args.target} ({args.mode}), source prior {result.prior_info}")
    print(f"seeds {seeds[0]}..{seeds[-1]}, {args.trials} trials; cells: median [25th, 75th] best")
    print(markdown(result))
    if args.json:
        payload = {"target": args.target, "source": args.source, "mode": args.mode,
                   "prior": result.prior_info, "seeds": list(seeds),
                   "values": {v: a.tolist() for v, a in result.values.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
