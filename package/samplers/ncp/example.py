"""Run NCP from OptunaHub on the NAS-Bench-201 cell space with a toy objective.

The objective scores a cell without training it (a fixed value per operation and edge), so the
example needs no benchmark data and finishes in seconds on a CPU. Replace it with a real
accuracy (a trained network or the NAS-Bench-201 table) for a real search.
"""

from __future__ import annotations

import optuna
import optunahub

# 0: none, 1: skip_connect, 2: nor_conv_1x1, 3: nor_conv_3x3, 4: avg_pool_3x3
OP_SCORE = (0.0, 1.0, 2.0, 3.0, 0.5)

test_local = True
if test_local:
    # From a checkout of ncp-hpo (or of the optunahub-registry holding this package).
    module = optunahub.load_local_module(package="samplers/ncp", registry_root="./package")
else:
    module = optunahub.load_module(package="samplers/ncp")

space = module.NB201Space()


def objective(trial: optuna.Trial) -> float:
    cell = space.suggest(trial)  # one categorical parameter per edge
    ops = space.to_indices(cell)  # op index per edge, shape (6,)
    return float(sum(OP_SCORE[int(op)] for op in ops))


sampler = module.NCPSampler(space=space, n_startup_trials=10, seed=0)
study = optuna.create_study(direction="maximize", sampler=sampler)
study.optimize(objective, n_trials=30)
print(f"best score {study.best_value:.1f} of {6 * max(OP_SCORE):.1f}: {study.best_params}")
