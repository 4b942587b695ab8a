"""NCP as an Ax generation strategy (Sobol initialisation -> NCP) on NAS-Bench-201.

    python examples/ax_quickstart.py [--trials 40] [--seed 0]

The Ax ``Client`` runs the ask-tell loop; the benchmark table is the objective. Ax's INFO
lines are turned off (``quiet_ax_logging``); warnings still show.
"""

from __future__ import annotations

import argparse

from ncp_hpo import load_benchmark
from ncp_hpo.samplers import quiet_ax_logging
from ncp_hpo.spaces import NB201Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--init", type=int, default=10, help="Sobol trials before NCP")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quiet_ax_logging()  # before the first Ax import: Ax logs at INFO while it loads

    from ax.api.client import Client

    from ncp_hpo.samplers import count_fallback_trials, ncp_generation_strategy

    table = load_benchmark("nas-bench-201")
    space = NB201Space()
    client = Client(random_seed=args.seed)
    client.configure_experiment(name="nb201-ncp", parameters=space.ax_parameters())
    client.configure_optimization(objective="acc")
    client.set_generation_strategy(ncp_generation_strategy(space, n_init=args.init, seed=args.seed))

    done = 0
    while done < args.trials:  # a call may return fewer trials than asked: loop
        for index, params in client.get_next_trials(max_trials=1).items():
            acc = table.query(space.from_params(params))["Acc"]
            client.complete_trial(trial_index=index, raw_data={"acc": acc})
            done += 1

    best_params, _, index, _ = client.get_best_parameterization(use_model_predictions=False)
    code = space.from_params(best_params)
    print(f"best accuracy {table.query(code)['Acc']:.2f}% (trial {index}) after {done} trials")
    print(f"best cell {space.encode(code)}")
    print(f"trials by generator: {count_fallback_trials(client)}")


if __name__ == "__main__":
    main()
