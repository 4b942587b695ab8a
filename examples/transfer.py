"""Cross-task transfer: a predictor fitted on classification (cls-50-1000) is the prior of
an NCP search on segmentation (seg). The sampler re-scales it to mIoU and fine-tunes a copy
on the seg trials as they complete; the fine-tune takes over once it predicts new trials
better than the prior.

    python examples/transfer.py [--trials 30]

The seg objective is the NAS-Bench-MR table where a code is in it, else the surrogate
oracle (a gradient-boosted ensemble fitted on the whole seg table; its held-out
fidelity is printed).
"""

from __future__ import annotations

import argparse

import optuna

from ncp_hpo import NCPSampler, load_benchmark
from ncp_hpo.benchmarks import BenchmarkObjective
from ncp_hpo.predictor import fit_setting_predictor
from ncp_hpo.spaces import MultiResolutionSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    prior, info = fit_setting_predictor(load_benchmark("cls-50-1000"), seed=args.seed)
    print(f"cls-50-1000 prior: test MAE {info['test_score'].mae['top1']:.2f} top-1")

    objective = BenchmarkObjective("seg")  # mIoU, maximised
    print(f"seg oracle fidelity: {objective.oracle.fidelity.summary()}")
    sampler = NCPSampler(space=MultiResolutionSpace(), prior=prior, online=True, seed=args.seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=args.trials)

    space = MultiResolutionSpace()
    best = space.from_params(study.best_params)
    print(
        f"best seg mIoU {study.best_value:.2f} ({study.best_trial.user_attrs['source']}) "
        f"at {space.flops(best, convention='thop') / 1e9:.2f} GFLOPs"
    )
    print(f"code {space.encode(best)}")
    print(f"first trial (propagated from the cls prior): {study.trials[0].value:.2f} mIoU")


if __name__ == "__main__":
    main()
