"""What a setting search produced: :class:`SearchOutcome` with its ``trajectory.json``
document, its text report and its plot (paper Fig. 3 on NAS-Bench-MR, Fig. 6 on
NAS-Bench-201). Built by :func:`ncp_hpo.benchmarks.setting_search.run_setting_search`."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ncp_hpo.benchmarks.predictors import PredictorRecord, jsonable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ncp_hpo.benchmarks._table import BenchmarkTable
    from ncp_hpo.benchmarks.setting_search import SearchRequest
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.propagation import PropagationResult
    from ncp_hpo.spaces import CodeSpace

__all__ = ["SearchOutcome", "Stage", "format_predictor", "text_table"]

_MIN_SCORED = 50  # fewer held-out codes than this give no meaningful score to print


class Stage(NamedTuple):
    """One propagation of a search: its label, the settings it weighs, its result."""

    label: str
    settings: list[str]
    result: PropagationResult


@dataclass(kw_only=True)
class SearchOutcome:
    """Everything one setting search produced.

    Attributes:
        request: the :class:`~ncp_hpo.benchmarks.setting_search.SearchRequest`.
        space: the code space of every table involved.
        tables: setting -> table (transfer source first).
        predictors, records: setting -> predictor and its
            :class:`~ncp_hpo.benchmarks.predictors.PredictorRecord`.
        stages: the propagations in order (transfer source, then the target).
        truth: setting -> :func:`~ncp_hpo.benchmarks.setting_search.true_metrics` of the
            found code.
        wall_time_s: seconds the search took.
    """

    request: SearchRequest
    space: CodeSpace
    tables: dict[str, BenchmarkTable]
    predictors: dict[str, NeuralPredictor]
    records: dict[str, PredictorRecord]
    stages: list[Stage]
    truth: dict[str, dict[str, Any]]
    wall_time_s: float

    @property
    def found(self) -> np.ndarray:
        """The found code (the last stage's rounded code), int64 ``(d,)``."""
        return np.asarray(self.stages[-1].result.codes[0])

    @property
    def start(self) -> np.ndarray:
        """The start code of the first stage, rounded onto the grid."""
        return np.asarray(self.space.round(self.stages[0].result.initial_codes[0]))

    @functools.cached_property
    def predicted(self) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
        """setting -> (predicted metrics of the found code, of the start code)."""
        out = {}
        for name, pred in self.predictors.items():
            p = {k: float(v) for k, v in pred.predict(self.found, as_dict=True).items()}
            p0 = {k: float(v) for k, v in pred.predict(self.start, as_dict=True).items()}
            out[name] = (p, p0)
        return out

    @functools.cached_property
    def steps(self) -> list[dict[str, Any]] | None:
        """NAS-Bench-201: the cell of every arg-max step with its table values, else ``None``."""
        if not _is_nb201(self.space):
            return None
        return _nb201_steps(self.space, self.tables[self.request.setting], self.stages[-1].result)

    def document(self) -> dict[str, Any]:
        """The ``trajectory.json`` document (numpy values included; see :meth:`write`)."""
        req, space, found, start = self.request, self.space, self.found, self.start
        flops, params, flops_unit, _ = _costs(space, np.stack([start, found]))
        doc: dict[str, Any] = {
            "args": req.to_dict(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "setting": req.setting,
            "objective_settings": self.stages[-1].settings,
            "transfer_from": req.transfer_from,
            "strategy": req.propagation_strategy,
            "lam": req.lam,
            "iterations": req.iters,
            "lr": req.lr,
            "flops_source": req.flops,
            "seed": req.seed,
            "start": {"code": start, "string": _encode(space, start)},
            "found": {
                "code": found,
                "string": _encode(space, found),
                "describe": [list(r) for r in space.describe(found)],  # type: ignore[attr-defined]
                "predicted": {k: p for k, (p, _) in self.predicted.items()},
                "flops": float(flops[1]),
                "params_m": float(params[1]),
                "flops_unit": flops_unit,
                "true": self.truth,
            },
            "predictors": {k: r.to_dict() for k, r in self.records.items()},
            "stages": [
                {"label": s.label, "settings": s.settings, "result": s.result.to_dict()}
                for s in self.stages
            ],
        }
        if self.steps is not None:
            doc["steps"] = self.steps
        doc["wall_time_s"] = round(self.wall_time_s, 3)
        return doc

    def report(self) -> str:
        """The text report: stages, start and found code (named table), cost and metrics."""
        lines = [""]
        for s in self.stages:
            res = s.result
            lines.append(
                f"propagation [{s.label}]: {self.request.strategy}, lambda "
                f"{self.request.lam:g}, {res.iterations} iterations, FLOPs term "
                f"{self.request.flops}, {res.elapsed:.2f} s"
            )
            if len(self.stages) > 1 and s is not self.stages[-1]:
                lines.append(f"  source optimum: {_encode(self.space, res.codes[0])}")
        lines += [
            "",
            f"start code: {_encode(self.space, self.start)}",
            f"found code: {_encode(self.space, self.found)}",
        ]
        lines.append(self._code_table())
        lines += self._cost_lines()
        lines += ["", "metrics of the found code:"]
        for name in self.predictors:
            lines += self._metric_lines(name)
        if self.steps is not None:
            lines += ["", "steps (arg-max every 10 iterations; true values from the table):"]
            rows = [
                [k, s["iteration"], s["cell"], f"{s['acc']:.2f}", f"{s['flops']:.2f}"]
                for k, s in enumerate(self.steps)
            ]
            lines.append(text_table(["step", "iteration", "cell", "Acc %", "MFLOPs"], rows))
        return "\n".join(lines)

    def write(self, out: str | Path, *, plot: bool = True) -> list[Path]:
        """Write ``trajectory.json`` (and ``trajectory.png`` with ``plot``) under ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        json_path = out / "trajectory.json"
        json_path.write_text(json.dumps(jsonable(self.document()), indent=1) + "\n")
        written = [json_path]
        if plot:
            written.append(_plot(out / "trajectory.png", self))
        return written

    def _code_table(self) -> str:
        rows = []
        for (name, meaning, value), (_, _, v0) in zip(
            self.space.describe(self.found),  # type: ignore[attr-defined]
            self.space.describe(self.start),  # type: ignore[attr-defined]
            strict=True,
        ):
            rows.append([name, meaning, v0, value, "*" if value != v0 else ""])
        return text_table(["dim", "meaning", "start", "found", "changed"], rows)

    def _cost_lines(self) -> list[str]:
        flops, params, flops_unit, _ = _costs(self.space, np.stack([self.start, self.found]))
        return [
            "",
            f"exact cost: {flops[1]:.4g} {flops_unit.split(' ')[0]} (start {flops[0]:.4g}), "
            f"{params[1]:.4g} M params (start {params[0]:.4g})",
            f"  FLOPs unit: {flops_unit}",
        ]

    def _metric_lines(self, name: str) -> list[str]:
        tb, true = self.tables[name], self.truth[name]
        p, p0 = self.predicted[name]
        main = tb.main_metric
        unit = _unit(tb, main)
        lines = [f"  {name}: predicted {main} {p[main]:.2f}{unit} (start {p0[main]:.2f})"]
        if true["source"] == "table":
            extra = ", ".join(f"{k} {v:.4g}" for k, v in true["metrics"].items() if k != main)
            lines.append(
                f"    true {main} {true['metrics'][main]:.2f}{unit} (measured: table row "
                f"{true['table_index']}; {extra})"
            )
        elif true["source"] == "surrogate":
            fid = true["fidelity"] or {}
            nan = float("nan")
            lines.append(
                f"    SURROGATE {main} {true['metrics'][main]:.2f} +- {true['stds'][main]:.2f}"
                f"{unit} (code not in the table; surrogate-oracle estimate, fidelity: "
                f"Spearman {fid.get('spearman', nan):.3f}, Kendall {fid.get('kendall', nan):.3f}, "
                f"MAE {fid.get('mae', nan):.2f} ({fid.get('folds', '?')}-fold CV on "
                f"{fid.get('rows', '?')} table codes))"
            )
        else:
            lines.append("    true value unknown: code not in the table (surrogate oracle off)")
        return lines


def format_predictor(rec: PredictorRecord) -> str:
    """One or two lines on where a setting predictor came from and its held-out scores."""
    how = (
        f"reused from cache ({rec.path})"
        if rec.cached
        else f"trained in {rec.fit_time:.1f} s" + (f", cached at {rec.path}" if rec.path else "")
    )
    text = (
        f"{rec.setting} predictor ({rec.n_train} train / {rec.n_val} val, seed {rec.seed}): {how}"
    )
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
        text += f"\n  {rec.metrics[0]}: " + "; ".join(parts) + note
    return text


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: left-aligned columns two spaces apart, a dashed rule under the
    header, every line indented by two spaces."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + ln for ln in lines)


def _is_nb201(space: CodeSpace) -> bool:
    from ncp_hpo.spaces import NB201Space

    return isinstance(space, NB201Space)


def _encode(space: CodeSpace, code: np.ndarray) -> str:
    return str(space.encode(np.asarray(code, dtype=np.int64)))  # type: ignore[attr-defined]


def _unit(table: BenchmarkTable, metric: str) -> str:
    u = table.units.get(metric, "")
    return " %" if u.startswith("%") else (f" {u}" if u else "")


def _costs(space: CodeSpace, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Exact FLOPs and params of ``codes`` in the benchmark's units, and their labels."""
    codes = np.asarray(codes, dtype=np.int64)
    if _is_nb201(space):
        return (
            np.asarray(space.flops(codes)) / 1e6,  # type: ignore[attr-defined]
            np.asarray(space.params(codes)) / 1e6,  # type: ignore[attr-defined]
            "MFLOPs (NAS-Bench-201 network, the table's Flops column)",
            "M",
        )
    return (
        np.asarray(space.flops(codes, convention="thop")) / 1e9,  # type: ignore[attr-defined]
        np.asarray(space.params(codes)) / 1e6,  # type: ignore[attr-defined]
        "GFLOPs (thop count, 128x128 input: the benchmark's flops column)",
        "M",
    )


def _nb201_steps(
    space: CodeSpace, table: BenchmarkTable, res: PropagationResult
) -> list[dict[str, Any]]:
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


def _plot(path: Path, outcome: SearchOutcome) -> Path:
    from ncp_hpo import _plots

    req, space, tables = outcome.request, outcome.space, outcome.tables
    title = (
        f"NCP on {req.setting}: {req.propagation_strategy}, lambda {req.lam:g}, "
        f"{req.iters} iterations"
    )
    if outcome.steps is not None:
        tb, steps = tables[req.setting], outcome.steps
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
    for s in outcome.stages:
        traj = s.result.trajectory
        assert traj is not None
        rounded = traj.rounded[:, 0]
        plot_stages.append(
            _plots.TrajectoryStage(
                label=s.label,
                continuous=traj.continuous[:, 0],
                rounded=rounded,
                metrics={n: traj.metrics[:, 0, j] for j, n in enumerate(s.result.objective_names)},
                flops=_costs(space, rounded)[0],
            )
        )
    names = [n for s in outcome.stages for n in s.result.objective_names]
    percent = all(any(t.units.get(n, "").startswith("%") for t in tables.values()) for n in names)
    return _plots.plot_code_trajectory(
        plot_stages,
        path,
        title=title,
        flops_label="exact GFLOPs (128x128, thop)",
        metric_label="predicted metric (%)" if percent and names else "predicted metric",
    )
