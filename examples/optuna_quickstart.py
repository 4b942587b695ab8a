"""NCP as an Optuna sampler on NAS-Bench-201 (the table is the objective).

    python examples/optuna_quickstart.py [--trials 100] [--seed 0]

The objective suggests a whole cell with ``space.suggest(trial)`` and looks its ImageNet16-120
accuracy up in the benchmark table (``ncp-hpo data fetch`` or ``NCP_HPO_DATA`` provides it).
"""

from __future__ import annotations

import argparse

import optuna

from ncp_hpo import NCPSampler, load_benchmark
from ncp_hpo.spaces import NB201Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = load_benchmark("nas-bench-201")
    space = NB201Space()

    def objective(trial: optuna.Trial) -> float:
        cell = space.suggest(trial)  # one categorical parameter per edge
        return table.query(cell)["Acc"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=NCPSampler(space=space, seed=args.seed)
    )
    study.optimize(objective, n_trials=args.trials)

    best = space.from_params(study.best_params)
    print(
        f"best accuracy {study.best_value:.2f}% after {args.trials} trials "
        f"(table optimum {table.metrics['Acc'].max():.2f}%)"
    )
    print(f"best cell {space.encode(best)}")


if __name__ == "__main__":
    main()
