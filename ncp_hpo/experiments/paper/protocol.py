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
* **Neural Predictor**: 10,000 random codes ranked by the predictor, the top 10 evaluated
  by the oracle, the best reported. 10 evaluations.
* **NetAdapt**: greedy from the start code: every one-unit move of one dimension
  (``space.neighbors``) is scored by ``z(predicted metric) - 0.5 z(exact FLOPs)`` (``z``:
  divided by the table's standard deviations) and the best move is taken while it improves
  the score, for at most 70 steps. One oracle evaluation.
* the **start code** itself, for reference.

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

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.compare.stats import summary_stat
from ncp_hpo.experiments.files import jsonable, write_csv

if TYPE_CHECKING:
    from ncp_hpo.benchmarks._oracle import OracleResult, SurrogateOracle
    from ncp_hpo.benchmarks._table import BenchmarkTable
    from ncp_hpo.predictor import NeuralPredictor

__all__ = ["PaperProtocolResult", "netadapt_greedy", "run_paper_protocol"]

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
SHORT = {"cls-50-1000": "Cls", "seg": "Seg", "video": "Video", "cls-50-100": "Cls-B",
         "cls-10-1000": "Cls-C", "seg-4x": "Seg-4x"}  # fmt: skip


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
    files: dict[str, Path] = field(default_factory=dict)
    elapsed_s: float = 0.0
    skipped: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None


# -----------------------------------------------------------------------------------------
# Methods
# -----------------------------------------------------------------------------------------
def _flops_g(codes: np.ndarray) -> np.ndarray:
    from ncp_hpo.spaces.cost import flops

    return np.asarray(flops(np.atleast_2d(codes), convention="thop"), dtype=np.float64) / 1e9


def netadapt_greedy(
    predictor: Any,
    space: Any,
    start: np.ndarray,
    *,
    lam: float,
    metric_std: float,
    flops_std: float,
    max_steps: int = 70,
) -> tuple[np.ndarray, int]:
    """NetAdapt from ``start``: take the best one-unit move while it improves
    ``pred / metric_std - lam * flops / flops_std``. Returns (code, steps taken).

    ``predictor``: a fitted :class:`~ncp_hpo.predictor.NeuralPredictor` (or anything with
    ``predict``, ``metric_names_`` and ``main_metric_``); FLOPs are exact (GFLOPs, thop).
    """
    main = predictor.metric_names_.index(predictor.main_metric_)

    def score(codes: np.ndarray) -> np.ndarray:
        pred = np.atleast_2d(predictor.predict(codes))[:, main]
        return pred / metric_std - lam * _flops_g(codes) / flops_std

    code = np.asarray(start, dtype=np.int64)
    current = float(score(code[None])[0])
    steps = 0
    for _ in range(max_steps):
        nbrs = space.neighbors(code)
        if len(nbrs) == 0:
            break
        s = score(nbrs)
        j = int(np.argmax(s))
        if s[j] <= current + 1e-12:
            break
        code, current, steps = nbrs[j], float(s[j]), steps + 1
    return code, steps


def _ncp(
    objectives: Any, space: Any, start: np.ndarray, *, strategy: str, lam: float
) -> np.ndarray:
    from ncp_hpo.propagation import propagate

    res = propagate(
        objectives,
        space,
        start,
        strategy=strategy,  # type: ignore[arg-type]
        flops_weight=lam,
        record_trajectory=False,
    )
    return np.asarray(res.codes[0], dtype=np.int64)


# -----------------------------------------------------------------------------------------
# Evaluation helpers
# -----------------------------------------------------------------------------------------
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


def _predict_main(p: NeuralPredictor, code: np.ndarray) -> float:
    main = p.metric_names_.index(p.main_metric_)
    return float(np.atleast_2d(p.predict(code[None]))[0, main])


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


# -----------------------------------------------------------------------------------------
# The protocol
# -----------------------------------------------------------------------------------------
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
            paper start code), or ``seeds < 1``.
        DataNotFoundError: ``benchmark``'s file is missing.
    """
    from ncp_hpo.benchmarks import get_setting, load_benchmark, load_oracle
    from ncp_hpo.exceptions import DataNotFoundError
    from ncp_hpo.predictor import fit_setting_predictor
    from ncp_hpo.propagation import paper_start

    get_setting(benchmark)
    if benchmark == "nas-bench-201":
        raise CompareError(
            "--protocol paper needs a NAS-Bench-MR setting (seg, cls-50-1000, video, ...): "
            "NAS-Bench-201 has no paper start code"
        )
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise CompareError(f"--seeds must be an integer >= 1, got {seeds!r}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds))

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
    groups = [tuple(g) for g in multitask if all(s in tables for s in g)]
    tsettings = [s for s in transfer_settings if s in tables]
    space = tables[benchmark].space
    start = paper_start(space)

    table2: list[dict[str, Any]] = []
    table3: list[dict[str, Any]] = []
    table4: list[dict[str, Any]] = []
    scores: dict[str, list[dict[str, Any]]] = {}
    n_steps = len(seed_list) * (len(tables) + 2 * len(lams) + 4 + len(groups) + 1)
    with _bar(n_steps, progress) as step:
        for seed in seed_list:
            preds: dict[str, NeuralPredictor] = {}
            for name, table in tables.items():
                p, info = fit_setting_predictor(table, n_train=2000, n_val=500, seed=seed)
                preds[name] = p
                val = info.get("val_score")
                scores.setdefault(name, []).append(
                    {"seed": seed, **({} if val is None else _score_dict(val))}
                )
                step(f"seed {seed}: predictor {name}")
            # ---- Table 2 ------------------------------------------------------------
            tab, oracle, pred = tables[benchmark], oracles[benchmark], preds[benchmark]
            evals = {benchmark: oracle}

            def ev(code: np.ndarray, on: Mapping[str, SurrogateOracle] = evals) -> dict[str, Any]:
                return {k: o.evaluate(code) for k, o in on.items()}

            table2.append(
                _row("Start code {b,n=2; c,i,o=64}", seed, start, ev(start), evaluations=1,
                     predicted={benchmark: _predict_main(pred, start)})
            )  # fmt: skip
            for strategy, label in (("continuous", "continuous"), ("winner_takes_all", "WTA")):
                for lam in lams:
                    code = _ncp(pred, space, start, strategy=strategy, lam=lam)
                    table2.append(
                        _row(f"NCP-{label} λ={lam:g}", seed, code, ev(code), evaluations=1,
                             predicted={benchmark: _predict_main(pred, code)})
                    )  # fmt: skip
                    step(f"seed {seed}: NCP {label} {lam:g}")
            rng = np.random.default_rng(seed)
            rs = space.sample(100, seed=rng)
            rs_res = oracle.evaluate_many(rs)
            j = int(np.argmax([r.value for r in rs_res]))
            table2.append(
                _row("Random Search (100 samples)", seed, rs[j], {benchmark: rs_res[j]},
                     evaluations=100, predicted={benchmark: _predict_main(pred, rs[j])})
            )  # fmt: skip
            step(f"seed {seed}: random search")
            pool = space.sample(10_000, seed=rng)
            main = pred.metric_names_.index(pred.main_metric_)
            pp = np.atleast_2d(pred.predict(pool))[:, main]
            top = pool[np.argsort(-pp, kind="stable")[:10]]
            top_res = oracle.evaluate_many(top)
            j = int(np.argmax([r.value for r in top_res]))
            table2.append(
                _row("Neural Predictor (10,000 predicted, top-10 evaluated)", seed, top[j],
                     {benchmark: top_res[j]}, evaluations=10,
                     predicted={benchmark: _predict_main(pred, top[j])})
            )  # fmt: skip
            step(f"seed {seed}: neural predictor")
            m_std = float(np.std(tab.metrics[tab.main_metric]))
            f_std = float(np.std(tab.metrics["flops"]))
            na, na_steps = netadapt_greedy(
                pred, space, start, lam=PAPER_LAMBDA, metric_std=m_std, flops_std=f_std
            )
            table2.append(
                _row(f"NetAdapt (greedy, λ={PAPER_LAMBDA:g})", seed, na, ev(na), evaluations=1,
                     predicted={benchmark: _predict_main(pred, na)}, steps=na_steps)
            )  # fmt: skip
            step(f"seed {seed}: NetAdapt")
            # ---- Table 3: single and multi-task ------------------------------------------
            single: dict[str, np.ndarray] = {}
            for g in groups:
                from ncp_hpo.propagation import Objective

                objs = [Objective(preds[s], weight=1.0, name=s) for s in g]
                code = _ncp(objs, space, start, strategy="continuous", lam=PAPER_LAMBDA)
                if len(g) == 1:
                    single[g[0]] = code
                on = {s: oracles[s] for s in dict.fromkeys([*g, *[x for gg in groups for x in gg]])}
                table3.append(
                    _row(" + ".join(SHORT.get(s, s) for s in g), seed, code, ev(code, on),
                         evaluations=1, searched_on="+".join(g))
                )  # fmt: skip
                step(f"seed {seed}: multi-task {'+'.join(g)}")
            # ---- Table 4: transfer --------------------------------------------------------
            for s in tsettings:
                if s not in single:
                    single[s] = _ncp(
                        preds[s], space, start, strategy="continuous", lam=PAPER_LAMBDA
                    )
            for src in tsettings:
                for tgt in tsettings:
                    if src == tgt:
                        continue
                    t_code = _ncp(preds[tgt], space, single[src], strategy="continuous",
                                  lam=PAPER_LAMBDA)  # fmt: skip
                    f_res = oracles[tgt].evaluate(single[src])
                    t_res = oracles[tgt].evaluate(t_code)
                    s_res = oracles[tgt].evaluate(single[tgt])
                    table4.append(
                        {
                            "source": src,
                            "target": tgt,
                            "seed": seed,
                            "metric": tables[tgt].main_metric,
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
            step(f"seed {seed}: transfer")

    fidelity = {k: o.fidelity.to_dict() for k, o in oracles.items()}
    result = PaperProtocolResult(
        setting=benchmark,
        seeds=seed_list,
        table2=table2,
        table3=table3,
        table4=table4,
        fidelity=fidelity,
        predictor_scores=scores,
        skipped=skipped,
    )
    result.elapsed_s = time.perf_counter() - t0
    result.files = _write(result, out, tables)
    if mlflow:
        from ncp_hpo.tracking._comparison import log_files_run

        t2 = _median_rows(table2, "method")
        metrics = {
            f"{r['method']}.{tables[benchmark].main_metric}": r.get(
                f"{benchmark}:{tables[benchmark].main_metric}"
            )
            for r in t2
        }
        result.mlflow_run_id = log_files_run(
            result.files,
            {"benchmark": benchmark, "seeds": seeds, "lambdas": ",".join(map(str, lams))},
            {_mlflow_key(k): v for k, v in metrics.items()},
            uri=mlflow_uri,
            experiment=mlflow_experiment,
            run_name=f"paper-protocol-{benchmark}",
        )
    return result


def _mlflow_key(k: str) -> str:
    import re

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


# -----------------------------------------------------------------------------------------
# Reports
# -----------------------------------------------------------------------------------------
def _median_rows(rows: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per ``key`` value (first-seen order): numeric columns -> median over seeds, plus
    ``<col>:q25``/``<col>:q75``; text columns -> the most common value or a count."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    out = []
    for k, rs in groups.items():
        row: dict[str, Any] = {key: k, "n_seeds": len(rs)}
        cols = dict.fromkeys(c for r in rs for c in r)
        for c in cols:
            if c in (key, "seed"):
                continue
            vals = [r.get(c) for r in rs]
            nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
            if nums and len(nums) == len(vals):
                st = summary_stat(nums)
                row[c], row[f"{c}:q25"], row[f"{c}:q75"] = st.median, st.q25, st.q75
            else:
                texts = [str(v) for v in vals]
                uniq = sorted(set(texts))
                row[c] = (
                    uniq[0] if len(uniq) == 1 else ", ".join(f"{u} x{texts.count(u)}" for u in uniq)
                )
        out.append(row)
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"
    return "n/a" if v is None else str(v)


def _iqr(row: Mapping[str, Any], col: str, digits: int = 2) -> str:
    lo, hi = row.get(f"{col}:q25"), row.get(f"{col}:q75")
    base = _fmt(row.get(col), digits)
    if row.get("n_seeds", 1) > 1 and isinstance(lo, float) and isinstance(hi, float):
        return f"{base} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return base


def _header(result: PaperProtocolResult, title: str, settings: Sequence[str]) -> list[str]:
    lines = [f"# {title}", ""]
    n = len(result.seeds)
    lines.append(
        f"- Seeds: {n} (predictors fitted with seeds 0..{n - 1} on 2,000 table codes, 500 for "
        "validation); numbers are medians over seeds"
        + (", [25th, 75th percentile] where shown" if n > 1 else "")
        + "."
    )
    for s in settings:
        fid = result.fidelity.get(s)
        if fid:
            lines.append(
                f"- Oracle `{s}` ({fid['metric']}): held-out Spearman {fid['spearman']:.3f}, "
                f"Kendall {fid['kendall']:.3f}, MAE {fid['mae']:.3f} "
                f"({fid['folds']}-fold CV over {fid['rows']} codes)."
            )
        sc = result.predictor_scores.get(s)
        if sc:
            sp = [float(x["spearman"]) for x in sc if x.get("spearman") is not None]
            if sp:
                lines.append(
                    f"- NCP predictor `{s}`: validation Spearman (500 codes) median "
                    f"{float(np.median(sp)):.3f}."
                )
    lines.append(
        "- Source: `table` = the code is in NAS-Bench-MR (measured value); `surrogate` = the "
        "oracle's prediction. FLOPs: GFLOPs at 128x128 (table convention), exact."
    )
    if result.skipped:
        lines.append(f"- Skipped (data not available): {', '.join(result.skipped)}.")
    from ncp_hpo._numerics import environment_line
    from ncp_hpo.experiments.compare.provenance import git_provenance

    git = git_provenance().get("git")
    lines.append(
        f"- Created {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
        + (f" by the code at git {git}" if git else "")
        + f"; {result.elapsed_s:.0f} s for the whole protocol."
    )
    lines.append(f"- Environment: {environment_line()}.")
    return [*lines, ""]


def _write(
    result: PaperProtocolResult, out: Path, tables: Mapping[str, BenchmarkTable]
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    b = result.setting
    tab = tables[b]
    main = tab.main_metric
    others = [k for k in tab.metrics if k not in (main, "flops", "params")]
    # ---- Table 2
    t2 = _median_rows(result.table2, "method")
    lines = _header(result, f"Paper protocol, Table 2 shape: search strategies on {b}", [b])
    head = ["method", "params (M)", "FLOPs (G)", main, *others, f"predicted {main}",
            "oracle evaluations", "source"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for r in t2:
        cells = [
            r["method"],
            _fmt(r["params_m"]),
            _fmt(r["flops_g"], 3),
            _iqr(r, f"{b}:{main}"),
            *[_fmt(r.get(f"{b}:{m}")) for m in others],
            _fmt(r.get(f"{b}:predicted")),
            str(int(r["evaluations"])),
            str(r.get(f"{b}:source", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Random Search reports the best of 100 oracle-evaluated random codes and the Neural "
        "Predictor the best of its top 10 (oracle-evaluated) among 10,000 predicted codes; "
        "NCP and NetAdapt make one proposal each, evaluated once. `predicted` is the NCP "
        "predictor's own estimate of the reported code.",
    ]
    files["table2_md"] = out / "paper_table2.md"
    files["table2_md"].write_text("\n".join(lines) + "\n")
    files["table2_csv"] = write_csv(out / "paper_table2.csv", result.table2)
    # ---- Table 3
    if result.table3:
        t3 = _median_rows(result.table3, "method")
        settings = list(
            dict.fromkeys(s for r in result.table3 for s in r["searched_on"].split("+"))
        )
        lines = _header(result, "Paper protocol, Table 3 shape: single- and multi-task NCP",
                        settings)  # fmt: skip
        head = ["searched on", "params (M)", "FLOPs (G)"] + [
            f"{SHORT.get(s, s)} {tables[s].main_metric}" for s in settings
        ]
        lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for r in t3:
            cells = [r["method"], _fmt(r["params_m"]), _fmt(r["flops_g"], 3)]
            for s in settings:
                col = f"{s}:{tables[s].main_metric}"
                src = r.get(f"{s}:source", "")
                cells.append(f"{_iqr(r, col)}{'' if src == 'surrogate' else f' ({src})'}")
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "NCP-continuous, λ=0.5, from the paper's start code; pairs use both predictors "
            "(Eq. 7, weight 1 each). Every code is evaluated on every setting's oracle "
            "(values are surrogate predictions unless marked `(table)`).",
        ]
        files["table3_md"] = out / "paper_table3.md"
        files["table3_md"].write_text("\n".join(lines) + "\n")
        files["table3_csv"] = write_csv(out / "paper_table3.csv", result.table3)
    # ---- Table 4
    if result.table4:
        keyed = [{**r, "pair": f"{r['source']} -> {r['target']}"} for r in result.table4]
        t4 = _median_rows(keyed, "pair")
        settings = list(dict.fromkeys(r["source"] for r in result.table4))
        lines = _header(result, "Paper protocol, Table 4 shape: cross-task transfer", settings)
        head = ["source -> target", "metric", "FLOPs-F (G)", "metric-F", "metric-T",
                "FLOPs-T (G)", "scratch metric", "scratch FLOPs (G)"]  # fmt: skip
        lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
        for r in t4:
            cells = [
                r["pair"],
                r["metric"],
                _fmt(r["flops_f"], 3),
                _iqr(r, "metric_f"),
                _iqr(r, "metric_t"),
                _fmt(r["flops_t"], 3),
                _iqr(r, "metric_scratch"),
                _fmt(r["flops_scratch"], 3),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "-F: the source task's NCP code (λ=0.5 from the start code) used as is on the "
            "target; -T: propagated from it with the target's predictor (λ=0.5, 70 "
            "iterations); scratch: NCP on the target from the paper's start code. All values "
            "from the target's oracle.",
        ]
        files["table4_md"] = out / "paper_table4.md"
        files["table4_md"].write_text("\n".join(lines) + "\n")
        files["table4_csv"] = write_csv(out / "paper_table4.csv", result.table4)
    files["json"] = out / "paper_protocol.json"
    doc = {
        "setting": result.setting,
        "seeds": result.seeds,
        "elapsed_s": result.elapsed_s,
        "fidelity": result.fidelity,
        "predictor_scores": result.predictor_scores,
        "skipped": result.skipped,
        "table2": result.table2,
        "table3": result.table3,
        "table4": result.table4,
        "table2_median": t2,
    }
    files["json"].write_text(json.dumps(jsonable(doc), indent=1))
    return files
