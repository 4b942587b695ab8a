"""A real-training NCP study: 10 architectures trained on the embedded digits, in MLflow.

    python examples/real_training_study.py [--trials 10] [--mlflow-uri URI]

The NCP prior is the paper's predictor fitted on the NAS-Bench-MR cls-50-1000 table
(ImageNet-50 top-1 of 2,500 trained codes; the data comes from ``--data-dir``,
``NCP_HPO_DATA`` or the user cache, see ``ncp-hpo data fetch``). NCP propagates codes
through it, re-scales it to the digits accuracy and fine-tunes a copy on the trials as they
finish (used once it predicts new trials better than the prior), so the search transfers
from ImageNet to this task. ``--lam`` trades accuracy for FLOPs.

Each trial trains for real (``digits-cls``: 8x8 scans upsampled, scaled down here to run in
a few minutes on a CPU) and is logged to MLflow as a run nested under the study's run. The
study starts from two small uniform codes, so NCP's first incumbents are CPU-sized.

A compute budget (``--max-gflops``, exact multiply-accumulates per image at the training
input size) restricts the search: ``TrainingObjective(max_flops=...)`` refuses a code over it
without training, and NCP searches ``objective.space``, the space restricted to the
budget, so the ImageNet prior's appetite for wide networks never reaches the CPU. No
pruner: with three epochs per trial there is little to save.

The same study from the command line (with live progress and median pruning):
``ncp-hpo study --task cls --sampler ncp --prior cls-50-1000 --trials 10``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import optuna
import torch

from ncp_hpo import NCPSampler, load_benchmark
from ncp_hpo.exceptions import DataError
from ncp_hpo.predictor import fit_setting_predictor
from ncp_hpo.tracking import MLflowTracker
from ncp_hpo.trainers import OVER_BUDGET, TrainingObjective


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="codes to train")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lam", type=float, default=1.0, help="FLOPs penalty of NCP")
    parser.add_argument(
        "--max-gflops", type=float, default=0.004, help="budget at 16x16: no larger codes"
    )
    parser.add_argument("--mlflow-uri", help="default: MLflow's local store (./mlflow.db)")
    parser.add_argument("--data-dir", help="NAS-Bench-MR data (else NCP_HPO_DATA, the cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 on a busy machine)")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    try:
        table = load_benchmark("cls-50-1000", args.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    prior, info = fit_setting_predictor(table, seed=args.seed)
    print(
        f"prior fitted on cls-50-1000 in {time.perf_counter() - t0:.0f} s "
        f"(Spearman {info['val_score'].spearman_rho:.3f} on {info['val_score'].n} held-out codes)"
    )

    tracker = MLflowTracker(args.mlflow_uri, experiment="ncp-hpo-examples", log_model=False)
    train = TrainingObjective(
        "cls",
        tracker=tracker,
        dataset="digits-cls",
        epochs=args.epochs,
        image_size=16,  # 16x16 inputs (the scans are 8x8): CPU-sized
        batch_size=16,
        optimizer="adamw",
        lr=3e-3,
        max_flops=args.max_gflops * 1e9,
        seed=args.seed,
        progress=False,
    )
    space = train.space  # restricted to the budget
    sampler = NCPSampler(space=space, prior=prior, online=True, lam=args.lam, seed=args.seed)
    study = optuna.create_study(
        study_name="digits-ncp",
        direction="maximize",
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
    )
    with warnings.catch_warnings():  # experimental in Optuna, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["top1"])  # optuna-dashboard shows "top1", not "Objective 0"
    for width in (32, 16):  # two small uniform codes first
        study.enqueue_trial(space.to_params(space.decode(_uniform_code(width))))

    def report(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        if t.user_attrs.get("fail_reason") == OVER_BUDGET:
            print(f"trial {t.number:>2}: over the budget, not trained")
            return
        value = f"{t.value:5.1f}" if t.value is not None else "  -  "
        print(
            f"trial {t.number:>2}: top1 {value}  {t.user_attrs['macs_analytic'] / 1e9:.4f} "
            f"GFLOPs  {t.user_attrs.get('wall_time_s', 0.0):5.1f} s  "
            f"{space.encode(space.from_params(t.params))}"
        )

    t0 = time.perf_counter()
    with tracker.study_run(study.study_name, sampler="NCPSampler") as parent_id:
        study.optimize(train, n_trials=args.trials, callbacks=[report])
    print(f"{len(study.trials)} trials in {time.perf_counter() - t0:.0f} s")

    _print_outcome(study, tracker, parent_id)
    return 0


def _print_outcome(study: optuna.Study, tracker: MLflowTracker, parent_id: str | None) -> None:
    """The best trial and where its MLflow runs are."""
    best = study.best_trial
    print(
        f"best: trial {best.number}, top1 {best.value:.1f} at "
        f"{best.user_attrs['macs_analytic'] / 1e9:.4f} GFLOPs (16x16 input), "
        f"{best.user_attrs['params'] / 1e3:.0f} k params\n"
        f"      {best.user_attrs['code']}"
    )
    if parent_id is not None:
        uri = tracker.resolved_uri
        how = f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
        print(f"MLflow: study run {parent_id} in experiment 'ncp-hpo-examples'; {how}")


def _uniform_code(width: int) -> str:
    """Every block and unit count 1, every channel count ``width``."""
    w = width
    return (
        f"{w}_{w}-1_1_1_{w}-1_2_1_1_{w}_{w}-1_3_1_1_1_{w}_{w}_{w}-1_4_1_1_1_1_{w}_{w}_{w}_{w}-{w}"
    )


if __name__ == "__main__":
    sys.exit(main())
