"""The shared training loop: every task trains, recipes, determinism, pruning."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn

from ncp_hpo.spaces import MultiResolutionSpace
from ncp_hpo.trainers import (
    Recipe,
    TrainingObjective,
    build_model,
    make_loaders,
    train,
    train_code,
)
from ncp_hpo.trainers._loop import resolve_amp, resolve_device
from ncp_hpo.trainers.classification import CLS_RECIPE
from ncp_hpo.trainers.detection import DET_RECIPE
from ncp_hpo.trainers.segmentation import SEG_RECIPE
from ncp_hpo.trainers.video import VIDEO_RECIPE

SMALL = {"train_size": 48, "val_size": 16, "batch_size": 16, "progress": False}
MAIN = {"cls": "top1", "seg": "mIoU", "video": "top1", "bev-det": "AP50"}


@pytest.mark.parametrize(
    ("task", "lr"), [("cls", None), ("seg", None), ("video", None), ("bev-det", 0.01)]
)
def test_each_task_trains_and_the_loss_falls(task: str, lr: float | None, tiny_code: str) -> None:
    r = train_code(tiny_code, task=task, epochs=2, lr=lr, **SMALL)  # type: ignore[arg-type]
    assert r.task == task and r.main_metric == MAIN[task] and r.epochs == 2
    assert 0.0 <= r.value <= 100.0
    assert [h["epoch"] for h in r.history] == [1.0, 2.0]
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    assert r.history[1]["train_loss"] < r.history[0]["train_loss"]
    # measured cost = closed form (FlopCounterMode counts 2 FLOPs per MAC)
    assert r.macs == r.macs_analytic and r.params == r.params_analytic and r.flops == 2 * r.macs
    assert r.samples_per_s > 0 and r.wall_time_s > 0 and r.device == "cpu" and r.amp is None
    assert r.code == tiny_code and isinstance(r.model, nn.Module)
    assert set(r.to_dict()) >= {"metrics", "history", "macs", "params", "wall_time_s"}


def test_digits_classification_beats_chance(tiny_code: str) -> None:
    r = train_code(
        tiny_code, task="cls", epochs=3, train_size=480, val_size=200, batch_size=16, progress=False
    )
    assert r.metrics["top1"] > 30.0  # chance is 10%
    assert r.metrics["top5"] >= r.metrics["top1"]


def test_same_seed_same_training_and_global_rng_untouched(tiny_code: str) -> None:
    cpu_state = torch.get_rng_state()
    a = train_code(tiny_code, task="video", epochs=1, seed=3, **SMALL)  # type: ignore[arg-type]
    assert torch.equal(torch.get_rng_state(), cpu_state)
    b = train_code(tiny_code, task="video", epochs=1, seed=3, **SMALL)  # type: ignore[arg-type]
    c = train_code(tiny_code, task="video", epochs=1, seed=4, **SMALL)  # type: ignore[arg-type]
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert a.metrics == b.metrics
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(pa, pb)


def test_build_model_is_seeded(tiny_code: str) -> None:
    a = build_model(tiny_code, task="cls", num_classes=10, seed=1)
    b = build_model(tiny_code, task="cls", num_classes=10, seed=1)
    c = build_model(tiny_code, task="cls", num_classes=10, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))


class _StandIn(nn.Module):
    """Any module with the classification output convention (not a code network)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_train_any_module_on_any_loader() -> None:
    tr, va = make_loaders("digits-cls", batch_size=16, train_size=32, val_size=16, image_size=16)
    r = train(_StandIn(), tr, va, task="cls", epochs=1, progress=False)
    assert r.macs_analytic is None and r.code is None and r.params == 3 * 8 * 9 + 8 + 80 + 10
    assert 0 <= r.metrics["top1"] <= 100


def test_recipes_follow_the_paper() -> None:
    assert (CLS_RECIPE.optimizer, CLS_RECIPE.lr, CLS_RECIPE.weight_decay, CLS_RECIPE.schedule) == (
        "sgd",
        0.1,
        1e-4,
        "cosine",
    )
    assert (
        SEG_RECIPE.optimizer,
        SEG_RECIPE.weight_decay,
        SEG_RECIPE.schedule,
        SEG_RECIPE.power,
        SEG_RECIPE.min_lr,
    ) == ("sgd", 4e-5, "poly", 0.9, 1e-4)
    assert (VIDEO_RECIPE.optimizer, VIDEO_RECIPE.lr, VIDEO_RECIPE.weight_decay) == (
        "adam",
        0.01,
        1e-5,
    )
    assert (
        DET_RECIPE.optimizer,
        DET_RECIPE.lr,
        DET_RECIPE.min_lr,
        DET_RECIPE.weight_decay,
        DET_RECIPE.schedule,
    ) == ("adamw", 2e-3, 2e-4, 1e-2, "onecycle")


