"""Setting predictors: the paper's neural predictor of a benchmark table, trained once and cached.

A *setting predictor* is :func:`ncp_hpo.predictor.fit_setting_predictor` on a
:class:`~ncp_hpo.benchmarks.BenchmarkTable` (2,000 train / 500 validation codes,
checkpoint chosen on the validation codes, main metric + ``flops``). :func:`setting_predictor`
trains it or reads it back from ``<user cache>/predictors/`` (``NCP_HPO_CACHE`` moves it):
one safetensors checkpoint plus a JSON header per key. The key
(:func:`predictor_cache_key`) hashes the setting, the table's checksum and size, the split
sizes, the seed, the learned metrics and every predictor parameter, so any change trains a
new predictor. Used by ``ncp-hpo search`` and ``benchmarks/reproduce_paper.py``.

Public names: :class:`PredictorRecord`, :func:`setting_predictor`,
:func:`predictor_cache_key`, :func:`learned_metrics`.

>>> from ncp_hpo.benchmarks import load_benchmark                     # doctest: +SKIP
>>> predictor, record = setting_predictor(load_benchmark("seg"))      # doctest: +SKIP
>>> record.cached, record.test_score["kendall_tau"]                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import PredictorCacheWarning, SearchError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._table import BenchmarkTable
    from ncp_hpo.predictor import NeuralPredictor

__all__ = [
    "PredictorRecord",
    "learned_metrics",
    "predictor_cache_key",
    "setting_predictor",
]

_CACHE_VERSION = 1
_PREDICTOR_DIR = "predictors"


@dataclass(frozen=True)
class PredictorRecord:
    """Where a setting's predictor came from and how well it fits.

    Attributes:
        setting: the benchmark setting.
        key: the cache key (hex SHA-256).
        path: the cached checkpoint, or ``None`` without a cache.
        cached: ``True`` when it was loaded from the cache rather than trained now.
        fit_time: seconds spent training (when it was trained, possibly earlier).
        seed, n_train, n_val, n_test: the split (``table.split(n_train, n_val, seed)``).
        epochs: training epochs.
        metrics: the learned metrics (main metric first).
        val_score: :class:`~ncp_hpo.predictor.PredictorScore` dict on the validation codes
            (the checkpoint was chosen on them, so it is optimistic), or ``None``.
        test_score: the same on the remaining table codes, never used for training or
            selection, or ``None`` when there are none.
    """

    setting: str
    key: str
    path: str | None
    cached: bool
    fit_time: float
    seed: int
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    metrics: list[str]
    val_score: dict[str, Any] | None
    test_score: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``dataclasses.asdict``)."""
        return asdict(self)


def learned_metrics(table: BenchmarkTable) -> list[str]:
    """What a setting predictor learns: the main metric, then ``flops`` when the table has it."""
    main = table.main_metric
    return [main] + (["flops"] if "flops" in table.metrics and main != "flops" else [])


