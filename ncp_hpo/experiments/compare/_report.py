"""The Markdown summary of a comparison (``summary.md``) and its verdict line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ncp_hpo.experiments._markdown import markdown_table
from ncp_hpo.experiments.compare._config import PRIOR_SEED, REFERENCE_SAMPLER, WARM_START_SUFFIX
from ncp_hpo.experiments.compare._provenance import environment_info
from ncp_hpo.experiments.compare._records import BenchmarkInfo, SamplerSummary, score_name
from ncp_hpo.search import DEFAULT_SAMPLERS

if TYPE_CHECKING:
    from ncp_hpo.experiments.compare._runner import ComparisonResult


def digits(info: BenchmarkInfo) -> int:
    """Decimals of a score: 4 for a hypervolume, 2 for a metric."""
    return 4 if info.n_objectives == 2 else 2


def _wall_text(ms: float) -> str:
    if not math.isfinite(ms):
        return "n/a"
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def _fidelity_text(fid: Mapping[str, Any] | None) -> str:
    if not fid:
        return ""
    return (
        f"Spearman {fid.get('spearman', float('nan')):.3f}, "
        f"Kendall {fid.get('kendall', float('nan')):.3f}, "
        f"MAE {fid.get('mae', float('nan')):.3f} "
        f"({fid.get('folds', '?')}-fold CV over {fid.get('rows', '?')} table codes, "
        f"metric {fid.get('metric', '?')})"
    )


def markdown_report(result: ComparisonResult, *, title: str | None = None) -> str:
    """The Markdown summary: a header with the settings, the table, and the notes."""
    lines = [f"# {title or f'Sampler comparison on {result.info.setting}'}", ""]
    lines += _settings_lines(result) + _timing_lines(result) + ["", ""]
    lines += _summary_table(result)
    lines += ["", _cells_note(result)]
    verdict_line = verdict(result.summaries, result.info)
    if verdict_line:
        lines += ["", verdict_line]
    notes = _notes(result)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _settings_lines(result: ComparisonResult) -> list[str]:
    """Benchmark, budget, score (and hypervolume coordinates, oracle fidelity)."""
    cfg, info = result.config, result.info
    d = digits(info)
    seeds = cfg.seed_list
    obj_desc = ", ".join(
        f"`{n}` ({dr})" for n, dr in zip(info.objective_names, info.directions, strict=True)
    )
    lines = [
        f"- Benchmark: `{info.setting}`, mode `{info.mode}`; objective {obj_desc}.",
        f"- Trials: {cfg.trials} per study; seeds {seeds[0]}..{seeds[-1]} "
        f"({len(seeds)}); samplers: {', '.join(cfg.samplers)}.",
        f"- Score: {score_name(info)}; optimum {info.optimum:.{d + 1}f} ({info.optimum_note})."
        if info.optimum is not None
        else f"- Score: {score_name(info)}.",
    ]
    if info.budget:
        lines.append(_budget_line(info.budget))
    if info.n_objectives == 2:
        (m_lo, m_hi), (f_lo, f_hi) = info.metric_range, info.cost_range
        lines.append(
            f"- Hypervolume: `u = ({m_hi:.4g} - {info.main_metric}) / {m_hi - m_lo:.4g}`, "
            f"`v = ({info.cost} - {f_lo:.4g}) / {f_hi - f_lo:.4g}` ({info.cost} in "
            f"{info.units.get(info.cost, '?')}; table ranges), both minimised, reference point "
            "(1, 1)."
        )
    if info.fidelity:
        lines.append(f"- Surrogate oracle fidelity: {_fidelity_text(info.fidelity)}.")
    if cfg.prior is not None:
        lines.append(
            f"- Prior of the `+prior` rows: the `{cfg.prior}` predictor (main metric + flops, "
            f"fitted on 2,000 of its table's codes, seed {PRIOR_SEED}), given as `prior=`; the "
            "same sampler without `+prior` starts from scratch."
        )
    zc = any(s.endswith(WARM_START_SUFFIX) for s in cfg.samplers)
    lines.append(
        "- Zero-cost warm start of `ncp` (its start-up trials are chosen before any training, "
        "from a score of the untrained network or the exact cost"
        + ("; the `+zc` rows enqueue the same codes" if zc else "")
        + f"): {result.warm_start}."
        if result.warm_start
        else "- Zero-cost warm start: none (no score table for this space; random start-up)."
    )
    return lines


def _budget_line(budget: Mapping[str, Any]) -> str:
    given = budget.get("given")
    how = f" (`--max-flops {given}` of the table's exact FLOPs)" if isinstance(given, str) else ""
    return (
        f"- FLOPs budget: <= {budget['max_flops']:.6g} {budget['unit']}{how}, counted with the "
        f"exact closed-form FLOPs; {budget['table_codes_within']:,} of "
        f"{budget['table_codes']:,} table codes within it. `ncp`, `netadapt`, "
        "`neural-predictor` and `random` search only within it; a code another sampler "
        "proposes over it is refused unevaluated (PRUNED, `fail_reason` 'over compute "
        "budget', an Optuna constraint) and never counted."
    )


def _budget_notes(result: ComparisonResult) -> list[str]:
    """Refusals and time per study of a budgeted comparison."""
    if not result.info.budget:
        return []
    refused, times = [], []
    for s in result.config.samplers:
        runs = [r for r in result.runs if r.sampler == s]
        if not runs:
            continue
        n = [r.n_refused or 0 for r in runs]
        refused.append(f"`{s}` {sum(n)} (median {float(np.median(n)):g} per study)")
        times.append(f"`{s}` {float(np.median([r.study_s for r in runs])):.1f} s")
    return [
        "over-budget refusals (never evaluated, not counted): " + ", ".join(refused) + ".",
        "median time per study (counted trials plus refused ones): " + ", ".join(times) + ".",
    ]


def _timing_lines(result: ComparisonResult) -> list[str]:
    """Wall times of the calls, this call's study counts, and the environment."""
    lines = []
    st = result.studies
    working = [c for c in result.calls if c.get("trials_to_run", 0) > 0]
    if working:
        jobs = sorted({int(c.get("jobs", 1)) for c in working})
        commits = sorted({str(c["git"]) for c in working if c.get("git")})
        lines.append(
            f"- Wall time of the calls that ran trials: "
            f"{sum(float(c['elapsed_s']) for c in working):.0f} s ({len(working)} call(s), "
            f"--jobs {'/'.join(map(str, jobs))}, {sum(int(c['trials_to_run']) for c in working)}"
            " trials"
            + (f", code at git {', '.join(commits)}" if commits else "")
            + "); sum of the trials' own wall times over all studies "
            f"{sum(float(np.nansum(r.wall_s)) for r in result.runs):.0f} s."
        )
    lines.append(
        f"- This call: {result.elapsed_s:.0f} s wall ({result.run_seconds:.0f} s running "
        f"studies, --jobs {result.config.jobs}); studies new {st.get('new', 0)}, resumed "
        f"{st.get('resumed', 0)}, already finished {st.get('skipped', 0)}; stale RUNNING "
        f"trials marked FAIL: {st.get('stale', 0)}."
    )
    env = environment_info()
    env = {("report by git" if k == "git" else k): v for k, v in env.items()}
    lines.append(
        "- Environment: "
        + ", ".join(f"{k} {v}" for k, v in env.items())
        + f"; created {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."
    )
    return lines


