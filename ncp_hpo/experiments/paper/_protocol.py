"""The paper's fixed-budget comparison protocol (Section 4.2 and Tables 2-4), on the oracle.

``ncp-hpo compare --benchmark seg --protocol paper`` (or :func:`run_paper_protocol`). For
every seed ``s``, a predictor per setting is fitted on 2,000 table codes (500 for
validation; :func:`~ncp_hpo.predictor.fit_setting_predictor` with seed ``s``), every
method proposes codes with it, and every found code is **evaluated by the setting's
surrogate oracle** (:func:`~ncp_hpo.benchmarks.load_oracle`: the table's value when the
table holds the code, else the oracle's prediction; its cross-validated fidelity is in
every table header). Numbers are medians over seeds (per-seed rows in the CSV/JSON).

Table 2 (one setting, default ``seg``; the shape of the paper's Table 2):

* **NCP-continuous / NCP-winner-takes-all, lambda 0.3, 0.5, 0.7**: one propagation of the
  paper's start code ``{b, n = 2; c, i, o = 64}`` for 70 iterations (learning rate 3,
  per-iteration targets ``p + 1`` / ``f - 1``; the FLOPs term uses the space's exact,
  differentiable FLOPs, the package default, instead of the paper's learned FLOPs head).
  One oracle evaluation.
* **Random Search**: 100 uniformly random codes, all evaluated by the oracle, the best
  reported (the paper: "the highest result in top-10 models"). 100 evaluations.
* **Neural Predictor**: 10,000 random codes ranked by the predictor (the package's
  ``NeuralPredictorProposer``), the top 10 evaluated by the oracle, the best reported. 10
  evaluations.
* **NetAdapt**: greedy from the start code: every one-unit move of one dimension
  (``space.neighbors``) is scored by ``z(predicted metric) - 0.5 z(exact FLOPs)`` (``z``:
  divided by the table's standard deviations) and the best move is taken while it improves
  the score, for at most 70 steps (the protocol's own rule, not the sampler's NetAdapt
  proposer: see :func:`~ncp_hpo.experiments.paper._methods.netadapt_greedy`). One oracle
  evaluation.
* the **start code** itself, for reference.

Table 2's trade-off view scores every method's oracle evaluations (NCP's lambdas pooled per
strategy) as a front of the main metric against exact FLOPs, with the normalised
hypervolume ``compare --objective metric+flops`` gives a study
(:func:`~ncp_hpo.experiments.compare._records.tradeoff_hypervolume`): one score for both.

Table 3 (multi-task, the shape of the paper's Table 3): NCP-continuous (lambda 0.5) from the
start code on each single setting and on pairs of settings (Eq. 7: the sum of the two
predictors' objectives, weight 1 each); each code evaluated on every involved setting's
oracle. Table 4 (transfer, the shape of Table 4): for each ordered pair (source, target),
the source's NCP code (the "-F" columns: used as is on the target) and the code propagated
from it with the target's predictor (the "-T" columns), next to NCP from the start code on
the target ("scratch").

FLOPs and parameters are exact (closed form) in the table's convention: GFLOPs at a
128x128 input (the paper's Table 2 used 512x1024, so absolute FLOPs differ).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.paper._methods import (
    ncp_code,
    netadapt_greedy,
    neural_predictor_top,
    predict_main,
)
from ncp_hpo.experiments.paper._report import SHORT, median_rows, write_reports

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkTable, OracleResult, SurrogateOracle
    from ncp_hpo.predictor import NeuralPredictor

__all__ = ["PAPER_PROTOCOL_USES", "PaperProtocolResult", "run_paper_protocol", "unused_options"]

LAMBDAS: tuple[float, ...] = (0.3, 0.5, 0.7)
PAPER_LAMBDA = 0.5
MULTITASK: tuple[tuple[str, ...], ...] = (
    ("cls-50-1000",),
    ("seg",),
    ("video",),
    ("cls-50-1000", "seg"),
    ("seg", "video"),
    ("cls-50-1000", "video"),
)
TRANSFER_SETTINGS: tuple[str, ...] = ("cls-50-1000", "seg", "video")


# What the protocol uses instead of each option of compare's study loop (it refuses them).
PAPER_PROTOCOL_USES: dict[str, str] = {
    "samplers": "its own methods: NCP continuous and winner-takes-all, random search, the "
    "neural predictor and NetAdapt",
    "trials": "a fixed budget per method: 1 oracle evaluation for NCP and NetAdapt, 100 for "
    "random search, the top 10 of 10,000 predicted codes for the neural predictor",
    "budgets": "a fixed budget per method (see --trials)",
    "objective": "the setting's main metric with an exact-FLOPs term",
    "flops-weight": "the paper's FLOPs weights inside NCP's search, lambda 0.3, 0.5 and 0.7 "
    "in Table 2 and 0.5 in Tables 3-4",
    "mode": "the surrogate oracle (the table's value where the table holds the code)",
    "jobs": "one process",
}


def unused_options(given: Iterable[str]) -> str | None:
    """One line naming the first of the ``given`` command-line options (names without
    ``--``) that the paper protocol does not use, and what it uses instead; None when none.

    Raises:
        KeyError: a name that is not a key of :data:`PAPER_PROTOCOL_USES`.
    """
    name = next(iter(given), None)
    if name is None:
        return None
    return (
        f"--{name} is not used by --protocol paper, which uses {PAPER_PROTOCOL_USES[name]}; "
        f"drop --{name} (or use --protocol optuna)"
    )


@dataclass
class PaperProtocolResult:
    """Rows of the three tables (per seed), the written files, fidelities and timing."""

    setting: str
    seeds: list[int]
    table2: list[dict[str, Any]]
    table3: list[dict[str, Any]]
    table4: list[dict[str, Any]]
    fidelity: dict[str, dict[str, Any]]
    predictor_scores: dict[str, list[dict[str, Any]]]
    table2_points: list[dict[str, Any]] = field(default_factory=list)  # every evaluation
    files: dict[str, Path] = field(default_factory=dict)
    elapsed_s: float = 0.0
    skipped: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None


@dataclass
class _Setup:
    """The loaded settings: tables and oracles by name, the multi-task groups and transfer
    settings whose data is present, the benchmark's space and the paper's start code."""

    benchmark: str
    tables: dict[str, BenchmarkTable]
    oracles: dict[str, SurrogateOracle]
    groups: list[tuple[str, ...]]
    transfer: list[str]
    space: Any
    start: np.ndarray
    skipped: list[str]


def run_paper_protocol(
    benchmark: str = "seg",
    *,
    out: str | Path,
    seeds: int = 1,
    data_dir: str | Path | None = None,
    lams: Sequence[float] = LAMBDAS,
    multitask: Sequence[Sequence[str]] = MULTITASK,
    transfer_settings: Sequence[str] = TRANSFER_SETTINGS,
    mlflow: bool = False,
    mlflow_uri: str | None = None,
    mlflow_experiment: str = "ncp-hpo-compare",
    progress: bool = True,
) -> PaperProtocolResult:
    """Run the paper protocol (module docstring) and write ``paper_table{2,3,4}.{md,csv}``
    and ``paper_protocol.json`` under ``out``.

    Settings of ``multitask``/``transfer_settings`` whose files are missing are skipped
    (and listed in the headers).

    Raises:
        CompareError: ``benchmark`` is not a NAS-Bench-MR setting (NAS-Bench-201 has no
            paper start code), or ``seeds`` outside 1 .. 10,000.
        DataNotFoundError: ``benchmark``'s file is missing.
    """
    from ncp_hpo.benchmarks import get_setting

    get_setting(benchmark)
    if benchmark == "nas-bench-201":
        raise CompareError(
            "--protocol paper needs a NAS-Bench-MR setting (seg, cls-50-1000, video, ...): "
            "NAS-Bench-201 has no paper start code"
        )
    from ncp_hpo.experiments.compare._config import check_seeds

    check_seeds(seeds)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds))
    setup = _load(benchmark, data_dir, multitask, transfer_settings)
    table2: list[dict[str, Any]] = []
    tradeoff: list[dict[str, Any]] = []
    table3: list[dict[str, Any]] = []
    table4: list[dict[str, Any]] = []
    scores: dict[str, list[dict[str, Any]]] = {}
    n_steps = len(seed_list) * (len(setup.tables) + 2 * len(lams) + 4 + len(setup.groups) + 1)
    with _bar(n_steps, progress) as step:
        for seed in seed_list:
            preds = _fit_predictors(setup, seed, scores, step)
            rows2, points2 = _table2_rows(setup, preds, seed, lams, step)
            table2 += rows2
            tradeoff += points2
            rows3, single = _table3_rows(setup, preds, seed, step)
            table3 += rows3
            table4 += _table4_rows(setup, preds, seed, single)
            step(f"seed {seed}: transfer")
    result = PaperProtocolResult(
        setting=benchmark,
        seeds=seed_list,
        table2=table2,
        table3=table3,
        table4=table4,
        table2_points=tradeoff,
        fidelity={k: o.fidelity.to_dict() for k, o in setup.oracles.items()},
        predictor_scores=scores,
        skipped=setup.skipped,
    )
    result.elapsed_s = time.perf_counter() - t0
    result.files = write_reports(result, out, setup.tables)
    if mlflow:
        result.mlflow_run_id = _log_mlflow(
            result, setup, lams, uri=mlflow_uri, experiment=mlflow_experiment
        )
    return result


def _load(
    benchmark: str,
    data_dir: str | Path | None,
    multitask: Sequence[Sequence[str]],
    transfer_settings: Sequence[str],
) -> _Setup:
    """Tables and oracles of ``benchmark`` and of the other settings the tables need
    (missing files of the others are skipped; of ``benchmark`` they raise)."""
    from ncp_hpo.benchmarks import load_benchmark, load_oracle
    from ncp_hpo.exceptions import DataNotFoundError
    from ncp_hpo.propagation import paper_start

    tables: dict[str, BenchmarkTable] = {}
    oracles: dict[str, SurrogateOracle] = {}
    skipped: list[str] = []
    wanted = [benchmark, *{s for g in multitask for s in g}, *transfer_settings]
    for name in dict.fromkeys(wanted):
        try:
            tables[name] = load_benchmark(name, data_dir)
        except DataNotFoundError:
            if name == benchmark:
                raise
            skipped.append(name)
            continue
        oracles[name] = load_oracle(tables[name])
    space = tables[benchmark].space
    return _Setup(
        benchmark=benchmark,
        tables=tables,
        oracles=oracles,
        groups=[tuple(g) for g in multitask if all(s in tables for s in g)],
        transfer=[s for s in transfer_settings if s in tables],
        space=space,
        start=paper_start(space),
        skipped=skipped,
    )


def _fit_predictors(
    setup: _Setup,
    seed: int,
    scores: dict[str, list[dict[str, Any]]],
    step: Callable[[str], None],
) -> dict[str, NeuralPredictor]:
    """One predictor per setting, fitted with ``seed`` on 2,000 table codes (500 for
    validation); appends each one's validation scores to ``scores``."""
    from ncp_hpo.predictor import fit_setting_predictor

    preds: dict[str, NeuralPredictor] = {}
    for name, table in setup.tables.items():
        p, info = fit_setting_predictor(table, n_train=2000, n_val=500, seed=seed)
        preds[name] = p
        val = info.get("val_score")
        scores.setdefault(name, []).append(
            {"seed": seed, **({} if val is None else _score_dict(val))}
        )
        step(f"seed {seed}: predictor {name}")
    return preds


