"""Regenerate ``benchmarks/results/``: the recorded head-to-head comparisons.

Runs ``ncp-hpo compare`` (through :func:`ncp_hpo.experiments.run_comparison`) on

* ``nas-bench-201`` (exact table): 100 trials, 10 seeds, the default samplers plus ``gp``;
* ``seg``, ``cls-50-1000``, ``video`` (surrogate oracle): 100 trials, ``--mr-seeds`` seeds
  (default 10), default samplers (``gp`` is 4-5x slower than NCP on this 27-dim space);

and the paper protocol (``--protocol paper``, Tables 2-4) on ``seg``. Each comparison
writes ``benchmarks/results/<benchmark>/`` (summary.md, summary.csv, runs.csv,
results.json, anytime.png); the Optuna studies stay in ``<benchmark>/studies/`` (git
ignored), so an interrupted run resumes where it stopped. ``benchmarks/results/README.md``
collects the headline tables.

    python benchmarks/run_comparisons.py --jobs 2                 # everything
    python benchmarks/run_comparisons.py --only nas-bench-201     # one comparison
    python benchmarks/run_comparisons.py --only paper             # paper protocol only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# run this checkout's package, even when another tree is installed in editable mode
sys.path.insert(0, str(RESULTS.parents[1]))
from ncp_hpo._numerics import pin_cpu_math  # noqa: E402

pin_cpu_math()  # before torch loads, as the ncp-hpo command does
MR_SETTINGS = ("seg", "cls-50-1000", "video")
DEFAULT = ("ncp", "netadapt", "neural-predictor", "random", "tpe")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="nas-bench-201,seg,cls-50-1000,video,paper")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--nb201-seeds", type=int, default=10)
    ap.add_argument("--mr-seeds", type=int, default=10)
    ap.add_argument("--paper-seeds", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--mlflow-uri", default=None, help="log to this MLflow store (default: off)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument(
        "--results",
        default=None,
        help="write here instead of this checkout's benchmarks/results (e.g. to run a clean "
        "clone's code and record into the working tree)",
    )
    args = ap.parse_args(argv)
    global RESULTS
    if args.results:
        RESULTS = Path(args.results).resolve()

    from ncp_hpo.experiments.compare import CompareConfig, run_comparison

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    timings: dict[str, float] = {}
    for bench in wanted:
        if bench == "paper":
            continue
        nb201 = bench == "nas-bench-201"
        cfg = CompareConfig(
            benchmark=bench,
            samplers=(*DEFAULT, "gp") if nb201 else DEFAULT,
            trials=args.trials,
            seeds=args.nb201_seeds if nb201 else args.mr_seeds,
            jobs=args.jobs,
            out=RESULTS / bench,
            data_dir=args.data_dir,
            mlflow=args.mlflow_uri is not None,
            mlflow_uri=args.mlflow_uri,
            progress=not args.quiet,
        )
        t0 = time.perf_counter()
        res = run_comparison(cfg)
        timings[bench] = time.perf_counter() - t0
        print(res.files["markdown"].read_text())
    if "paper" in wanted:
        from ncp_hpo._numerics import deterministic_threads
        from ncp_hpo.experiments.paper import run_paper_protocol

        t0 = time.perf_counter()
        with deterministic_threads():
            pres = run_paper_protocol(
                "seg",
                out=RESULTS / "paper-protocol",
                seeds=args.paper_seeds,
                data_dir=args.data_dir,
                mlflow=args.mlflow_uri is not None,
                mlflow_uri=args.mlflow_uri,
                progress=not args.quiet,
            )
        timings["paper"] = time.perf_counter() - t0
        print(pres.files["table2_md"].read_text())
    _write_index(timings)
    return 0


def _write_index(timings: dict[str, float]) -> None:
    """``results/README.md``: every recorded summary, in a fixed order."""
    parts = [
        "# Recorded comparisons",
        "",
        "Regenerate with `python benchmarks/run_comparisons.py --jobs 2` (resumes from the "
        "git-ignored `*/studies/` folders when present). Each folder holds `summary.md`, "
        "`summary.csv`, `runs.csv`, `results.json` and `anytime.png`; the paper protocol "
        "folder holds `paper_table2.md` (Table 2 shape), `paper_table3.md` (multi-task), "
        "`paper_table4.md` (transfer) with CSV/JSON twins.",
        "",
        "Every study has 100 trials; each header gives the seeds. NAS-Bench-201 (exact table) "
        "adds `gp`; the NAS-Bench-MR settings (seg, cls-50-1000, video) are evaluated by the "
        "surrogate oracle (fidelity in each header) with the default samplers.",
        "",
    ]
    for name in ("nas-bench-201", *MR_SETTINGS):
        md = RESULTS / name / "summary.md"
        if md.is_file():
            text = md.read_text().replace("# ", "## ", 1)
            parts += [text, f"![anytime]({name}/anytime.png)", ""]
    for name in ("paper_table2.md", "paper_table3.md", "paper_table4.md"):
        md = RESULTS / "paper-protocol" / name
        if md.is_file():
            parts += [md.read_text().replace("# ", "## ", 1), ""]
    if timings:
        parts += [
            "This regeneration took "
            + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + " (a rerun over finished studies only rewrites the reports; each header gives "
            "the wall time of the calls that ran the trials).",
            "",
        ]
    (RESULTS / "README.md").write_text("\n".join(parts))


if __name__ == "__main__":
    raise SystemExit(main())
