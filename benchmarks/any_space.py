"""NCPSampler() on objectives written with plain ``trial.suggest_*`` calls (issue 24).

Tasks (the objective never sees an ncp-hpo space object):

- ``nb201-categorical``: NAS-Bench-201 written as six ``suggest_categorical`` calls
  (``op0`` ... ``op5``), scored by the table's accuracy (ImageNet16-120, as ``compare``);
  ``ncp-space`` is the code-space path on the same cells (``NB201Space().suggest``) for
  reference, ``ncp-space-cold`` the same without its zero-cost warm start, and
  ``ncp-params-zc`` the inferred path given the same synflow scores as a user would give
  them, ``ZeroCostWarmStart(params_scorer=...)`` on the six parameters; 100 trials.
- ``hgb-breast-cancer`` and ``hgb-wine``: scikit-learn's HistGradientBoostingClassifier,
  learning rate (log float), leaf count (log int), minimum leaf size (int), L2 (log float)
  and feature fraction (float), 3-fold stratified cross-validated accuracy; 50 trials.
- ``mlp-digits``: scikit-learn's MLPClassifier on the digits images for 15 epochs: depth
  and width (ints, width log), initial learning rate and alpha (log floats), batch size
  and activation (categoricals), 3-fold stratified accuracy; 50 trials.

Every sampler runs with its defaults and the seed; every model's own ``random_state`` is
fixed, so a configuration always scores the same. Per task and sampler: median [IQR] best
after 10, 25, 50 (and 100) trials, paired Wilcoxon against ``ncp``, and each sampler's own
time per trial (wall time minus the objective's).

    python benchmarks/any_space.py --data-dir ../shared/nas-bench-mr --seeds 20 --jobs 2 \\
        --out benchmarks/results/any-space
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ncp_hpo._numerics import environment_line, pin_cpu_math

pin_cpu_math()  # before torch loads, as the ncp-hpo command does

import numpy as np  # noqa: E402
import optuna  # noqa: E402

TASKS = ("nb201-categorical", "mlp-digits", "hgb-breast-cancer", "hgb-wine")
SAMPLERS = ("ncp", "tpe", "gp", "cmaes", "random")
NB201_EXTRA = ("ncp-space", "ncp-space-cold", "ncp-params-zc")
_NB201_DATA: dict[str, Any] = {}


def _trials(task: str) -> int:
    return 100 if task == "nb201-categorical" else 50


def _nb201_objective(data_dir: str, *, space_path: bool) -> Callable[[optuna.Trial], float]:
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.spaces import NB201Space

    if "table" not in _NB201_DATA:
        _NB201_DATA["table"] = load_benchmark("nas-bench-201", data_dir=data_dir)
    table, space = _NB201_DATA["table"], NB201Space()
    ops = list(space.ops)

    def objective(trial: optuna.Trial) -> float:
        if space_path:
            code = space.suggest(trial)
        else:
            idx = [ops.index(trial.suggest_categorical(f"op{i}", ops)) for i in range(6)]
            code = space.from_indices(np.array(idx))
        return float(table.query(code)["Acc"])

    return objective


def _nb201_synflow(params: Mapping[str, Any]) -> float:
    """Synflow of the cell ``op0`` ... ``op5`` name (the scores shipped with ncp-hpo, which a
    user could compute on the network they build, as :func:`ncp_hpo.zerocost.proxy_score`
    does)."""
    from ncp_hpo.spaces import NB201Space
    from ncp_hpo.zerocost._bundled import bundled_table

    if "synflow" not in _NB201_DATA:
        _NB201_DATA["synflow"] = bundled_table("nas-bench-201", "synflow")
        _NB201_DATA["space"] = NB201Space()
    space = _NB201_DATA["space"]
    idx = np.array([list(space.ops).index(params[f"op{i}"]) for i in range(6)])
    code = np.asarray(space.from_indices(idx))[None]
    return float(_NB201_DATA["synflow"].lookup(code)[0])


def _cv(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return 100.0 * float(cross_val_score(model, x, y, cv=cv).mean())


def _hgb_objective(dataset: str) -> Callable[[optuna.Trial], float]:
    from sklearn.datasets import load_breast_cancer, load_wine
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = (load_breast_cancer if dataset == "breast-cancer" else load_wine)(return_X_y=True)

    def objective(trial: optuna.Trial) -> float:
        model = HistGradientBoostingClassifier(
            max_iter=50,
            learning_rate=trial.suggest_float("learning_rate", 1e-3, 1.0, log=True),
            max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 2, 64, log=True),
            min_samples_leaf=trial.suggest_int("min_samples_leaf", 1, 60),
            l2_regularization=trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
            max_features=trial.suggest_float("max_features", 0.1, 1.0),
            random_state=0,
        )
        return _cv(model, x, y)

    return objective


def _mlp_objective() -> Callable[[optuna.Trial], float]:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)

    def objective(trial: optuna.Trial) -> float:
        depth = trial.suggest_int("depth", 1, 3)
        width = trial.suggest_int("width", 8, 64, log=True)
        mlp = MLPClassifier(
            hidden_layer_sizes=(width,) * depth,
            learning_rate_init=trial.suggest_float("learning_rate_init", 1e-4, 0.3, log=True),
            alpha=trial.suggest_float("alpha", 1e-6, 0.1, log=True),
            batch_size=trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
            activation=trial.suggest_categorical("activation", ["relu", "tanh"]),
            max_iter=15,  # a short budget: the learning rate and batch size matter
            random_state=0,
        )
        return _cv(make_pipeline(StandardScaler(), mlp), x, y)

    return objective


def objective_for(task: str, sampler: str, data_dir: str) -> Callable[[optuna.Trial], float]:
    """The task's objective (``ncp-space`` gets the code-space version of NAS-Bench-201)."""
    if task == "nb201-categorical":
        return _nb201_objective(data_dir, space_path=sampler.startswith("ncp-space"))
    if task == "mlp-digits":
        return _mlp_objective()
    return _hgb_objective(task.removeprefix("hgb-"))


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """Each sampler with its defaults (``ncp``: ``NCPSampler(seed=seed)``, no space)."""
    from ncp_hpo import NCPSampler
    from ncp_hpo.spaces import NB201Space

    if name == "ncp":
        return NCPSampler(seed=seed)
    if name == "ncp-space":
        return NCPSampler(space=NB201Space(), seed=seed)
    if name == "ncp-space-cold":  # the code-space path without its zero-cost warm start
        return NCPSampler(space=NB201Space(), seed=seed, warm_start=None)
    if name == "ncp-params-zc":  # the inferred path, the synflow scores given by the user
        from ncp_hpo.search import ZeroCostWarmStart

        return NCPSampler(seed=seed, warm_start=ZeroCostWarmStart(params_scorer=_nb201_synflow))
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; allowed: {SAMPLERS + NB201_EXTRA}")


