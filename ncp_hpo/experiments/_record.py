"""Check that a recorded comparison regenerates: re-run a small slice (a few seeds, the first
trials) and compare it, trial by trial, with the record's ``results.json``.

A study's first ``n`` trials do not depend on how many trials follow, so a 30-trial re-run
of seeds 0 and 1 must reproduce the first 30 codes and values of the recorded 100-trial
studies exactly, when the code, the seeds, the library versions and the CPU math settings
(:mod:`ncp_hpo._numerics`) are the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ncp_hpo.exceptions import RecordError


@dataclass(frozen=True)
class RecordCheck:
    """The outcome of :func:`check_record`.

    Attributes:
        compared: ``(sampler, seed)`` pairs compared, each over ``trials`` trials.
        trials: trials compared per study.
        mismatches: one line per study whose codes or values differ (first differing trial).
        record_environment: the recording run's environment (versions, math settings).
    """

    compared: list[tuple[str, int]]
    trials: int
    mismatches: list[str] = field(default_factory=list)
    record_environment: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def load_record(path: str | Path) -> dict[str, Any]:
    """The ``results.json`` of a recorded comparison (``path``: the file or its folder).

    The config key ``lam`` of records written before 0.2.0 is read as
    ``flops_weight`` (the objective's FLOPs weight), so every reader sees the new name.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data: dict[str, Any] = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise RecordError(f"cannot read the record {p}: {exc}") from None
    if not isinstance(data.get("runs"), list) or "config" not in data:
        raise RecordError(f"{p} is not a comparison record (no 'runs'/'config')")
    cfg = data["config"]
    if isinstance(cfg, dict) and "lam" in cfg and "flops_weight" not in cfg:
        # records written before the rename (lam -> flops_weight) keep the old key
        data["config"] = {("flops_weight" if k == "lam" else k): v for k, v in cfg.items()}
    return data


def _first_difference(a: list[Any], b: list[Any]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_record(
    record: str | Path,
    *,
    out: str | Path,
    seeds: int = 2,
    trials: int = 30,
    samplers: tuple[str, ...] | None = None,
    data_dir: str | Path | None = None,
) -> RecordCheck:
    """Re-run ``samplers`` (default: all in the record) for seeds ``0..seeds-1`` and
    ``trials`` trials into ``out`` and compare codes and objective values with the record.

    Raises:
        RecordError: the record is unreadable, or holds fewer seeds/trials than asked for.
    """
    from ncp_hpo.experiments.compare import CompareConfig, run_comparison

    data = load_record(record)
    cfg = data["config"]
    names = tuple(samplers) if samplers is not None else tuple(cfg["samplers"])
    if trials > int(cfg["trials"]) or seeds > int(cfg["seeds"]):
        raise RecordError(
            f"the record holds {cfg['seeds']} seeds x {cfg['trials']} trials; "
            f"asked for {seeds} x {trials}"
        )
    recorded = {(r["sampler"], int(r["seed"])): r for r in data["runs"]}
    # ``ncp`` is the default configuration of the record's time (paper mode before 0.2.0)
    ncp_as = f"ncp-{cfg.get('ncp_mode', 'paper')}"
    label = {ncp_as: "ncp"} if "ncp" in names and ncp_as not in names else {}
    result = run_comparison(
        CompareConfig(
            cfg["benchmark"],
            samplers=tuple(ncp_as if n == "ncp" and label else n for n in names),
            trials=trials,
            seeds=seeds,
            objective=cfg["objective"],
            flops_weight=cfg.get("flops_weight"),
            mode=cfg.get("mode"),
            max_flops=cfg.get("max_flops"),
            prior=cfg.get("prior"),
            out=out,
            data_dir=data_dir,
            budgets=tuple(b for b in cfg.get("budgets", ()) if b <= trials) or (trials,),
            progress=False,
        )
    )
    check = RecordCheck(compared=[], trials=trials, record_environment=data.get("environment", {}))
    for run in result.runs:
        key = (label.get(run.sampler, run.sampler), run.seed)
        rec = recorded.get(key)
        if rec is None:
            raise RecordError(f"the record has no study for sampler {key[0]!r}, seed {key[1]}")
        check.compared.append(key)
        new_codes = list(run.codes[:trials])
        new_values = [round(float(v), 6) for v in run.values[:trials, 0]]
        old_codes = list(rec["codes"])[:trials]
        old_values = [round(float(v[0]), 6) for v in list(rec["values"])[:trials]]
        i = _first_difference(new_codes, old_codes)
        j = _first_difference(new_values, old_values)
        first = min(x for x in (i, j, trials) if x is not None)
        if first < trials:
            check.mismatches.append(
                f"{run.sampler} seed {run.seed}: differs from trial {first} on "
                f"(recorded {old_codes[first] if first < len(old_codes) else None!s} = "
                f"{old_values[first] if first < len(old_values) else None}, now "
                f"{new_codes[first] if first < len(new_codes) else None!s} = "
                f"{new_values[first] if first < len(new_values) else None})"
            )
    return check