def predictor_cache_key(
    table: BenchmarkTable,
    *,
    seed: int,
    n_train: int,
    n_val: int,
    metrics: Sequence[str],
    params: dict[str, Any],
) -> str:
    """SHA-256 (hex) over everything a setting predictor depends on."""
    payload = {
        "version": _CACHE_VERSION,
        "setting": table.name,
        "data_sha256": table.sha256,
        "rows": len(table),
        "seed": int(seed),
        "n_train": int(n_train),
        "n_val": int(n_val),
        "metrics": list(metrics),
        "params": params,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def setting_predictor(
    table: BenchmarkTable,
    *,
    seed: int = 0,
    n_train: int = 2000,
    n_val: int = 500,
    epochs: int = 200,
    cache: bool = True,
    cache_root: str | Path | None = None,
    progress: bool = False,
) -> tuple[NeuralPredictor, PredictorRecord]:
    """The paper's predictor of ``table`` (main metric + ``flops``), trained or from the cache.

    Training is :func:`ncp_hpo.predictor.fit_setting_predictor` (split by
    ``table.split(n_train, n_val, seed)``, checkpoint chosen on the validation codes). A
    cached checkpoint that fails to load is retrained, and a cache that cannot be written
    leaves ``record.path = None``; both are reported with a :class:`PredictorCacheWarning`.

    Args:
        table: a benchmark table.
        seed: split and predictor seed.
        n_train, n_val: split sizes; the rest of the table is the test split.
        epochs: training epochs.
        cache: read and write ``<cache_root>/predictors/<setting>-<key16>.safetensors``.
        cache_root: default the user cache (:func:`ncp_hpo.benchmarks.cache_dir`).
        progress: show a tqdm bar over the epochs while training.

    Returns:
        ``(predictor, record)``.

    Raises:
        SearchError: ``n_train + n_val`` exceeds the table.
    """
    from ncp_hpo.predictor import NeuralPredictor

    if n_train + n_val > len(table):
        raise SearchError(
            f"--n-train + --n-val = {n_train + n_val} exceeds the {len(table)} codes of "
            f"{table.name}"
        )
    metrics = learned_metrics(table)
    params = NeuralPredictor(epochs=epochs, seed=seed, main_metric=table.main_metric).get_params()
    key = predictor_cache_key(
        table, seed=seed, n_train=n_train, n_val=n_val, metrics=metrics, params=params
    )
    path = _cache_root(cache_root) / f"{table.name}-{key[:16]}.safetensors"
    base = {
        "setting": table.name,
        "key": key,
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "epochs": epochs,
        "metrics": metrics,
    }
    if cache:
        hit = _read_cached(path, base)
        if hit is not None:
            return hit
    predictor, record = _train(table, params, base, progress=progress)
    if cache:
        record = _write_cached(predictor, record, path)
    return predictor, record


def _cache_root(root: str | Path | None) -> Path:
    from ncp_hpo.benchmarks._store import cache_dir

    return (Path(root).expanduser() if root is not None else cache_dir()) / _PREDICTOR_DIR


def _read_cached(
    path: Path, base: dict[str, Any]
) -> tuple[NeuralPredictor, PredictorRecord] | None:
    """The cached predictor and its record, or ``None`` (absent or unusable: warned)."""
    from ncp_hpo.predictor import CheckpointError, NeuralPredictor

    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != base["key"]:
            raise CheckpointError(f"{meta_path} belongs to another key")
        predictor = NeuralPredictor.load(path)
        fields = {k: meta[k] for k in ("fit_time", "n_test", "val_score", "test_score")}
        return predictor, PredictorRecord(**base, path=str(path), cached=True, **fields)
    except (CheckpointError, OSError, ValueError, KeyError) as exc:
        warnings.warn(
            f"retraining the {base['setting']} predictor: {exc}",
            PredictorCacheWarning,
            stacklevel=3,
        )
        return None


def _train(
    table: BenchmarkTable, params: dict[str, Any], base: dict[str, Any], *, progress: bool
) -> tuple[NeuralPredictor, PredictorRecord]:
    from ncp_hpo.predictor import fit_setting_predictor

    n_train, epochs = base["n_train"], base["epochs"]
    steps_per_epoch = -(-n_train // min(n_train, int(params["batch_size"])))
    with _epoch_bar(epochs, steps_per_epoch, f"{table.name} predictor", progress):
        predictor, info = fit_setting_predictor(
            table,
            n_train=n_train,
            n_val=base["n_val"],
            seed=base["seed"],
            metrics=base["metrics"],
            **{k: v for k, v in params.items() if k != "seed"},
        )
    record = PredictorRecord(
        **base,
        path=None,
        cached=False,
        fit_time=float(predictor.fit_time_),
        n_test=len(info["test"]),
        val_score=info["val_score"].to_dict() if info["val_score"] is not None else None,
        test_score=info["test_score"].to_dict() if info["test_score"] is not None else None,
    )
    return predictor, record


def _write_cached(
    predictor: NeuralPredictor, record: PredictorRecord, path: Path
) -> PredictorRecord:
    """Save ``predictor`` and its JSON header at ``path``; the record with its new path."""
    try:
        predictor.save(path)
        meta = {
            "key": record.key,
            "setting": record.setting,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **{k: getattr(record, k) for k in ("fit_time", "n_test", "val_score")},
            "test_score": record.test_score,
        }
        path.with_suffix(".json").write_text(json.dumps(jsonable(meta), indent=1) + "\n")
    except OSError as exc:
        warnings.warn(
            f"could not cache the predictor at {path}: {exc}", PredictorCacheWarning, stacklevel=3
        )
        return record
    return replace(record, path=str(path))


@contextlib.contextmanager
def _epoch_bar(epochs: int, steps_per_epoch: int, desc: str, enabled: bool) -> Iterator[None]:
    """A tqdm bar over training epochs.

    :meth:`NeuralPredictor.fit` has no per-epoch callback, so the bar counts optimizer steps
    through torch's global step hook (removed on exit) and advances once per
    ``steps_per_epoch`` of them. The bar goes to stderr and switches itself off when stderr
    is not a terminal.
    """
    if not enabled:
        yield
        return
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from tqdm.auto import tqdm

    bar = tqdm(total=epochs, desc=desc, unit="epoch", dynamic_ncols=True, disable=None)
    steps = 0

    def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        nonlocal steps
        steps += 1
        if steps % steps_per_epoch == 0:
            bar.update(1)

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()
        bar.close()


def jsonable(v: Any) -> Any:
    """``v`` with numpy values as Python ones, tuples as lists, paths as strings and
    non-finite floats as ``None`` (strict JSON)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v