def run_one(task: str, sampler: str, seed: int, data_dir: str) -> dict[str, Any]:
    """One study: its values in trial order, the objective's and the sampler's seconds, and
    how many independent-sampling warnings Optuna logged."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = objective_for(task, sampler, data_dir)
    spent = [0.0]
    the_sampler = make_sampler(sampler, seed)
    for name in (
        "infer_relative_search_space",
        "sample_relative",
        "sample_independent",
        "before_trial",
        "after_trial",
    ):
        setattr(the_sampler, name, _timed(getattr(the_sampler, name), spent))
    warned = _WarningCounter()
    optuna.logging.get_logger("optuna").addHandler(warned)
    optuna.logging.get_logger("ncp_hpo").addHandler(warned)
    study = optuna.create_study(direction="maximize", sampler=the_sampler)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=_trials(task))
    wall = time.perf_counter() - t0
    return {
        "task": task,
        "sampler": sampler,
        "seed": seed,
        "values": [t.value for t in study.trials],
        "objective_s": wall - spent[0],
        "sampler_s": spent[0],
        "independent_warnings": warned.n,
    }


def _timed(method: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    """``method``, adding the seconds it takes to ``spent[0]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    return wrapper


class _WarningCounter:
    """A logging handler that counts Optuna's independent-sampling warnings."""

    level = 30

    def __init__(self) -> None:
        self.n = 0

    def handle(self, record: Any) -> bool:
        if "independent" in str(record.getMessage()).lower():
            self.n += 1
        return True


def _params_zc_tests(
    curves: dict[str, dict[int, np.ndarray]], seeds: list[int], cps: list[int]
) -> list[str]:
    """Issue 24, goal 1 with a user's warm start: ``ncp-params-zc`` against the code-space
    path (within its noise?) and against TPE and GP, paired over seeds."""
    from ncp_hpo.experiments.compare._stats import paired_wilcoxon

    out = [
        "`ncp-params-zc` (the inferred path given the synflow scores through "
        "`ZeroCostWarmStart(params_scorer=...)`) against other rows, paired Wilcoxon "
        "(wins/ties/losses of `ncp-params-zc`):",
        "",
        "| vs | " + " | ".join(f"p @{c}" for c in cps) + " |",
        "|---" * (len(cps) + 1) + "|",
    ]
    for other in ("ncp-space", "tpe", "gp"):
        if other not in curves:
            continue
        cells = []
        for c in cps:
            t = paired_wilcoxon(
                [curves[other][k][c - 1] for k in seeds],
                [curves["ncp-params-zc"][k][c - 1] for k in seeds],
            )
            cells.append(
                "n/a" if t.p_value is None else f"{t.p_value:.3g} ({t.wins}/{t.ties}/{t.losses})"
            )
        out.append(f"| {other} | " + " | ".join(cells) + " |")
    return out