def _lrs(recipe: Recipe, steps: int) -> list[float]:
    p = nn.Parameter(torch.zeros(1))
    opt, sched = recipe.build([p], steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(opt.param_groups[0]["lr"])
    return out


def test_schedules() -> None:
    cos = _lrs(CLS_RECIPE, 10)
    assert cos[0] == pytest.approx(0.1) and cos[-1] == pytest.approx(0.0, abs=1e-12)
    assert cos[5] == pytest.approx(0.05)
    poly = _lrs(SEG_RECIPE, 10)
    assert poly[0] == pytest.approx(0.1) and poly[-1] == pytest.approx(1e-4)
    assert poly[5] == pytest.approx((0.1 - 1e-4) * 0.5**0.9 + 1e-4)
    one = _lrs(DET_RECIPE, 100)
    assert one[0] == pytest.approx(2e-4) and max(one) == pytest.approx(2e-3, rel=1e-3)
    assert one.index(max(one)) == pytest.approx(40, abs=1) and one[-1] < 2e-4
    scaled = SEG_RECIPE.scaled(lr=0.01)
    assert scaled.lr == 0.01 and scaled.min_lr == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="schedule"):
        Recipe(schedule="step")  # type: ignore[arg-type]


def test_device_and_amp_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        resolve_amp("fp16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device(None) == cpu
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def _tiny_fixed(tiny_code: str, free: str = "o1") -> dict[str, int]:
    space = MultiResolutionSpace()
    params = space.to_params(space.decode(tiny_code))
    params.pop(free)
    return params


def test_pruner_stops_a_trial(tiny_code: str) -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.ThresholdPruner(lower=101.0),  # top-1 <= 100: prune at once
    )
    objective = TrainingObjective(
        "cls", fixed=_tiny_fixed(tiny_code), epochs=3, image_size=16, **SMALL
    )
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.PRUNED
    assert list(t.intermediate_values) == [1]  # stopped after the first epoch


def test_median_pruner_sees_every_epoch(tiny_code: str) -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=5)
    )
    objective = TrainingObjective(
        "cls", fixed=_tiny_fixed(tiny_code), epochs=2, image_size=16, **SMALL
    )
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert list(t.intermediate_values) == [1, 2]
    assert t.value == pytest.approx(t.intermediate_values[2])
    # results also live in the Optuna storage
    assert t.user_attrs["macs"] > 0 and t.user_attrs["code"].startswith("8_8-")
    assert "top1" in t.user_attrs["metrics"]


@pytest.mark.parametrize("cost", ["macs", "params"])
def test_two_objective_study_metric_and_cost(tiny_code: str, cost: str) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = TrainingObjective(
        "cls",
        objectives=("metric", cost),
        fixed=_tiny_fixed(tiny_code),
        epochs=1,
        image_size=16,
        **SMALL,
    )
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state == optuna.trial.TrialState.COMPLETE and t.values[1] == t.user_attrs[cost]
    assert t.user_attrs["params"] != t.user_attrs["macs"] > 0


def test_training_objectives_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\('metric', 'params'\), got \('metric', 'flops'\)"):
        TrainingObjective("cls", objectives=("metric", "flops"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_channels_last(tiny_code: str) -> None:
    r = train_code(tiny_code, task="seg", epochs=1, device="cuda", **SMALL)  # type: ignore[arg-type]
    assert r.device.startswith("cuda") and r.amp in ("bf16", "fp16")
    assert 0 <= r.value <= 100


def test_search_recipe_suggests_lr_and_weight_decay_and_ncp_searches_them(tiny_code: str) -> None:
    """``search_recipe=True``: lr and weight decay (log ranges around the recipe's) are
    suggested and trained with; NCP proposes them with the code as one vector."""
    import json

    from ncp_hpo import NCPSampler
    from ncp_hpo.trainers._recipe_search import recipe_distributions

    dists = recipe_distributions("cls", {})
    assert (dists["lr"].low, dists["lr"].high) == pytest.approx((0.01, 1.0))
    assert (dists["weight_decay"].low, dists["weight_decay"].high) == pytest.approx((1e-6, 1e-2))
    assert recipe_distributions("cls", {"lr": 3e-3})["lr"].high == pytest.approx(3e-2)

    objective = TrainingObjective(
        "cls", epochs=1, image_size=16, lr=3e-3, optimizer="adamw", search_recipe=True, **SMALL
    )
    sampler = NCPSampler(
        space=objective.space, seed=0, n_startup_trials=2, predictor_params={"epochs": 30}
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=3)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert 3e-4 <= t.params["lr"] <= 3e-2 and 1e-6 <= t.params["weight_decay"] <= 1e-2
    proposal = json.loads(study.trials[2].system_attrs["ncp:proposal"])
    assert len(proposal) == 27 + 2  # the code and the recipe, one vector
