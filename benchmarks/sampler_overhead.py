"""Per-trial overhead of the samplers: median ``sample_relative`` time at 100 and 500
completed trials, NCP and the baselines beside Optuna's TPESampler and GPSampler, in one run.

Each measurement adds one completed trial to the study (so every sampler refits what it
refits in a real study: NCP/NetAdapt/Neural Predictor warm-refit their predictor, GP refits
its kernel) and then times one ``sample_relative`` call. The median over ``--repeats``
rounds is reported, plus the first (cold) call, which includes the first predictor fit.

    python benchmarks/sampler_overhead.py [--repeats 5] [--sizes 100 500] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import create_trial

from ncp_hpo.benchmarks import BenchmarkTable, load_benchmark
from ncp_hpo.samplers import NCPSampler, NetAdaptSampler, NeuralPredictorSampler


def _samplers(space) -> dict[str, Callable[[], optuna.samplers.BaseSampler]]:
    return {
        "NCPSampler": lambda: NCPSampler(space=space, seed=0),
        "NetAdaptSampler": lambda: NetAdaptSampler(space=space, seed=0),
        "NeuralPredictorSampler": lambda: NeuralPredictorSampler(space=space, seed=0),
        "TPESampler": lambda: optuna.samplers.TPESampler(seed=0),
        "GPSampler": lambda: optuna.samplers.GPSampler(seed=0),
    }


def _frozen(table: BenchmarkTable, row: int) -> optuna.trial.FrozenTrial:
    space = table.space
    return create_trial(
        params=space.to_params(table.codes[row]),
        distributions=space.optuna_distributions(),
        value=float(table.metrics[table.main_metric][row]),
    )


def measure(
    table: BenchmarkTable, make: Callable[[], optuna.samplers.BaseSampler], n: int, repeats: int
) -> tuple[float, float]:
    """(cold first call, median warm call) seconds of sample_relative at ``n`` trials."""
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(table))[: n + repeats + 1]
    sampler = make()
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials([_frozen(table, r) for r in rows[:n]])
    times = []
    for k in range(repeats + 1):
        trial = study.ask()
        frozen = study._storage.get_trial(trial._trial_id)
        space = sampler.infer_relative_search_space(study, frozen)
        t0 = time.perf_counter()
        sampler.sample_relative(study, frozen, space)
        times.append(time.perf_counter() - t0)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        study.add_trial(_frozen(table, rows[n + k]))
    return times[0], statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--benchmarks", nargs="+", default=["nas-bench-201", "seg"])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print("| benchmark | sampler | trials | cold first call (s) | median per trial (s) |")
    print("|---|---|---:|---:|---:|")
    for name in args.benchmarks:
        table = load_benchmark(name, data_dir=args.data_dir)
        for label, make in _samplers(table.space).items():
            for n in args.sizes:
                cold, warm = measure(table, make, n, args.repeats)
                print(f"| {name} | {label} | {n} | {cold:.3f} | {warm:.3f} |", flush=True)


if __name__ == "__main__":
    main()