def _report(rows: list[dict[str, Any]], tasks: list[str], seeds: int, command: str) -> str:
    from ncp_hpo.experiments.compare._stats import best_so_far, paired_wilcoxon, summary_stat

    out = [
        "# NCPSampler() on plain `trial.suggest_*` objectives (issue 24)",
        "",
        f"Command: `{command}`",
        "",
        f"Environment: {environment_line()}; samplers single-threaded, one process per study.",
        "",
    ]
    for task in tasks:
        n = _trials(task)
        cps = [c for c in (10, 25, 50, 100) if c <= n]
        names = [
            s
            for s in SAMPLERS + NB201_EXTRA
            if any(r["sampler"] == s and r["task"] == task for r in rows)
        ]
        curves = {
            s: {
                r["seed"]: best_so_far(r["values"])
                for r in rows
                if r["task"] == task and r["sampler"] == s
            }
            for s in names
        }
        seeds_all = sorted(curves["ncp"])
        out += [f"## {task} ({n} trials, {len(seeds_all)} seeds)", ""]
        head = " | ".join(f"@{c}" for c in cps)
        out += [
            f"| sampler | {head} | p vs ncp @{cps[-2]} | p vs ncp @{cps[-1]} | "
            "sampler s/trial | warnings |",
            "|---" * (len(cps) + 5) + "|",
        ]
        times = {}
        for s in names:
            rs = [r for r in rows if r["task"] == task and r["sampler"] == s]
            times[s] = float(np.median([r["sampler_s"] / n for r in rs]))
            cells = [summary_stat([curves[s][k][c - 1] for k in seeds_all]).format() for c in cps]
            ps = []
            for c in cps[-2:]:
                if s == "ncp":
                    ps.append("-")
                    continue
                t = paired_wilcoxon(
                    [curves["ncp"][k][c - 1] for k in seeds_all],
                    [curves[s][k][c - 1] for k in seeds_all],
                )
                ps.append(
                    "n/a"
                    if t.p_value is None
                    else f"{t.p_value:.3g} ({t.wins}/{t.ties}/{t.losses})"
                )
            warns = sum(r["independent_warnings"] for r in rs)
            out.append(f"| {s} | " + " | ".join(cells + ps) + f" | {times[s]:.3f} | {warns} |")
        if "ncp-params-zc" in curves and "ncp-space" in curves:
            out += ["", *_params_zc_tests(curves, seeds_all, cps)]
        out += [
            "",
            "p: paired Wilcoxon against ncp over seeds (wins/ties/losses of the row's "
            "sampler against ncp). Sampler s/trial: median over seeds of the seconds spent in "
            "the sampler's methods per trial; "
            + (
                f"ncp / tpe = {times['ncp'] / max(times['tpe'], 1e-9):.1f}x."
                if "tpe" in times
                else ""
            ),
            "",
        ]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder of the NAS-Bench-201 table")
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    ap.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {TASKS}")
    ap.add_argument("--samplers", default=",".join(SAMPLERS + NB201_EXTRA))
    ap.add_argument("--jobs", type=int, default=1, help="studies run at once (processes)")
    ap.add_argument("--out", type=Path, required=True, help="folder for runs.jsonl and README.md")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    samplers = [s for s in args.samplers.split(",") if s]
    bad = [t for t in tasks if t not in TASKS] + [
        s for s in samplers if s not in SAMPLERS + NB201_EXTRA
    ]
    if bad:
        print(f"any_space: unknown task or sampler {bad}", file=sys.stderr)
        return 2
    jobs = [
        (t, s, k, args.data_dir)
        for t in tasks
        for s in samplers
        if s not in NB201_EXTRA or t == "nb201-categorical"
        for k in range(args.first_seed, args.first_seed + args.seeds)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.out / "runs.jsonl"
    done = {}
    if runs.exists():
        for line in runs.read_text().splitlines():
            r = json.loads(line)
            done[(r["task"], r["sampler"], r["seed"])] = r
    todo = [j for j in jobs if j[:3] not in done]
    os.environ["OMP_NUM_THREADS"] = "1"
    with runs.open("a") as fh, ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(run_one, *zip(*todo, strict=True)) if todo else []:
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            done[(r["task"], r["sampler"], r["seed"])] = r
            print(
                f"{r['task']} {r['sampler']} seed {r['seed']}: best {max(r['values']):.2f}",
                flush=True,
            )
    rows = [done[j[:3]] for j in jobs]
    command = "python benchmarks/any_space.py " + " ".join(sys.argv[1:])
    (args.out / "README.md").write_text(_report(rows, tasks, args.seeds, command) + "\n")
    print(f"wrote {args.out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
