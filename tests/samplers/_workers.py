"""A worker process for the multi-process tests (spawned, so it must be importable)."""

from __future__ import annotations

import sys

import optuna


def run_worker(storage: str, study_name: str, data_dir: str, n_trials: int, seed: int) -> None:
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.samplers import NCPSampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = load_benchmark("nas-bench-201", data_dir=data_dir)
    space = table.space
    sampler = NCPSampler(
        space=space,
        n_startup_trials=4,
        iterations=20,
        predictor_params={"epochs": 60},
        seed=seed,
    )
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return float(table.query(space.suggest(trial))["Acc"])

    study.optimize(objective, n_trials=n_trials)


if __name__ == "__main__":
    run_worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
