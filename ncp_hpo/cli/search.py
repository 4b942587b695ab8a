"""``ncp-hpo search``: train (or reuse) a setting's predictor and propagate a code through it.

One command runs the paper's whole single-machine loop (Section 3.1, Section 4.1, Appendix C):

1. fit the neural predictor of each setting involved on its benchmark table (2,000 train /
   500 validation codes, checkpoint chosen on the validation codes), or reuse a cached one.
   The cache lives in ``<user cache>/predictors/`` (``NCP_HPO_CACHE`` moves it), one
   safetensors file per key; the key hashes the setting, the table's checksum, the split
   sizes, the seed, the learned metrics and every predictor parameter, so any change
   trains a new predictor;
2. propagate from ``--init`` (default: the paper's ``{b, n = 2; c, i, o = 64}`` on
   NAS-Bench-MR, a low-accuracy high-FLOPs cell on NAS-Bench-201), optionally first from
   another setting's optimum (``--transfer-from``) or over several settings at once
   (``--joint``, Eq. 7 with equal weights ``1/k``);
3. report the found code (string and named table), its predicted metrics, exact FLOPs and
   parameters, and its true metrics: the table's when it holds the code, otherwise the
   surrogate oracle's, marked as such with the oracle's held-out fidelity;
4. write ``trajectory.json`` (everything above plus every iteration) and ``trajectory.png``
   (paper Fig. 3 for NAS-Bench-MR, Fig. 6 for NAS-Bench-201) under ``--out``.

The helpers :func:`setting_predictor`, :func:`parse_code`, :func:`true_metrics` and
:data:`NB201_DEFAULT_START` are shared with ``benchmarks/reproduce_paper.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import InvalidCodeError, NCPError

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkTable, OracleConfig
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.propagation import PropagationResult
    from ncp_hpo.spaces import CodeSpace

__all__ = [
    "NB201_DEFAULT_START",
    "PredictorRecord",
    "SearchError",
    "parse_code",
    "predictor_cache_key",
    "register_search_commands",
    "setting_predictor",
    "true_metrics",
]

NB201_DEFAULT_START = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
"""Default NAS-Bench-201 start: the lowest-accuracy cell among the 128 cells with at least
150 MFLOPs (ImageNet16-120 accuracy 32.30 %, 153.28 MFLOPs; 32 % of all cells are below it).
Appendix C starts "from a low-Acc and high-FLOPs starting point" without naming it."""

_CACHE_VERSION = 1
_MIN_SCORED = 50  # fewer held-out codes than this give no meaningful score to print
_PREDICTOR_DIR = "predictors"
_STRATEGIES = {"continuous": "continuous", "wta": "winner_takes_all"}

# The surrogate oracle's configuration (None: the package default). Tests swap in a tiny one.
_ORACLE_CONFIG: OracleConfig | None = None

_EPILOG = """\
outputs under --out (default: ./ncp-search-<setting>): trajectory.json (found code, metrics,
predictor fidelity, every iteration) and trajectory.png (code dimensions over iterations as in
the paper's Fig. 3; on nas-bench-201 accuracy vs FLOPs with each step marked, Fig. 6).

Predictors are cached in <user cache>/predictors (NCP_HPO_CACHE), keyed by setting, data
checksum, split sizes, seed and predictor parameters; --no-cache trains afresh.

examples:
  ncp-hpo search --setting seg
  ncp-hpo search --setting seg --lam 0.3 --strategy wta
  ncp-hpo search --setting seg --joint cls-50-1000,seg
  ncp-hpo search --setting video --transfer-from cls-50-1000
  ncp-hpo search --setting seg --iters 30 \\
      --init 64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-64
  ncp-hpo search --setting nas-bench-201 --lam 0.2 \\
      --init '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
"""


class SearchError(NCPError, ValueError):
    """A ``search`` request that cannot run (conflicting options, mixed code spaces ...)."""


# ---------------------------------------------------------------------------------------
# Command-line interface
# ---------------------------------------------------------------------------------------
def register_search_commands(subparsers: Any) -> None:
    """Add ``search`` to the top-level ``subparsers``."""
    p = subparsers.add_parser(
        "search",
        help="train a setting's predictor and propagate a code through it (NCP)",
        description=(
            "Network Coding Propagation on a benchmark setting: fit (or reuse) the neural "
            "predictor on 2,000 + 500 table codes, propagate a code toward higher accuracy "
            "and fewer FLOPs, and report the found code with its predicted, exact and true "
            "metrics."
        ),
        epilog=_EPILOG,
    )
    p.add_argument(
        "--setting",
        required=True,
        metavar="SETTING",
        help="benchmark setting: seg, cls-50-1000, ...",
    )
    p.add_argument("--lam", type=float, default=0.5, help="FLOPs weight lambda of Eq. 3")
    p.add_argument(
        "--strategy",
        choices=sorted(_STRATEGIES),
        default="continuous",
        help="continuous (Eq. 3) or wta = winner-takes-all (Eq. 4-6)",
    )
    p.add_argument(
        "--init",
        metavar="CODE",
        help="start code: upstream string '64_64-2_1_2_64-...-64' or 27 comma-separated "
        "integers; on nas-bench-201 an arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'",
    )
    p.add_argument(
        "--joint",
        metavar="S1,S2",
        help="multi-task propagation (Eq. 7) over these settings' predictors, equal weights",
    )
    p.add_argument(
        "--transfer-from",
        metavar="SETTING",
        help="first propagate this setting's predictor from the default start, then the "
        "target's from the code it found (cross-task transfer)",
    )
    p.add_argument("--iters", type=int, default=70, metavar="N", help="propagation iterations")
    p.add_argument(
        "--lr", type=float, default=3.0, help="continuous step size on the standardised code"
    )
    p.add_argument(
        "--flops",
        choices=("exact", "predictor"),
        default="exact",
        help="FLOPs term: the exact closed form or the predictor's learned head",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the split and the predictor"
    )
    p.add_argument("--epochs", type=int, default=200, metavar="N", help="predictor training epochs")
    p.add_argument(
        "--n-train", type=int, default=2000, metavar="N", help="predictor training codes"
    )
    p.add_argument("--n-val", type=int, default=500, metavar="N", help="predictor validation codes")
    p.add_argument("--out", metavar="DIR", help="output folder (default: ./ncp-search-<setting>)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="benchmark files folder (default: $NCP_HPO_DATA, then the user cache)",
    )
    p.add_argument("--no-cache", action="store_true", help="train predictors afresh, cache nothing")
    p.add_argument(
        "--no-oracle",
        action="store_true",
        help="do not fit/use the surrogate oracle for codes outside the table",
    )
    p.add_argument("--no-plot", action="store_true", help="skip trajectory.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    # deprecated spelling of --quiet, kept working but hidden from the help
    p.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_search)


def _settings_list(text: str, option: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise SearchError(f"{option} needs at least one setting name, got {text!r}")
    return list(dict.fromkeys(names))


def _check_args(args: argparse.Namespace) -> None:
    if not math.isfinite(args.lam) or args.lam < 0:
        raise SearchError(f"--lam must be a finite number >= 0, got {args.lam}")
    if not math.isfinite(args.lr) or args.lr <= 0:
        raise SearchError(f"--lr must be a finite number > 0, got {args.lr}")
    for opt, v, lo in (
        ("--iters", args.iters, 0),
        ("--epochs", args.epochs, 1),
        ("--n-train", args.n_train, 2),
        ("--n-val", args.n_val, 0),
        ("--seed", args.seed, 0),
    ):
        if v < lo:
            raise SearchError(f"{opt} must be >= {lo}, got {v}")
    if args.init is not None and args.transfer_from is not None:
        raise SearchError(
            "--init and --transfer-from both set the start code; give one of them "
            "(--transfer-from starts from the source setting's optimum)"
        )


def _cmd_search(args: argparse.Namespace) -> int:
    from ncp_hpo.benchmarks import get_setting, load_benchmark

    t_start = time.perf_counter()
    _check_args(args)
    target = args.setting
    objective_settings = [target]
    if args.joint:
        objective_settings += [s for s in _settings_list(args.joint, "--joint") if s != target]
    source = args.transfer_from
    for name in [*objective_settings, *([source] if source else [])]:
        get_setting(name)  # unknown names: one line listing the known settings
    needed = list(dict.fromkeys([*([source] if source else []), *objective_settings]))
    tables = {name: load_benchmark(name, args.data_dir) for name in needed}
    space = tables[target].space
    for name, tb in tables.items():
        if tb.space != space:
            raise SearchError(
                f"{name} codes live in {type(tb.space).__name__}, {target}'s in "
                f"{type(space).__name__}; --joint/--transfer-from need one code space"
            )
    if _is_nb201(space) and args.strategy == "wta":
        raise SearchError(
            "--strategy wta moves one dimension by its grid step and does not apply to "
            "nas-bench-201's one-hot cells; use --strategy continuous (arg-max every 10 "
            "iterations)"
        )
    start = parse_code(space, args.init, option="--init") if args.init else default_start(space)
    progress = not args.quiet
    predictors: dict[str, NeuralPredictor] = {}
    records: dict[str, PredictorRecord] = {}
    for name in needed:
        predictors[name], records[name] = setting_predictor(
            tables[name],
            seed=args.seed,
            n_train=args.n_train,
            n_val=args.n_val,
            epochs=args.epochs,
            cache=not args.no_cache,
            progress=progress,
        )
        _print_predictor(records[name])

    stages: list[tuple[str, list[str], PropagationResult]] = []
    if source:
        res = _run_stage([source], predictors, space, start, args)
        stages.append((f"{source} (transfer source)", [source], res))
        start = res.codes[0]
    res = _run_stage(objective_settings, predictors, space, start, args)
    label = " + ".join(objective_settings) + (" (transfer target)" if source else "")
    stages.append((label, objective_settings, res))

    found = res.codes[0]
    doc = _report(args, space, tables, predictors, records, stages, found, progress)
    out = Path(args.out) if args.out else Path(f"ncp-search-{target}")
    out.mkdir(parents=True, exist_ok=True)
    doc["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    json_path = out / "trajectory.json"
    json_path.write_text(json.dumps(_jsonable(doc), indent=1) + "\n")
    written = [json_path]
    if not args.no_plot:
        written.append(_plot(out / "trajectory.png", space, tables, stages, doc))
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------
# Predictors (trained once, cached as safetensors)
# ---------------------------------------------------------------------------------------
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
        return asdict(self)


def _predictor_params(table: BenchmarkTable, seed: int, epochs: int) -> dict[str, Any]:
    from ncp_hpo.predictor import NeuralPredictor

    params = NeuralPredictor(epochs=epochs, seed=seed, main_metric=table.main_metric)
    return params.get_params()


def _learned_metrics(table: BenchmarkTable) -> list[str]:
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


def _cache_root(root: str | Path | None) -> Path:
    from ncp_hpo.benchmarks import cache_dir

    return (Path(root).expanduser() if root is not None else cache_dir()) / _PREDICTOR_DIR


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
    cached checkpoint that fails to load is replaced (with a note on stderr).

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
    """
    from ncp_hpo.predictor import CheckpointError, NeuralPredictor, fit_setting_predictor

    if n_train + n_val > len(table):
        raise SearchError(
            f"--n-train + --n-val = {n_train + n_val} exceeds the {len(table)} codes of "
            f"{table.name}"
        )
    metrics = _learned_metrics(table)
    params = _predictor_params(table, seed, epochs)
    key = predictor_cache_key(
        table, seed=seed, n_train=n_train, n_val=n_val, metrics=metrics, params=params
    )
    path = _cache_root(cache_root) / f"{table.name}-{key[:16]}.safetensors"
    meta_path = path.with_suffix(".json")
    if cache and path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") != key:
                raise CheckpointError(f"{meta_path} belongs to another key")
            predictor = NeuralPredictor.load(path)
            fields = {k: meta[k] for k in ("fit_time", "n_test", "val_score", "test_score")}
            return predictor, PredictorRecord(
                setting=table.name,
                key=key,
                path=str(path),
                cached=True,
                seed=seed,
                n_train=n_train,
                n_val=n_val,
                epochs=epochs,
                metrics=metrics,
                **fields,
            )
        except (CheckpointError, OSError, ValueError, KeyError) as exc:
            print(f"note: retraining the {table.name} predictor: {exc}", file=sys.stderr)
    n = min(n_train, int(params["batch_size"]))
    steps_per_epoch = -(-n_train // n)
    desc = f"{table.name} predictor"
    with _epoch_bar(epochs, steps_per_epoch, desc, progress):
        predictor, info = fit_setting_predictor(
            table,
            n_train=n_train,
            n_val=n_val,
            seed=seed,
            metrics=metrics,
            **{k: v for k, v in params.items() if k not in ("seed",)},
        )
    record = PredictorRecord(
        setting=table.name,
        key=key,
        path=str(path) if cache else None,
        cached=False,
        fit_time=float(predictor.fit_time_),
        seed=seed,
        n_train=n_train,
        n_val=n_val,
        n_test=len(info["test"]),
        epochs=epochs,
        metrics=metrics,
        val_score=info["val_score"].to_dict() if info["val_score"] is not None else None,
        test_score=info["test_score"].to_dict() if info["test_score"] is not None else None,
    )
    if cache:
        try:
            predictor.save(path)
            meta = {
                "key": key,
                "setting": table.name,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **{k: getattr(record, k) for k in ("fit_time", "n_test", "val_score")},
                "test_score": record.test_score,
            }
            meta_path.write_text(json.dumps(_jsonable(meta), indent=1) + "\n")
        except OSError as exc:
            print(f"warning: could not cache the predictor at {path}: {exc}", file=sys.stderr)
            record = replace(record, path=None)
    return predictor, record


def _print_predictor(rec: PredictorRecord) -> None:
    how = (
        f"reused from cache ({rec.path})"
        if rec.cached
        else f"trained in {rec.fit_time:.1f} s" + (f", cached at {rec.path}" if rec.path else "")
    )
    line = (
        f"{rec.setting} predictor ({rec.n_train} train / {rec.n_val} val, seed {rec.seed}): {how}"
    )
    print(line)
    parts = []
    for label, score in (("val", rec.val_score), ("test", rec.test_score)):
        if score is None or score["n"] < _MIN_SCORED:
            continue
        m = score["metric"]
        parts.append(
            f"{label} ({score['n']} codes) MAE {score['mae'][m]:.3f}, "
            f"Kendall {score['kendall_tau']:.3f}"
        )
    if parts:
        note = " (val chose the checkpoint)" if rec.val_score is not None else ""
        print(f"  {rec.metrics[0]}: " + "; ".join(parts) + note)


# ---------------------------------------------------------------------------------------
# Codes
# ---------------------------------------------------------------------------------------
_INT_LIST_RE = re.compile(r"^\s*\d+(\s*[,\s]\s*\d+)+\s*$")


def parse_code(space: CodeSpace, text: str, *, option: str = "code") -> np.ndarray:
    """A code from text: the space's string format (``space.decode``) or, on NAS-Bench-MR,
    comma/space-separated integers.

    Raises:
        InvalidCodeError: one line starting with ``option``, naming the offending dimension.
    """
    try:
        if _INT_LIST_RE.match(text) and "_" not in text and "|" not in text:
            values = [int(v) for v in re.split(r"[\s,]+", text.strip()) if v]
            return np.asarray(space.validate(np.asarray(values, dtype=np.int64)))
        decode = getattr(space, "decode", None)
        if decode is None:
            raise InvalidCodeError(f"{type(space).__name__} has no string format")
        return np.asarray(decode(text))
    except InvalidCodeError as exc:
        raise InvalidCodeError(f"{option} {text!r}: {exc}") from None


def default_start(space: CodeSpace) -> np.ndarray:
    """The paper's start on NAS-Bench-MR, :data:`NB201_DEFAULT_START` on NAS-Bench-201."""
    from ncp_hpo.propagation import paper_start
    from ncp_hpo.spaces import NB201Space

    if isinstance(space, NB201Space):
        return space.decode(NB201_DEFAULT_START)
    return paper_start(space)


def _is_nb201(space: CodeSpace) -> bool:
    from ncp_hpo.spaces import NB201Space

    return isinstance(space, NB201Space)


def _encode(space: CodeSpace, code: np.ndarray) -> str:
    return str(space.encode(np.asarray(code, dtype=np.int64)))  # type: ignore[attr-defined]


def _costs(space: CodeSpace, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Exact FLOPs and params of ``codes`` in the benchmark's units, and their labels."""
    codes = np.asarray(codes, dtype=np.int64)
    if _is_nb201(space):
        return (
            np.asarray(space.flops(codes)) / 1e6,
            np.asarray(space.params(codes)) / 1e6,
            "MFLOPs (NAS-Bench-201 network, the table's Flops column)",
            "M",
        )
    return (
        np.asarray(space.flops(codes, convention="thop")) / 1e9,
        np.asarray(space.params(codes)) / 1e6,
        "GFLOPs (thop count, 128x128 input: the benchmark's flops column)",
        "M",
    )


# ---------------------------------------------------------------------------------------
# Propagation
# ---------------------------------------------------------------------------------------
def _run_stage(
    settings: list[str],
    predictors: dict[str, NeuralPredictor],
    space: CodeSpace,
    start: np.ndarray,
    args: argparse.Namespace,
) -> PropagationResult:
    from ncp_hpo.propagation import Objective, propagate

    w = 1.0 / len(settings)
    objectives = [
        Objective(predictors[s], weight=w, name=f"{s}:{predictors[s].main_metric_}")
        for s in settings
    ]
    return propagate(
        objectives,
        space,
        start,
        strategy=_STRATEGIES[args.strategy],  # type: ignore[arg-type]
        iterations=args.iters,
        lr=args.lr,
        flops_weight=args.lam,
        flops_source=args.flops,
        record_trajectory=True,
    )


def true_metrics(
    table: BenchmarkTable, code: np.ndarray, *, use_oracle: bool = True
) -> dict[str, Any]:
    """The measured metrics of ``code`` when ``table`` holds it, else the surrogate oracle's.

    Returns:
        ``{"source": "table" | "surrogate" | "none", "metrics": {...}, "stds": {...},
        "table_index": int | None, "fidelity": dict | None}``.
    """
    idx = table.index(np.asarray(code, dtype=np.int64))
    if idx is not None:
        return {
            "source": "table",
            "metrics": {k: float(v[idx]) for k, v in table.metrics.items()},
            "stds": None,
            "table_index": int(idx),
            "fidelity": None,
        }
    if not use_oracle or _is_nb201(table.space):
        return {
            "source": "none",
            "metrics": {},
            "stds": None,
            "table_index": None,
            "fidelity": None,
        }
    from ncp_hpo.benchmarks import OracleConfig, load_oracle, oracle_cache_path
    from ncp_hpo.benchmarks._oracle import OracleCacheWarning

    config = _ORACLE_CONFIG or OracleConfig()
    if not oracle_cache_path(table, config=config).is_file():
        print(
            f"fitting the {table.name} surrogate oracle (once; cached afterwards) ...",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OracleCacheWarning)
        oracle = load_oracle(table, config=config)
    for w in caught:  # an unwritable cache is one line, and the search goes on
        if issubclass(w.category, OracleCacheWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    res = oracle.evaluate(np.asarray(code, dtype=np.int64))
    return {
        "source": "surrogate",
        "metrics": dict(res.metrics),
        "stds": dict(res.stds),
        "table_index": None,
        "fidelity": res.fidelity.to_dict() if res.fidelity is not None else None,
    }


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + ln for ln in lines)


def _unit(table: BenchmarkTable, metric: str) -> str:
    u = table.units.get(metric, "")
    return " %" if u.startswith("%") else (f" {u}" if u else "")


def _report(
    args: argparse.Namespace,
    space: CodeSpace,
    tables: dict[str, BenchmarkTable],
    predictors: dict[str, NeuralPredictor],
    records: dict[str, PredictorRecord],
    stages: list[tuple[str, list[str], PropagationResult]],
    found: np.ndarray,
    progress: bool,
) -> dict[str, Any]:
    start = stages[0][2].initial_codes[0]
    start_code = space.round(start)
    print()
    for label, _, res in stages:
        print(
            f"propagation [{label}]: {args.strategy}, lambda {args.lam:g}, {res.iterations} "
            f"iterations, FLOPs term {args.flops}, {res.elapsed:.2f} s"
        )
        if len(stages) > 1 and res is not stages[-1][2]:
            print(f"  source optimum: {_encode(space, res.codes[0])}")
    print(f"\nstart code: {_encode(space, start_code)}")
    print(f"found code: {_encode(space, found)}")
    rows = []
    for (name, meaning, value), (_, _, v0) in zip(
        space.describe(found),  # type: ignore[attr-defined]
        space.describe(start_code),  # type: ignore[attr-defined]
        strict=True,
    ):
        rows.append([name, meaning, v0, value, "*" if value != v0 else ""])
    print(_table(["dim", "meaning", "start", "found", "changed"], rows))

    flops, params, flops_unit, _ = _costs(space, np.stack([start_code, found]))
    print(
        f"\nexact cost: {flops[1]:.4g} {flops_unit.split(' ')[0]} (start {flops[0]:.4g}), ", end=""
    )
    print(f"{params[1]:.4g} M params (start {params[0]:.4g})")
    print(f"  FLOPs unit: {flops_unit}")

    predicted: dict[str, dict[str, float]] = {}
    truth: dict[str, dict[str, Any]] = {}
    print("\nmetrics of the found code:")
    for name, pred in predictors.items():
        tb = tables[name]
        p = {k: float(v) for k, v in pred.predict(found, as_dict=True).items()}
        p0 = {k: float(v) for k, v in pred.predict(start_code, as_dict=True).items()}
        predicted[name] = p
        main = tb.main_metric
        unit = _unit(tb, main)
        true = true_metrics(tb, found, use_oracle=not args.no_oracle)
        truth[name] = true
        line = f"  {name}: predicted {main} {p[main]:.2f}{unit} (start {p0[main]:.2f})"
        print(line)
        if true["source"] == "table":
            extra = ", ".join(
                f"{k} {v:.4g}" for k, v in true["metrics"].items() if k not in (main,)
            )
            print(
                f"    true {main} {true['metrics'][main]:.2f}{unit} (measured: table row "
                f"{true['table_index']}; {extra})"
            )
        elif true["source"] == "surrogate":
            fid = true["fidelity"] or {}
            print(
                f"    SURROGATE {main} {true['metrics'][main]:.2f} +- {true['stds'][main]:.2f}"
                f"{unit} (code not in the table; surrogate-oracle estimate, fidelity: "
                f"Spearman {fid.get('spearman', float('nan')):.3f}, Kendall "
                f"{fid.get('kendall', float('nan')):.3f}, MAE {fid.get('mae', float('nan')):.2f} "
                f"({fid.get('folds', '?')}-fold CV on {fid.get('rows', '?')} table codes))"
            )
        else:
            print("    true value unknown: code not in the table (surrogate oracle off)")

    doc: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "setting": args.setting,
        "objective_settings": stages[-1][1],
        "transfer_from": args.transfer_from,
        "strategy": _STRATEGIES[args.strategy],
        "lam": args.lam,
        "iterations": args.iters,
        "lr": args.lr,
        "flops_source": args.flops,
        "seed": args.seed,
        "start": {"code": start_code, "string": _encode(space, start_code)},
        "found": {
            "code": found,
            "string": _encode(space, found),
            "describe": [list(r) for r in space.describe(found)],  # type: ignore[attr-defined]
            "predicted": predicted,
            "flops": float(flops[1]),
            "params_m": float(params[1]),
            "flops_unit": flops_unit,
            "true": truth,
        },
        "predictors": {k: r.to_dict() for k, r in records.items()},
        "stages": [
            {"label": label, "settings": sts, "result": res.to_dict()} for label, sts, res in stages
        ],
    }
    if _is_nb201(space):
        doc["steps"] = _nb201_steps(space, tables[args.setting], stages[-1][2])
        print("\nsteps (arg-max every 10 iterations; true values from the table):")
        print(
            _table(
                ["step", "iteration", "cell", "Acc %", "MFLOPs"],
                [
                    [k, s["iteration"], s["cell"], f"{s['acc']:.2f}", f"{s['flops']:.2f}"]
                    for k, s in enumerate(doc["steps"])
                ],
            )
        )
    return doc


def _nb201_steps(space: CodeSpace, table: BenchmarkTable, res: PropagationResult) -> list[dict]:
    traj = res.trajectory
    assert traj is not None
    every = int(res.settings.get("round_every") or 10)
    its = list(range(0, res.iterations + 1, every))
    if its[-1] != res.iterations:
        its.append(res.iterations)
    out = []
    for it in its:
        code = traj.rounded[it, 0]
        row = table.query(code) or {}
        out.append(
            {
                "iteration": it,
                "cell": _encode(space, code),
                "acc": float(row.get(table.main_metric, float("nan"))),
                "flops": float(row.get("flops", float("nan"))),
                "predicted": float(traj.metrics[it, 0, 0]),
            }
        )
    return out


def _plot(
    path: Path,
    space: CodeSpace,
    tables: dict[str, BenchmarkTable],
    stages: list[tuple[str, list[str], PropagationResult]],
    doc: dict[str, Any],
) -> Path:
    from ncp_hpo import _plots

    title = (
        f"NCP on {doc['setting']}: {doc['strategy']}, lambda {doc['lam']:g}, "
        f"{doc['iterations']} iterations"
    )
    if _is_nb201(space):
        tb = tables[doc["setting"]]
        steps = doc["steps"]
        best = int(np.argmax(tb.main))
        return _plots.plot_nb201_steps(
            tb.main,
            tb.metrics["flops"],
            [s["acc"] for s in steps],
            [s["flops"] for s in steps],
            path,
            step_iterations=[s["iteration"] for s in steps],
            reference={
                "table best": (float(tb.metrics["flops"][best]), float(tb.main[best])),
                "paper's found cell (46.8 %, 90.36 M)": (90.36, 46.8),
            },
            title=title,
            acc_label="ImageNet16-120 accuracy (%)",
            flops_label="FLOPs (M)",
        )
    plot_stages = []
    for label, _, res in stages:
        traj = res.trajectory
        assert traj is not None
        rounded = traj.rounded[:, 0]
        fl, _, _, _ = _costs(space, rounded)
        plot_stages.append(
            _plots.TrajectoryStage(
                label=label,
                continuous=traj.continuous[:, 0],
                rounded=rounded,
                metrics={n: traj.metrics[:, 0, j] for j, n in enumerate(res.objective_names)},
                flops=fl,
            )
        )
    names = [n for _, _, res in stages for n in res.objective_names]
    percent = all(any(t.units.get(n, "").startswith("%") for t in tables.values()) for n in names)
    return _plots.plot_code_trajectory(
        plot_stages,
        path,
        title=title,
        flops_label="exact GFLOPs (128x128, thop)",
        metric_label="predicted metric (%)" if percent and names else "predicted metric",
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v
