"""NAS-Bench-201 (exact table) sampler runs on a chosen seed range, in memory, for development.

``ncp-hpo compare`` always uses seeds ``0..N-1``; issue 11 develops on seeds 100..119 and
reports seeds 0..19 once. This script runs 100-trial in-memory studies (the objective is a
table look-up, as in ``compare --mode exact``) and prints the median best at 25 / 50 / 100
trials, the mean at 100, how many runs reached the table optimum, and the median CPU time
per trial (sampler and look-up together). ``--kw`` passes NCPSampler keyword arguments
(JSON), e.g. ``'{"kappa": 1.0}'`` or ``'{"mode": "paper"}'``; a key ``p_NAME`` sets a field
of the sampler's proposer and ``s_NAME`` one of its predictor source (development only);
samplers are built by :func:`ncp_hpo.samplers.make_sampler`.

    OMP_NUM_THREADS=1 python benchmarks/nb201_dev_seeds.py ncp --seeds 100-119 [--kw JSON]
    samplers: the registry's Optuna samplers (ncp, ncp-guided, ncp-local, netadapt, ...)
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import optuna


def _sampler(name: str, space: Any, seed: int, kw: dict[str, Any]) -> optuna.samplers.BaseSampler:
    """The registry's sampler ``name``; ``kw`` goes to the NCP samplers only."""
    from ncp_hpo.samplers import make_sampler

    return make_sampler(name, space=space, seed=seed, params=kw if name.startswith("ncp") else None)


def _override(sampler: optuna.samplers.BaseSampler, fields: dict[str, Any]) -> None:
    """Set ``p_NAME`` on the sampler's proposer and ``s_NAME`` on its predictor source."""
    for key, value in fields.items():
        target = getattr(sampler, "_proposer" if key.startswith("p_") else "_source")
        if not hasattr(target, key[2:]):
            raise SystemExit(f"--kw {key}: {type(target).__name__} has no field {key[2:]!r}")
        setattr(target, key[2:], value)


def run_one(task: tuple[str, dict[str, Any], int, int]) -> tuple[int, float, float, float, float]:
    """(seed, best@25, best@50, best@trials, CPU ms per trial) of one study."""
    name, kw, seed, trials = task
    import torch

    from ncp_hpo.benchmarks import load_benchmark

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = load_benchmark("nas-bench-201")
    space = table.space
    acc = np.asarray(table.metrics[table.main_metric], dtype=np.float64)
    lookup = {
        np.asarray(c, np.int64).tobytes(): float(a) for c, a in zip(table.codes, acc, strict=True)
    }
    fields = {k: v for k, v in kw.items() if k.startswith(("p_", "s_"))}
    own = {k: v for k, v in kw.items() if k not in fields}
    sampler = _sampler(name, space, seed, own)
    _override(sampler, fields)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return lookup[np.asarray(space.suggest(trial), dtype=np.int64).tobytes()]

    t0 = time.process_time()
    study.optimize(objective, n_trials=trials)
    cpu_ms = (time.process_time() - t0) / trials * 1e3
    best = np.maximum.accumulate([t.value for t in study.trials])
    return seed, float(best[24]), float(best[49]), float(best[-1]), cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sampler")
    parser.add_argument("--kw", default="{}", help="NCPSampler keyword arguments (JSON)")
    parser.add_argument("--seeds", default="100-119", help="first-last (inclusive)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    lo, hi = (int(x) for x in args.seeds.split("-"))
    tasks = [(args.sampler, json.loads(args.kw), s, args.trials) for s in range(lo, hi + 1)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = np.array(list(pool.map(run_one, tasks)))
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.experiments._markdown import markdown_table

    table = load_benchmark("nas-bench-201")
    optimum = float(np.max(table.metrics[table.main_metric]))
    med = np.median(rows, axis=0)
    head = ["sampler", "best@25", "best@50", f"best@{args.trials}", f"mean@{args.trials}"]
    row = [
        f"{args.sampler} {args.kw if args.kw != '{}' else ''}".strip(),
        f"{med[1]:.2f}",
        f"{med[2]:.2f}",
        f"{med[3]:.2f}",
        f"{rows[:, 3].mean():.3f}",
        f"{int((rows[:, 3] >= optimum - 1e-9).sum())}/{len(rows)}",
        f"{med[4]:.0f}",
    ]
    head += [f"reached the optimum ({optimum:.3f})", "CPU ms/trial"]
    print("\n".join(markdown_table(head, [row], align="l" + "r" * (len(head) - 1))))
    print("per seed @100:", {int(r[0]): round(float(r[3]), 2) for r in rows})


if __name__ == "__main__":
    main()