def _table2_rows(
    setup: _Setup,
    preds: Mapping[str, NeuralPredictor],
    seed: int,
    lams: Sequence[float],
    step: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Table 2 for one seed: the start code, NCP (both strategies, every lambda), random
    search, the neural predictor and NetAdapt, each code evaluated by the oracle.

    Returns:
        the rows, and every oracle evaluation as a trade-off point (``method``: the
        method, NCP's lambdas pooled per strategy; ``seed``; ``metric``; ``flops_g``).
    """
    b, space, start = setup.benchmark, setup.space, setup.start
    tab, oracle, pred = setup.tables[b], setup.oracles[b], preds[b]
    points: list[dict[str, Any]] = []

    def row(method: str, code: np.ndarray, res: OracleResult, **kw: Any) -> dict[str, Any]:
        return _row(method, seed, code, {b: res}, predicted={b: predict_main(pred, code)}, **kw)

    def evaluated(method: str, results: Sequence[OracleResult]) -> None:
        points.extend(
            {"method": method, "seed": seed, "metric": r.value, "flops_g": r.metrics["flops"]}
            for r in results
        )

    start_res = oracle.evaluate(start)
    rows = [row("Start code {b,n=2; c,i,o=64}", start, start_res, evaluations=1)]
    evaluated(rows[0]["method"], [start_res])
    for strategy, label in (("continuous", "continuous"), ("winner_takes_all", "WTA")):
        for lam in lams:
            code = ncp_code(pred, space, start, strategy=strategy, lam=lam)
            res = oracle.evaluate(code)
            rows.append(row(f"NCP-{label} λ={lam:g}", code, res, evaluations=1))
            evaluated(f"NCP-{label} (λ {', '.join(f'{x:g}' for x in lams)})", [res])
            step(f"seed {seed}: NCP {label} {lam:g}")
    rng = np.random.default_rng(seed)  # random search, then the predictor's pool
    rs = space.sample(100, seed=rng)
    rs_res = oracle.evaluate_many(rs)
    j = int(np.argmax([r.value for r in rs_res]))
    rows.append(row("Random Search (100 samples)", rs[j], rs_res[j], evaluations=100))
    evaluated(rows[-1]["method"], rs_res)
    step(f"seed {seed}: random search")
    top = neural_predictor_top(pred, space, rng, pool_size=10_000, top_k=10)
    top_res = oracle.evaluate_many(top)
    j = int(np.argmax([r.value for r in top_res]))
    label = "Neural Predictor (10,000 predicted, top-10 evaluated)"
    rows.append(row(label, top[j], top_res[j], evaluations=10))
    evaluated(label, top_res)
    step(f"seed {seed}: neural predictor")
    m_std = float(np.std(tab.metrics[tab.main_metric]))
    f_std = float(np.std(tab.metrics["flops"]))
    na, na_steps = netadapt_greedy(
        pred, space, start, lam=PAPER_LAMBDA, metric_std=m_std, flops_std=f_std
    )
    label = f"NetAdapt (greedy, λ={PAPER_LAMBDA:g})"
    na_res = oracle.evaluate(na)
    rows.append(row(label, na, na_res, evaluations=1, steps=na_steps))
    evaluated(label, [na_res])
    step(f"seed {seed}: NetAdapt")
    return rows, points


def _table3_rows(
    setup: _Setup,
    preds: Mapping[str, NeuralPredictor],
    seed: int,
    step: Callable[[str], None],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Table 3 for one seed: NCP-continuous (lambda 0.5) on each group of settings (Eq. 7),
    each code evaluated on every involved setting's oracle; also the single-setting codes."""
    from ncp_hpo.propagation import Objective

    involved = [x for g in setup.groups for x in g]
    rows: list[dict[str, Any]] = []
    single: dict[str, np.ndarray] = {}
    for g in setup.groups:
        objs = [Objective(preds[s], weight=1.0, name=s) for s in g]
        code = ncp_code(objs, setup.space, setup.start, strategy="continuous", lam=PAPER_LAMBDA)
        if len(g) == 1:
            single[g[0]] = code
        results = {s: setup.oracles[s].evaluate(code) for s in dict.fromkeys([*g, *involved])}
        rows.append(
            _row(" + ".join(SHORT.get(s, s) for s in g), seed, code, results,
                 evaluations=1, searched_on="+".join(g))
        )  # fmt: skip
        step(f"seed {seed}: multi-task {'+'.join(g)}")
    return rows, single


def _table4_rows(
    setup: _Setup,
    preds: Mapping[str, NeuralPredictor],
    seed: int,
    single: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Table 4 for one seed: each source's NCP code as is on the target (-F), propagated
    from it with the target's predictor (-T), and NCP from scratch on the target."""
    for s in setup.transfer:
        if s not in single:
            single[s] = ncp_code(
                preds[s], setup.space, setup.start, strategy="continuous", lam=PAPER_LAMBDA
            )
    rows = []
    for src in setup.transfer:
        for tgt in setup.transfer:
            if src == tgt:
                continue
            t_code = ncp_code(preds[tgt], setup.space, single[src], strategy="continuous",
                              lam=PAPER_LAMBDA)  # fmt: skip
            oracle = setup.oracles[tgt]
            f_res, t_res = oracle.evaluate(single[src]), oracle.evaluate(t_code)
            s_res = oracle.evaluate(single[tgt])
            rows.append(
                {
                    "source": src,
                    "target": tgt,
                    "seed": seed,
                    "metric": setup.tables[tgt].main_metric,
                    "flops_f": float(f_res.metrics["flops"]),
                    "metric_f": f_res.value,
                    "source_f": f_res.source,
                    "metric_t": t_res.value,
                    "flops_t": float(t_res.metrics["flops"]),
                    "source_t": t_res.source,
                    "metric_scratch": s_res.value,
                    "flops_scratch": float(s_res.metrics["flops"]),
                    "code_f": "_".join(map(str, single[src].tolist())),
                    "code_t": "_".join(map(str, t_code.tolist())),
                }
            )
    return rows


def _log_mlflow(
    result: PaperProtocolResult,
    setup: _Setup,
    lams: Sequence[float],
    *,
    uri: str | None,
    experiment: str,
) -> str | None:
    """One MLflow run with the written files and Table 2's median main metric per method."""
    from ncp_hpo.tracking import log_files_run

    b = setup.benchmark
    main = setup.tables[b].main_metric
    metrics = {
        f"{r['method']}.{main}": r.get(f"{b}:{main}") for r in median_rows(result.table2, "method")
    }
    return log_files_run(
        result.files,
        {"benchmark": b, "seeds": len(result.seeds), "lambdas": ",".join(map(str, lams))},
        {_mlflow_key(k): v for k, v in metrics.items()},
        uri=uri,
        experiment=experiment,
        run_name=f"paper-protocol-{b}",
    )


def _mlflow_key(k: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", k.replace("λ", "lam"))


def _score_dict(score: Any) -> dict[str, Any]:
    d = {
        "spearman": getattr(score, "spearman_rho", None),
        "kendall": getattr(score, "kendall_tau", None),
    }
    mae = getattr(score, "mae", None)
    if isinstance(mae, Mapping):
        d |= {f"mae_{k}": v for k, v in mae.items()}
    return d


def _row(
    method: str,
    seed: int,
    code: np.ndarray,
    results: Mapping[str, OracleResult],
    *,
    evaluations: int,
    predicted: Mapping[str, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    first = next(iter(results.values()))
    row: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "params_m": float(first.metrics["params"]),
        "flops_g": float(first.metrics["flops"]),
    }
    for setting, res in results.items():
        for k, v in res.metrics.items():
            if k not in ("flops", "params"):
                row[f"{setting}:{k}"] = float(v)
        row[f"{setting}:source"] = res.source
        row[f"{setting}:std"] = float(res.std)
    for setting, v in (predicted or {}).items():
        row[f"{setting}:predicted"] = float(v)
    row["evaluations"] = evaluations
    row["code"] = "_".join(str(int(v)) for v in code)
    row.update(extra)
    return row


@contextmanager
def _bar(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda desc: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="paper protocol", unit="step", dynamic_ncols=True)

    def step(desc: str) -> None:
        bar.set_postfix_str(desc, refresh=False)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()
