"""Multi-objective NCP: accuracy up, FLOPs down, on NAS-Bench-201; plots the Pareto front.

python examples/multi_objective.py [--trials 80] [--out outputs/pareto.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna

from ncp_hpo import NCPSampler, load_benchmark
from ncp_hpo.spaces import NB201Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/pareto.png")
    args = parser.parse_args()

    table = load_benchmark("nas-bench-201")
    space = NB201Space()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        row = table.query(space.suggest(trial))
        return row["Acc"], row["flops"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=NCPSampler(space=space, seed=args.seed)
    )
    study.set_metric_names(["accuracy (%)", "MFLOPs"])
    study.optimize(objective, n_trials=args.trials)

    ax = optuna.visualization.matplotlib.plot_pareto_front(study)
    ax.figure.set_size_inches(7, 5)
    ax.set_title(f"NCPSampler on NAS-Bench-201: {len(study.best_trials)} Pareto-optimal cells")
    plt.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # outputs/ is git-ignored
    plt.savefig(args.out, dpi=120)
    for t in sorted(study.best_trials, key=lambda t: t.values[1]):
        print(
            f"{t.values[0]:6.2f}%  {t.values[1]:7.2f} MFLOPs  "
            f"{space.encode(space.from_params(t.params))}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
