"""Sampler cost on whole studies: NCPSampler's own CPU time per trial beside TPE's and GP's.

Each sampler runs one in-memory Optuna study of ``--trials`` trials on the exact
NAS-Bench-201 table (the objective is a table look-up, so nearly all time is the
sampler's). Every call Optuna makes into the sampler (``infer_relative_search_space``,
``sample_relative``, ``sample_independent``, ``before_trial``, ``after_trial``) is timed
with the thread's CPU clock and charged to its trial, so predictor refits, propagation and
history reads all count where they happen; a 15-trial warm-up study first keeps one-time
imports (torch's optimiser pulls in ``torch._dynamo`` on first use) out of the figures.
At each checkpoint ``N`` (``--at``) the script prints the mean own time per trial over
trials ``1..N`` (the whole run so far, refits amortised) and over trials ``N/2..N`` (the
current cost), and NCP's ratios to TPE and GP.
``ncp`` is the default ``NCPSampler(space=space, seed=seed)`` (local mode plus the
zero-cost warm start); ``ncp-paper``, ``ncp-guided``, ``ncp-local`` name a mode.
Goal (issue 22): the default NCP <= 10x TPE and <= 0.1x GP at 100, 300 and 1,000 trials.

    OMP_NUM_THREADS=1 python benchmarks/sampler_cost.py [--trials 1000] [--at 100 300 1000]
        [--samplers ncp ncp-paper ncp-guided ncp-local tpe gp] [--seed 0] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler

from ncp_hpo.benchmarks import load_benchmark
from ncp_hpo.samplers import NCPSampler

_MAKERS: dict[str, Callable[[Any, int], BaseSampler]] = {
    "ncp": lambda space, seed: NCPSampler(space=space, seed=seed),  # the default
    "ncp-paper": lambda space, seed: NCPSampler(space=space, seed=seed, mode="paper"),
    "ncp-guided": lambda space, seed: NCPSampler(space=space, seed=seed, mode="guided"),
    "ncp-local": lambda space, seed: NCPSampler(space=space, seed=seed, mode="local"),
    "tpe": lambda space, seed: optuna.samplers.TPESampler(seed=seed),
    "gp": lambda space, seed: optuna.samplers.GPSampler(seed=seed),
}


class TimedSampler(BaseSampler):
    """Delegates to ``inner`` and charges the CPU time of each call to its trial number."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.seconds: dict[int, float] = defaultdict(float)

    def _timed(self, number: int, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.seconds[number] += time.thread_time() - t0

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._timed(trial.number, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._timed(trial.number, self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._timed(trial.number, self.inner.sample_independent, study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._timed(trial.number, self.inner.before_trial, study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._timed(trial.number, self.inner.after_trial, study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def run(name: str, trials: int, seed: int, data_dir: str | None) -> np.ndarray:
    """Own CPU seconds of sampler ``name`` per trial, ``trials`` long."""
    table = load_benchmark("nas-bench-201", data_dir=data_dir)
    space = table.space
    acc = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    lookup = {
        np.asarray(c, dtype=np.int64).tobytes(): float(a)
        for c, a in zip(table.codes, acc, strict=True)
    }
    sampler = TimedSampler(_MAKERS[name](space, seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return lookup[np.asarray(space.suggest(trial), dtype=np.int64).tobytes()]

    study.optimize(objective, n_trials=trials)
    return np.array([sampler.seconds.get(i, 0.0) for i in range(trials)])


def _fmt(ms: float) -> str:
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def report(costs: dict[str, np.ndarray], at: Sequence[int]) -> list[str]:
    """Markdown rows: per checkpoint and sampler, mean ms per trial (whole run, last half)."""
    lines = [
        "| trials | sampler | ms/trial, trials 1..N | ms/trial, trials N/2..N "
        "| NCP / this (1..N) | NCP / this (N/2..N) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in at:
        rows = {k: v for k, v in costs.items() if len(v) >= n}
        ref = next((k for k in rows if k.startswith("ncp")), None)  # the first NCP mode listed
        for name, sec in rows.items():
            whole, recent = 1e3 * sec[:n].mean(), 1e3 * sec[n // 2 : n].mean()
            ratio = ["", ""]
            if ref is not None and not name.startswith("ncp"):
                ncp = rows[ref]
                ratio = [
                    f"{1e3 * ncp[:n].mean() / whole:.2f}",
                    f"{1e3 * ncp[n // 2 : n].mean() / recent:.2f}",
                ]
            lines.append(
                f"| {n} | {name} | {_fmt(whole)} | {_fmt(recent)} | {ratio[0]} | {ratio[1]} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--at", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--samplers", nargs="+", default=["ncp", "tpe", "gp"], choices=_MAKERS)
    parser.add_argument(
        "--gp-trials", type=int, default=None, help="stop GP earlier (it is the slow one)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    costs: dict[str, np.ndarray] = {}
    for name in args.samplers:
        run(name, 15, args.seed + 1, args.data_dir)  # warm-up: one-time imports are not per trial
        n = args.gp_trials if name == "gp" and args.gp_trials else args.trials
        t0 = time.perf_counter()
        costs[name] = run(name, n, args.seed, args.data_dir)
        print(f"{name}: {n} trials, {time.perf_counter() - t0:.0f} s wall", flush=True)
    print("\n".join(report(costs, [a for a in args.at if a <= args.trials])))


if __name__ == "__main__":
    main()