def _summary_table(result: ComparisonResult) -> list[str]:
    """One row per sampler: score at each budget, regret, wall time, the test against NCP."""
    cfg, info = result.config, result.info
    d = digits(info)
    final = cfg.trials
    has_ref = REFERENCE_SAMPLER in result.summaries
    surrogate = info.mode == "surrogate"
    label = "HV" if info.n_objectives == 2 else "best"
    head = ["sampler", *[f"{label}@{b}" for b in cfg.budgets]]
    if info.optimum is not None:
        head.append(f"regret@{final}")
    head.append("wall/trial (ms)")
    if surrogate:
        head.append("table codes")
    if has_ref:
        head += [f"Wilcoxon p vs ncp @{final}", "W/T/L vs ncp"]
    rows = []
    for s, summ in result.summaries.items():
        row = [f"`{s}`", *[summ.budgets[b].format(d) for b in cfg.budgets]]
        if info.optimum is not None:
            row.append(summ.regret.format(d) if summ.regret is not None else "n/a")
        row.append(_wall_text(summ.wall_ms))
        if surrogate:
            row.append(f"{100 * summ.table_share:.0f}%" if math.isfinite(summ.table_share) else "")
        if has_ref:
            t = summ.tests.get(final)
            if s == REFERENCE_SAMPLER:
                row += ["(reference)", ""]
            elif t is None:
                row += ["—", ""]
            else:
                row += [t.format(), f"{t.wins}/{t.ties}/{t.losses}"]
        rows.append(row)
    return markdown_table(head, rows, align="l" + "r" * (len(head) - 1))


