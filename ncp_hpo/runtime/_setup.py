"""Setting up real training from user input: codes, devices, datasets, threads, weights,
the predictor prior.

Each check turns a bad value into one :class:`~ncp_hpo.exceptions.TrainingError` line
that names the option (``--code``, ``--device``, ...) before any training starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ncp_hpo._secrets import error_line
from ncp_hpo.exceptions import NCPError, TrainingError

__all__ = [
    "TASK_PRIORS",
    "check_dataset",
    "check_device",
    "check_weights_path",
    "cuda_available",
    "load_prior",
    "parse_code",
    "resolve_prior",
    "save_weights",
    "trial_threads",
]


def parse_code(text: str, *, option: str = "--code") -> str:
    """The canonical code string of ``text`` (one-line error naming the bad dimension)."""
    from ncp_hpo.exceptions import InvalidCodeError
    from ncp_hpo.spaces import MultiResolutionSpace

    space = MultiResolutionSpace()
    try:
        return str(space.encode(space.decode(text.strip())))
    except InvalidCodeError as exc:
        text = str(exc)
        text = text[len("code: ") :] if text.startswith("code: ") else text
        raise TrainingError(f"{option}: {text}") from None


def check_device(name: str) -> str | None:
    """``name`` (``cpu``, ``cuda``, ``cuda:N``) if usable here; ``None`` for ``auto``."""
    if name == "auto":
        return None
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: CUDA is not available here; use cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return name


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def check_dataset(task: str, opts: Mapping[str, Any]) -> None:
    """Build the loaders once now, so a bad size or folder is a one-line error up front."""
    from ncp_hpo.trainers.datasets import DEFAULT_DATASET, make_loaders

    name = opts.get("dataset", DEFAULT_DATASET.get(task))
    try:
        make_loaders(
            name,
            batch_size=opts.get("batch_size", 32),
            image_size=opts.get("image_size"),
            train_size=opts.get("train_size"),
            val_size=opts.get("val_size"),
            task=task,
        )
    except NCPError:
        raise
    except (ValueError, OSError) as exc:
        raise TrainingError(f"dataset {name!r} for task {task!r}: {error_line(exc)}") from None


@contextmanager
def trial_threads(n: int | None = None) -> Iterator[None]:
    """Run the block with ``n`` torch (and BLAS/OpenMP) threads, then restore the counts.

    ``None`` is the thread policy of every trial process: one thread
    (:data:`ncp_hpo._numerics.STUDY_THREADS`); parallelism comes from ``--jobs`` and
    workers, not from threads competing for the same cores.
    """
    from ncp_hpo._numerics import STUDY_THREADS, deterministic_threads

    with deterministic_threads(STUDY_THREADS if n is None else n):
        yield


def check_weights_path(path: Path) -> None:
    """Refuse a ``--save-weights`` path that cannot be written before training starts."""
    if not path.parent.is_dir():
        raise TrainingError(f"--save-weights: folder {path.parent} does not exist")
    if path.is_dir():
        raise TrainingError(f"--save-weights: {path} is a folder; give a file name")


def save_weights(result: Any, path: Path, *, task: str) -> None:
    """Save the trained ``state_dict`` of ``result`` (a :class:`~ncp_hpo.trainers.TrainResult`)
    to ``path``: safetensors (with the code and task as metadata) for a ``.safetensors``
    path, else ``torch.save``."""
    import torch

    if result.model is None:  # pragma: no cover - train_code always keeps the model
        raise TrainingError("the training result holds no model to save")
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(path), metadata={"code": str(result.code), "task": task})
        else:
            torch.save(state, path)
    except OSError as exc:
        raise TrainingError(f"--save-weights {path}: {error_line(exc)}") from None


TASK_PRIORS: dict[str, str] = {"cls": "cls-50-1000", "seg": "seg", "video": "video"}
"""The NAS-Bench-MR setting whose predictor ``study`` starts each task from by default
(``--prior auto``). ``bev-det`` has no NAS-Bench-MR setting, so it starts without one."""


def resolve_prior(
    spec: str | None,
    *,
    task: str,
    sampler: str,
    data_dir: str | None,
    log: Callable[[str], None],
) -> str | None:
    """The prior a ``study`` uses: ``spec`` itself, ``None`` for ``"none"``, and for
    ``"auto"`` (the default) the task's :data:`TASK_PRIORS` setting when ``sampler`` takes
    a prior and the setting's data are found (one log line says why not otherwise)."""
    from ncp_hpo.search import PREDICTOR_SAMPLERS

    if spec is None or spec == "none":
        return None
    if spec != "auto":
        return spec
    setting = TASK_PRIORS.get(task)
    if sampler not in PREDICTOR_SAMPLERS:
        return None
    if setting is None:
        log(f"prior: none (no NAS-Bench-MR setting for task {task})")
        return None
    from ncp_hpo.benchmarks import find_setting

    if find_setting(setting, data_dir) is None:
        log(
            f"prior: none ({setting} data not found; 'ncp-hpo data fetch {setting}' gets "
            "it, --prior none silences this)"
        )
        return None
    return setting


def load_prior(spec: str, *, data_dir: str | None, seed: int, log: Callable[[str], None]) -> Any:
    """A fitted :class:`~ncp_hpo.predictor.NeuralPredictor`: loaded from a file, or the
    NAS-Bench-MR setting ``spec``'s predictor (trained once, then read from the user cache:
    :func:`ncp_hpo.benchmarks.predictors.setting_predictor`)."""
    from ncp_hpo.predictor import NeuralPredictor

    path = Path(spec).expanduser()
    if path.suffix == ".safetensors" or path.exists() or os.sep in spec:
        if not path.is_file():
            raise TrainingError(f"--prior {spec}: no such predictor file")
        predictor = NeuralPredictor.load(path)  # CheckpointError is an NCPError
        log(f"prior: predictor loaded from {path}")
        return predictor
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.benchmarks.predictors import setting_predictor

    table = load_benchmark(spec, data_dir)  # unknown / missing / corrupt: NCPError, one line
    t0 = time.perf_counter()
    predictor, record = setting_predictor(table, seed=seed)
    # the validation split (500 codes): the test split is only what 2,000 + 500 leave over
    score = record.val_score or record.test_score
    fidelity = (
        f"; held-out Spearman {score['spearman_rho']:.3f}, Kendall {score['kendall_tau']:.3f} "
        f"on {score['n']} codes"
        if score is not None
        else ""
    )
    how = "read from the cache" if record.cached else "fitted"
    log(
        f"prior: {spec} predictor ({len(table.codes)} codes) {how} in "
        f"{time.perf_counter() - t0:.1f} s{fidelity}"
    )
    return predictor
