"""Same results, bit for bit: run a fixed set of ``ncp-hpo`` commands and record (or check)
every number they produce, exactly.

    python benchmarks/golden.py --check            # compare with benchmarks/results/golden.json
    python benchmarks/golden.py --record           # rewrite the record (only on purpose)
    python benchmarks/golden.py --check --only search,train

The commands run as a user runs them (``python -m ncp_hpo.cli ...`` in a subprocess, outputs
in a temporary folder), and the numbers are read back from what they write: the Optuna study
databases (every trial's code and value, full float precision), ``trajectory.json``,
``paper_protocol.json`` and the MLflow store. Nothing here imports the package's internals,
so the check survives any reorganisation of the code behind the commands.

The set: ``compare`` on nas-bench-201 and seg (2 seeds x 30 trials, default samplers),
``search --setting seg``, ``compare --protocol paper`` on seg (one seed), one
``train`` (cls, 1 epoch) and one real-training ``study`` (cls, 3 trials). Exits 1 on any
difference and prints where it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECORD = HERE / "results" / "golden.json"
START_CODE = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64"


def _cli(args: list[str], data_dir: str | None, tmp: Path) -> None:
    """Run one ``ncp-hpo`` command in ``tmp`` (MLflow's default artifact folder ``./mlruns``
    lands there, not in the caller's folder)."""
    env = dict(os.environ)
    if data_dir:
        env["NCP_HPO_DATA"] = str(Path(data_dir).resolve())
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "ncp_hpo.cli", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-3000:]}")


def _studies(folder: Path) -> dict[str, Any]:
    """Every study DB under ``folder``: trial number -> (state, params, values), exactly."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out: dict[str, Any] = {}
    for db in sorted(folder.rglob("*.db")):
        if db.name == "mlflow.db":
            continue
        url = f"sqlite:///{db}"
        for summary in optuna.get_all_study_summaries(url):
            study = optuna.load_study(study_name=summary.study_name, storage=url)
            out[summary.study_name] = [
                [t.number, t.state.name, {k: t.params[k] for k in sorted(t.params)}, t.values]
                for t in study.trials
            ]
    return out


def _mlflow_metrics(db: Path) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    out: dict[str, Any] = {}
    for exp in client.search_experiments():
        runs = []
        for run in client.search_runs([exp.experiment_id]):  # run names are random: not kept
            keep = {k: v for k, v in run.data.metrics.items() if not _is_timing(k)}
            runs.append({k: keep[k] for k in sorted(keep)})
        out[exp.name] = sorted(runs, key=lambda m: json.dumps(m, sort_keys=True))
    return out


_VOLATILE = {"created", "environment", "out", "path", "files", "git", "commit", "args", "key"}


def _is_timing(key: str) -> bool:
    """Wall-clock, throughput and machine fields differ run to run: not compared."""
    k = key.lower()
    return (
        k in _VOLATILE
        or k.endswith(("_s", "_ms", "per_s", "_sec", "_seconds"))
        or any(w in k for w in ("time", "wall", "elapsed", "throughput", "per_second"))
    )


def _strip_timing(x: Any) -> Any:
    """Drop wall-clock fields (they differ run to run) from a JSON document."""
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items() if not _is_timing(str(k))}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def _compare(tmp: Path, data_dir: str | None, benchmark: str) -> Any:
    """``compare`` of the default samplers, 2 seeds x 30 trials: every trial of every study."""
    out = tmp / f"compare-{benchmark}"
    args = f"compare --benchmark {benchmark} --trials 30 --seeds 2 --no-mlflow --quiet"
    _cli([*args.split(), "--out", str(out)], data_dir, tmp)
    return _studies(out)


def case_compare_nb201(tmp: Path, data_dir: str | None) -> Any:
    return _compare(tmp, data_dir, "nas-bench-201")


def case_compare_seg(tmp: Path, data_dir: str | None) -> Any:
    return _compare(tmp, data_dir, "seg")


def case_search(tmp: Path, data_dir: str | None) -> Any:
    out = tmp / "search"
    args = "search --setting seg --no-cache --no-plot --quiet"
    _cli([*args.split(), "--out", str(out)], data_dir, tmp)
    return _strip_timing(json.loads((out / "trajectory.json").read_text()))


def case_paper(tmp: Path, data_dir: str | None) -> Any:
    out = tmp / "paper"
    args = "compare --benchmark seg --protocol paper --seeds 1 --no-mlflow --quiet"
    _cli([*args.split(), "--out", str(out)], data_dir, tmp)
    return _strip_timing(json.loads((out / "paper_protocol.json").read_text()))


def case_train(tmp: Path, data_dir: str | None) -> Any:
    db = tmp / "train-mlflow.db"
    args = "train --task cls --epochs 1 --threads 1 --device cpu --seed 3 --quiet"
    _cli([*args.split(), "--code", START_CODE, "--mlflow-uri", f"sqlite:///{db}"], data_dir, tmp)
    return _mlflow_metrics(db)


def case_study(tmp: Path, data_dir: str | None) -> Any:
    db = tmp / "study.db"
    args = (
        "study --task cls --trials 3 --sampler ncp --epochs 1 --threads 1 --device cpu "
        "--seed 5 --quiet --no-mlflow --study-name golden"
    )
    _cli([*args.split(), "--storage", f"sqlite:///{db}"], data_dir, tmp)
    return _studies(tmp)["golden"] if db.exists() else None


CASES = {
    "compare-nb201": case_compare_nb201,
    "compare-seg": case_compare_seg,
    "search": case_search,
    "paper": case_paper,
    "train": case_train,
    "study": case_study,
}


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if len(out) >= 20:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: only in {'record' if k in a else 'this run'}")
            else:
                _diff(a[k], b[k], f"{where}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: record {str(a)[:120]} != this run {str(b)[:120]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="rewrite the record")
    mode.add_argument("--check", action="store_true", help="compare with the record")
    ap.add_argument("--only", default=None, help=f"comma-separated of {', '.join(CASES)}")
    ap.add_argument("--data-dir", default=os.environ.get("NCP_HPO_DATA"))
    ap.add_argument("--file", default=str(RECORD), help="record file (default: %(default)s)")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; allowed: {', '.join(CASES)}")
    path = Path(args.file)
    record: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ncp-golden-") as tmp:
        # an empty user cache, as in the tests: no cached score table, oracle or predictor
        # decides anything (e.g. NCP's zero-cost warm start needs a score table)
        os.environ["NCP_HPO_CACHE"] = str(Path(tmp) / "user-cache")
        for name in names:
            t0 = time.perf_counter()
            (Path(tmp) / name).mkdir()
            got = json.loads(json.dumps(CASES[name](Path(tmp) / name, args.data_dir)))
            took = time.perf_counter() - t0
            if args.record:
                record[name] = got
                print(f"{name}: recorded ({took:.0f} s)")
                continue
            diffs: list[str] = []
            if name not in record:
                diffs.append("not in the record")
            else:
                _diff(record[name], got, name, diffs)
            failed += bool(diffs)
            print(f"{name}: {'identical' if not diffs else 'DIFFERS'} ({took:.0f} s)")
            for d in diffs:
                print(f"  {d}")
    if args.record:
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