def _cells_note(result: ComparisonResult) -> str:
    n = len(result.config.seed_list)
    return "Cells: median [25th, 75th percentile] over seeds. " + (
        "Wilcoxon: paired two-sided signed-rank test of each sampler's final score against "
        "`ncp` on the same seeds (scipy `wilcoxon`, zero differences dropped and counted as "
        'ties; "all ties": every seed gave the same score, no test, p = 1). '
        "W/T/L: seeds where the sampler beat / tied / lost to `ncp`. p-values are not "
        "corrected for multiple comparisons; with N non-tied seeds the smallest attainable "
        f"p is 2^(1-N) ({2.0 ** (1 - n):.3g} for N = {n})."
        if REFERENCE_SAMPLER in result.summaries
        else "No `ncp` runs: no paired tests."
    )


def _notes(result: ComparisonResult) -> list[str]:
    cfg, info = result.config, result.info
    notes = []
    if info.mode == "surrogate":
        notes.append(
            "table codes: share of evaluated codes found in NAS-Bench-MR (measured values); the "
            "rest are the surrogate oracle's predictions."
        )
    if "cmaes" in cfg.samplers and info.setting == "nas-bench-201":
        notes.append(
            "`cmaes`: CMA-ES has no categorical support; on NAS-Bench-201's categorical edges "
            "Optuna samples every parameter with its independent RandomSampler (random search)."
        )
    if tuple(cfg.samplers) == DEFAULT_SAMPLERS:
        notes.append(
            "`gp` (Optuna GPSampler) is not in the default samplers: its cost per trial grows "
            "with the history and is several times NCP's on NAS-Bench-MR; add it with "
            "--samplers."
        )
    notes += _budget_notes(result)
    for s, summ in result.summaries.items():
        notes += [f"`{s}`: {n}" for n in summ.notes]
    for name, err in result.errors.items():
        notes.append(f"study `{name}` stopped with an error: {err}")
    return notes


def verdict(
    summaries: Mapping[str, SamplerSummary], info: BenchmarkInfo, *, alpha: float = 0.05
) -> str:
    """One line naming the sampler with the best median at the final budget and the samplers
    significantly better or worse than NCP there (paired Wilcoxon, ``p < alpha``);
    empty without results."""
    final = max((max(s.budgets) for s in summaries.values() if s.budgets), default=None)
    if final is None:
        return ""
    medians = {
        name: s.budgets[final].median
        for name, s in summaries.items()
        if final in s.budgets and math.isfinite(s.budgets[final].median)
    }
    if not medians:
        return ""
    higher = info.n_objectives == 2 or info.directions[0] == "maximize"
    top = max(medians.values()) if higher else min(medians.values())
    leaders = [f"`{n}`" for n, v in medians.items() if v == top]
    label = "HV" if info.n_objectives == 2 else "best"
    text = f"**Verdict** ({label}@{final}, median over seeds): best {' = '.join(leaders)}"
    text += f" ({top:.{digits(info)}f})."
    if REFERENCE_SAMPLER not in summaries:
        return text + " No `ncp` runs, so no paired tests."
    better: list[str] = []
    worse: list[str] = []
    for name, s in summaries.items():
        t = s.tests.get(final)
        if name == REFERENCE_SAMPLER or t is None or t.p_value is None or t.p_value >= alpha:
            continue
        ahead = t.wins > t.losses if higher else t.losses > t.wins
        (better if ahead else worse).append(f"`{name}` (p = {t.p_value:.2g})")
    text += f" Significantly better than `ncp` (p < {alpha:g}): {', '.join(better) or 'none'}."
    text += f" Significantly worse: {', '.join(worse) or 'none'}."
    return text
