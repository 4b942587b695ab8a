"""Setting search: the paper's single-machine NCP loop on a benchmark setting.

The library behind ``ncp-hpo search`` (Section 3.1, Section 4.1, Appendix C):

1. fit the neural predictor of each setting involved on its benchmark table, or reuse a
   cached one (:func:`~ncp_hpo.benchmarks.predictors.setting_predictor`);
2. propagate (:func:`ncp_hpo.propagation.propagate`) from a start code (default: the paper's
   ``{b, n = 2; c, i, o = 64}`` on NAS-Bench-MR, :data:`ncp_hpo.spaces.nb201.DEFAULT_START` on
   NAS-Bench-201), optionally first from another setting's optimum (``transfer_from``) or
   over several settings at once (``joint``, Eq. 7 with equal weights ``1/k``);
3. look up the true metrics of the found code (:func:`true_metrics`): the table's when it
   holds the code, otherwise the surrogate oracle's, marked as such with its fidelity.

:func:`run_setting_search` returns a :class:`SearchOutcome`: the ``trajectory.json``
document (:meth:`SearchOutcome.document`), the text report (:meth:`SearchOutcome.report`)
and the files (:meth:`SearchOutcome.write`). It lives beside the data package because
everything it composes (tables, setting predictors, the oracle) is defined here and the
propagation it calls is public API.

Public names: :class:`SearchRequest`, :class:`SearchOutcome`, :func:`run_setting_search`,
:func:`true_metrics`, :func:`parse_code`,
:data:`STRATEGIES`.

>>> outcome = run_setting_search(SearchRequest(setting="seg", lam=0.3))  # doctest: +SKIP
>>> print(outcome.report())                                            # doctest: +SKIP
>>> outcome.write("ncp-search-seg")                                    # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.benchmarks._search_report import SearchOutcome, Stage
from ncp_hpo.exceptions import InvalidCodeError, OracleCacheWarning, SearchError
from ncp_hpo.propagation._types import check_lam

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._oracle_model import OracleConfig
    from ncp_hpo.benchmarks._table import BenchmarkTable
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.propagation import PropagationResult
    from ncp_hpo.spaces import CodeSpace

__all__ = [
    "STRATEGIES",
    "SearchOutcome",
    "SearchRequest",
    "parse_code",
    "run_setting_search",
    "true_metrics",
]

STRATEGIES = {"continuous": "continuous", "wta": "winner_takes_all"}
"""Strategy names of a :class:`SearchRequest` -> :func:`ncp_hpo.propagation.propagate`'s."""

Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    """One setting search (the options of ``ncp-hpo search``; errors name them).

    Attributes:
        setting: the target benchmark setting (``"seg"``, ``"nas-bench-201"`` ...).
        lam: the search's FLOPs penalty, lambda of Eq. 3 (``>= 0``; the samplers' ``lam``,
            checked by :func:`~ncp_hpo.propagation._types.check_lam`). 0.5 by default, the
            paper's value, where the samplers default to 0 (no penalty).
        strategy: ``"continuous"`` (Eq. 3) or ``"wta"`` (winner-takes-all, Eq. 4-6).
        init: start code text (:func:`parse_code`); ``None``: :func:`default_start`.
        joint: further settings propagated jointly with ``setting`` (Eq. 7, equal weights).
        transfer_from: first propagate this setting from the default start, then
            ``setting`` from the code it found.
        iters: propagation iterations; lr: continuous step size on the standardised code.
        flops: FLOPs term, ``"exact"`` (closed form) or ``"predictor"`` (learned head).
        seed, epochs, n_train, n_val: the predictors' split, seed and training epochs.
        data_dir: benchmark files folder searched first.
        cache: reuse and store setting predictors in the user cache.
        oracle: use the surrogate oracle for found codes outside the table.
    """

    setting: str
    lam: float = 0.5
    strategy: str = "continuous"
    init: str | None = None
    joint: tuple[str, ...] = ()
    transfer_from: str | None = None
    iters: int = 70
    lr: float = 3.0
    flops: str = "exact"
    seed: int = 0
    epochs: int = 200
    n_train: int = 2000
    n_val: int = 500
    data_dir: str | None = None
    cache: bool = True
    oracle: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "lam", check_lam(self.lam))
        except ValueError as exc:
            raise SearchError(f"--{exc}") from None
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise SearchError(f"--lr must be a finite number > 0, got {self.lr}")
        for opt, v, lo in (
            ("--iters", self.iters, 0),
            ("--epochs", self.epochs, 1),
            ("--n-train", self.n_train, 2),
            ("--n-val", self.n_val, 0),
            ("--seed", self.seed, 0),
        ):
            if v < lo:
                raise SearchError(f"{opt} must be >= {lo}, got {v}")
        if self.strategy not in STRATEGIES:
            raise SearchError(f"--strategy must be one of {', '.join(STRATEGIES)}")
        if self.flops not in ("exact", "predictor"):
            raise SearchError(f"--flops must be exact or predictor, got {self.flops!r}")
        if self.init is not None and self.transfer_from is not None:
            raise SearchError(
                "--init and --transfer-from both set the start code; give one of them "
                "(--transfer-from starts from the source setting's optimum)"
            )
        object.__setattr__(self, "joint", tuple(self.joint))

    @property
    def propagation_strategy(self) -> str:
        """The :func:`ncp_hpo.propagation.propagate` name of :attr:`strategy`."""
        return STRATEGIES[self.strategy]

    @property
    def objective_settings(self) -> list[str]:
        """The settings of the final propagation: the target, then the joint ones."""
        return [self.setting, *(s for s in dict.fromkeys(self.joint) if s != self.setting)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``args`` of ``trajectory.json``)."""
        d = asdict(self)
        d["joint"] = list(self.joint)
        return d


def run_setting_search(
    request: SearchRequest,
    *,
    oracle_config: OracleConfig | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> SearchOutcome:
    """Run one setting search: fit or reuse predictors, propagate, look up true metrics.

    Args:
        request: what to search.
        oracle_config: the surrogate oracle's configuration (default
            :class:`~ncp_hpo.benchmarks.OracleConfig`), used for found codes outside the
            table; part of the oracle's cache key.
        progress: tqdm bars while predictors train.
        log: receives one line per event (each predictor, fitting the oracle); default quiet.

    Raises:
        SearchError: settings of different code spaces, ``wta`` on NAS-Bench-201, a split
            larger than a table.
        UnknownSettingError, DataNotFoundError, InvalidCodeError: bad names, missing data,
            a bad ``init``.
    """
    from ncp_hpo.benchmarks._search_report import format_predictor

    t_start = time.perf_counter()
    say = log or (lambda line: None)
    tables = _load_tables(request)
    space = tables[request.setting].space
    start = parse_code(space, request.init, option="--init") if request.init else None
    start = space.default_start() if start is None else start
    predictors: dict[str, NeuralPredictor] = {}
    records = {}
    for name, table in tables.items():
        predictors[name], records[name] = _predictor(table, request, progress)
        say(format_predictor(records[name]))
    stages: list[Stage] = []
    if request.transfer_from:
        src = request.transfer_from
        res = _propagate([src], predictors, space, start, request)
        stages.append(Stage(f"{src} (transfer source)", [src], res))
        start = res.codes[0]
    settings = request.objective_settings
    res = _propagate(settings, predictors, space, start, request)
    suffix = " (transfer target)" if request.transfer_from else ""
    stages.append(Stage(" + ".join(settings) + suffix, settings, res))
    found = np.asarray(res.codes[0])
    truth = {
        name: true_metrics(
            tables[name], found, use_oracle=request.oracle, oracle_config=oracle_config, log=say
        )
        for name in predictors
    }
    return SearchOutcome(
        request=request,
        space=space,
        tables=tables,
        predictors=predictors,
        records=records,
        stages=stages,
        truth=truth,
        wall_time_s=time.perf_counter() - t_start,
    )


def _load_tables(request: SearchRequest) -> dict[str, BenchmarkTable]:
    """The tables of every setting involved (transfer source first), in one code space."""
    from ncp_hpo.benchmarks import get_setting, load_benchmark
    from ncp_hpo.spaces import NB201Space

    source = [request.transfer_from] if request.transfer_from else []
    settings = request.objective_settings
    for name in [*settings, *source]:
        get_setting(name)  # unknown names: one line listing the known settings
    needed = list(dict.fromkeys([*source, *settings]))
    tables = {name: load_benchmark(name, request.data_dir) for name in needed}
    space = tables[request.setting].space
    for name, tb in tables.items():
        if tb.space != space:
            raise SearchError(
                f"{name} codes live in {type(tb.space).__name__}, {request.setting}'s in "
                f"{type(space).__name__}; --joint/--transfer-from need one code space"
            )
    if isinstance(space, NB201Space) and request.strategy == "wta":
        raise SearchError(
            "--strategy winner_takes_all moves one dimension by its grid step and does not "
            "apply to nas-bench-201's one-hot cells; use --strategy continuous (arg-max every "
            "10 iterations)"
        )
    return tables


def _predictor(
    table: BenchmarkTable, request: SearchRequest, progress: bool
) -> tuple[NeuralPredictor, Any]:
    from ncp_hpo.benchmarks.predictors import setting_predictor

    return setting_predictor(
        table,
        seed=request.seed,
        n_train=request.n_train,
        n_val=request.n_val,
        epochs=request.epochs,
        cache=request.cache,
        progress=progress,
    )


def _propagate(
    settings: list[str],
    predictors: dict[str, NeuralPredictor],
    space: CodeSpace,
    start: np.ndarray,
    request: SearchRequest,
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
        strategy=request.propagation_strategy,  # type: ignore[arg-type]
        iterations=request.iters,
        lr=request.lr,
        lam=request.lam,
        flops_source=request.flops,  # type: ignore[arg-type]
        record_trajectory=True,
    )


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


# ---------------------------------------------------------------------------------------
# True metrics
# ---------------------------------------------------------------------------------------
def true_metrics(
    table: BenchmarkTable,
    code: np.ndarray,
    *,
    use_oracle: bool = True,
    oracle_config: OracleConfig | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """The measured metrics of ``code`` when ``table`` holds it, else the surrogate oracle's.

    Args:
        table: a benchmark table; code: one code of its space.
        use_oracle: ``False``: codes outside the table get ``source = "none"``.
        oracle_config: the oracle's configuration (default ``OracleConfig()``).
        log: told once when the oracle has to be fitted (not cached yet).

    Returns:
        ``{"source": "table" | "surrogate" | "none", "metrics": {...}, "stds": {...},
        "table_index": int | None, "fidelity": dict | None}``. An unusable oracle cache is
        an :class:`~ncp_hpo.exceptions.OracleCacheWarning` (the oracle is still used).
    """
    from ncp_hpo.benchmarks import OracleConfig, load_oracle, oracle_cache_path
    from ncp_hpo.spaces import NB201Space

    idx = table.index(np.asarray(code, dtype=np.int64))
    if idx is not None:
        return {
            "source": "table",
            "metrics": {k: float(v[idx]) for k, v in table.metrics.items()},
            "stds": None,
            "table_index": int(idx),
            "fidelity": None,
        }
    if not use_oracle or isinstance(table.space, NB201Space):  # NAS-Bench-201: complete table
        return {
            "source": "none",
            "metrics": {},
            "stds": None,
            "table_index": None,
            "fidelity": None,
        }
    config = oracle_config or OracleConfig()
    if log is not None and not oracle_cache_path(table, config=config).is_file():
        log(f"fitting the {table.name} surrogate oracle (once; cached afterwards) ...")
    with warnings.catch_warnings():
        warnings.simplefilter("always", OracleCacheWarning)
        oracle = load_oracle(table, config=config)
    res = oracle.evaluate(np.asarray(code, dtype=np.int64))
    return {
        "source": "surrogate",
        "metrics": dict(res.metrics),
        "stds": dict(res.stds),
        "table_index": None,
        "fidelity": res.fidelity.to_dict() if res.fidelity is not None else None,
    }
