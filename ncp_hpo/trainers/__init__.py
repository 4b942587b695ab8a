"""Real training trials: per-task trainers and offline datasets.

Train a code end to end (data, model, recipe, metrics, optional Optuna pruning and MLflow,
whose tracker lives in :mod:`ncp_hpo.tracking`)::

    from ncp_hpo.tracking import MLflowTracker
    from ncp_hpo.trainers import train_code
    code = "16_16-1_1_1_16-1_2_1_1_16_16-1_3_1_1_1_16_16_16-1_4_1_1_1_1_16_16_16_16-16"
    result = train_code(code, task="cls", epochs=2, tracker=MLflowTracker())
    result.metrics["top1"], result.macs, result.wall_time_s

or train any model on any ``DataLoader`` with a task's recipe::

    from ncp_hpo.trainers import make_loaders, train
    train_loader, val_loader = make_loaders("digits-seg", batch_size=16)
    result = train(my_model, train_loader, val_loader, task="seg", epochs=5)

Tasks and their main metric: ``cls`` (``top1``), ``seg`` (``mIoU``), ``video`` (``top1``),
``bev-det`` (``AP50``). Embedded datasets: ``digits-cls``, ``digits-seg``, ``digits-video``,
``bev-det`` (see :mod:`ncp_hpo.trainers.datasets`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

if TYPE_CHECKING:
    from ncp_hpo.trainers._api import (
        TASKS,
        TrainingObjective,
        build_model,
        make_task,
        train,
        train_classification,
        train_code,
        train_detection,
        train_segmentation,
        train_video,
    )
    from ncp_hpo.trainers._budget import OVER_BUDGET, is_over_budget, training_budget
    from ncp_hpo.trainers._cost import measure_cost
    from ncp_hpo.trainers._loop import fit
    from ncp_hpo.trainers._task import Accumulator, EpochCallback, Recipe, Task, TrainResult
    from ncp_hpo.trainers.archplot import plot_architecture
    from ncp_hpo.trainers.classification import ClassificationTask
    from ncp_hpo.trainers.datasets import (
        DATASETS,
        DatasetAdapter,
        DatasetInfo,
        ImageFolderClassification,
        ImageFolderSegmentation,
        get_dataset,
        make_loaders,
    )
    from ncp_hpo.trainers.detection import DetectionTask
    from ncp_hpo.trainers.segmentation import SegmentationTask
    from ncp_hpo.trainers.video import VideoTask

# Everything here needs torch: names load on first use, so importing a sibling module
# (the ``ncp-hpo`` argument parser) does not import torch.
_LAZY = {
    "TASKS": "ncp_hpo.trainers._api",
    "TrainingObjective": "ncp_hpo.trainers._api",
    "build_model": "ncp_hpo.trainers._api",
    "make_task": "ncp_hpo.trainers._api",
    "train": "ncp_hpo.trainers._api",
    "train_classification": "ncp_hpo.trainers._api",
    "train_code": "ncp_hpo.trainers._api",
    "train_detection": "ncp_hpo.trainers._api",
    "train_segmentation": "ncp_hpo.trainers._api",
    "train_video": "ncp_hpo.trainers._api",
    "OVER_BUDGET": "ncp_hpo.trainers._budget",
    "training_budget": "ncp_hpo.trainers._budget",
    "is_over_budget": "ncp_hpo.trainers._budget",
    "Accumulator": "ncp_hpo.trainers._task",
    "EpochCallback": "ncp_hpo.trainers._task",
    "Recipe": "ncp_hpo.trainers._task",
    "Task": "ncp_hpo.trainers._task",
    "TrainResult": "ncp_hpo.trainers._task",
    "fit": "ncp_hpo.trainers._loop",
    "measure_cost": "ncp_hpo.trainers._cost",
    "plot_architecture": "ncp_hpo.trainers.archplot",
    "ClassificationTask": "ncp_hpo.trainers.classification",
    "DATASETS": "ncp_hpo.trainers.datasets",
    "DatasetAdapter": "ncp_hpo.trainers.datasets",
    "DatasetInfo": "ncp_hpo.trainers.datasets",
    "ImageFolderClassification": "ncp_hpo.trainers.datasets",
    "ImageFolderSegmentation": "ncp_hpo.trainers.datasets",
    "get_dataset": "ncp_hpo.trainers.datasets",
    "make_loaders": "ncp_hpo.trainers.datasets",
    "DetectionTask": "ncp_hpo.trainers.detection",
    "SegmentationTask": "ncp_hpo.trainers.segmentation",
    "VideoTask": "ncp_hpo.trainers.video",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "DATASETS",
    "OVER_BUDGET",
    "TASKS",
    "Accumulator",
    "ClassificationTask",
    "DatasetAdapter",
    "DatasetInfo",
    "DetectionTask",
    "EpochCallback",
    "ImageFolderClassification",
    "ImageFolderSegmentation",
    "Recipe",
    "SegmentationTask",
    "Task",
    "TrainResult",
    "TrainingObjective",
    "VideoTask",
    "build_model",
    "fit",
    "get_dataset",
    "is_over_budget",
    "make_loaders",
    "make_task",
    "measure_cost",
    "plot_architecture",
    "train",
    "train_classification",
    "train_code",
    "train_detection",
    "train_segmentation",
    "train_video",
    "training_budget",
]
