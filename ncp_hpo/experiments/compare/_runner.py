"""Head-to-head comparison of samplers on one benchmark objective (``ncp-hpo compare``).

Every sampler runs through the same loop on the same objective
(:class:`~ncp_hpo.benchmarks.BenchmarkObjective`): Optuna samplers through
``study.optimize``, ``"ax"`` through an Ax ``Client`` driven by
:func:`~ncp_hpo.samplers.ncp_generation_strategy` whose proposals are evaluated by the
same objective in the same kind of Optuna study (each Ax candidate is enqueued and run as
one Optuna trial). One study per sampler x seed; the statistics are computed from what the
studies hold.

>>> from ncp_hpo.experiments.compare import CompareConfig, run_comparison   # doctest: +SKIP
>>> res = run_comparison(CompareConfig("nas-bench-201", out="cmp", seeds=3))  # doctest: +SKIP
>>> res.summaries["ncp"].budgets[100].median                                  # doctest: +SKIP

Storage and resuming
--------------------
Each sampler x seed is an Optuna study named ``<benchmark>-<sampler>-seed<k>`` in its own
SQLite file, ``<out>/studies/<study name>.db`` (one file per study: parallel workers never
contend for one database lock; open one with ``optuna-dashboard sqlite:///<file>``). The
files use SQLite's write-ahead log with ``synchronous=NORMAL`` and a 60 s busy timeout
(:func:`~ncp_hpo.runtime.open_sqlite_storage`): a killed process loses at most
the trial it was running, and a trial's storage writes cost a fraction of what they cost
with the default rollback journal. A rerun with the same ``--out``:

* skips studies that hold ``trials`` COMPLETE trials (or more: only the first ``trials``
  are analysed);
* marks trials left RUNNING by a killed run as FAIL (they are never counted) and continues
  the study until it holds ``trials`` COMPLETE trials;
* refuses to mix settings: each study records its benchmark, mode, objective and FLOPs
  weight,
  and a rerun with other values is an error (use another ``--out``);
* continues each sampler where it stopped: the fresh sampler is first taken through the
  stored trials (:mod:`ncp_hpo.samplers._replay`), so a resumed study gets the trials an
  uninterrupted one gets (a trial a killed run left RUNNING counts as failed, though).

Ctrl-C (SIGINT) stops a run cleanly: no trial or study starts after it, the running trials
end normally, no report is written, and ``KeyboardInterrupt`` says how to resume (the
command line prints it as one line and exits 130). A second Ctrl-C stops at once.

One ``compare`` process at a time may use an ``--out`` folder (``<out>/compare.lock``
holds its pid; a lock left by a dead process is taken over).

Seeds: seed ``k`` seeds every sampler of study ``k``. The predictor-based samplers start
with 10 random trials drawn by ``RandomSampler(seed=k)``, so NCP, NetAdapt, the neural
predictor and random search share their first 10 trials per seed (common random numbers
for the paired test).

Outputs (under ``--out``)
-------------------------
``summary.md`` (header with the settings, optimum, oracle fidelity, wall times; the table;
notes), ``summary.csv`` (sampler x budget), ``runs.csv`` (sampler x seed x budget),
``results.json`` (all of it plus every trial's values and scores), ``anytime.png`` (median
score per trial with the IQR band per sampler), ``pareto.png`` (two objectives: the front
of each sampler's median-hypervolume seed over the table's front), ``calls.json`` (wall
time of every call, so rewriting the reports keeps the time the studies took) and
``studies/``. With MLflow on, see :mod:`ncp_hpo.tracking` (logged live).

Parallelism: ``jobs > 1`` runs the sampler x seed studies in ``jobs`` spawned processes
(``ProcessPoolExecutor``, one torch thread each; a worker exits when the parent dies);
each finished trial ticks the tqdm bar through a queue.

Statistics (see :func:`summarize_runs`)
---------------------------------------
* **Score per trial.** Single objective: the best objective value found so far. Two
  objectives (``metric+flops`` without a FLOPs weight, or ``metric+params``): the
  hypervolume of the trials so far in normalised coordinates ``u = (m_max - m) / (m_max -
  m_min)``, ``v = (f - f_min) / (f_max - f_min)`` (``m``: main metric, ``f``: FLOPs or
  parameters, extremes over the benchmark table)
  with the fixed reference point ``(1, 1)``, i.e. the table's worst metric and largest
  cost; a point outside that box adds nothing. The table's own front has a hypervolume
  below 1.
* **Best found at budgets** 10/25/50/100 (those <= trials, plus ``trials``): median and
  inter-quartile range (numpy's linear-interpolation 25th/75th percentiles) over seeds.
* **Regret** at the final budget: optimum minus score. The optimum is the best value of
  the table (NAS-Bench-201: 47.333 for ImageNet16-120 ``Acc``; with a FLOPs weight the best
  scalarised table value; with two objectives the hypervolume of the table's front). In
  surrogate mode the oracle may score a code above every table code, so regret can be
  negative there.
* **Paired Wilcoxon signed-rank test** (:func:`paired_wilcoxon`, two-sided,
  ``scipy.stats.wilcoxon`` with ``zero_method="wilcox"``: zero differences are dropped and
  counted) of each sampler's final score against NCP's on the same seeds. When every
  difference is zero there is nothing to test: p is reported as 1 with the note "all
  ties". p-values are not corrected for multiple comparisons.
* **Wall time per trial**: median over all trials and seeds of the trial's duration
  (sampling happens inside the trial in Optuna; Ax adds its generation time).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import BudgetError, CompareError
from ncp_hpo.experiments._files import jsonable
from ncp_hpo.experiments.compare._config import (
    FORMAT_VERSION,
    WARM_START_SUFFIX,
    CompareConfig,
    base_sampler,
    compare_warm_start_codes,
    study_name,
    upgrade_settings,
)
from ncp_hpo.experiments.compare._export import write_reports
from ncp_hpo.experiments.compare._pool import execute, progress_bar
from ncp_hpo.experiments.compare._provenance import OutLock, environment_info, record_call
from ncp_hpo.experiments.compare._records import (
    BenchmarkInfo,
    RunRecord,
    SamplerSummary,
    benchmark_info,
    score_name,
    summarize_runs,
)
from ncp_hpo.experiments.compare._stats import HV_REFERENCE_POINT
from ncp_hpo.experiments.compare._studies import (
    objective_for,
    quiet,
    read_run,
    study_path,
    study_status,
)
from ncp_hpo.experiments.compare._task import StudyTask, compare_prior
from ncp_hpo.samplers import make_sampler
from ncp_hpo.search._presets import NCP_DEFAULT_MODE

if TYPE_CHECKING:
    from ncp_hpo.benchmarks import BenchmarkObjective
    from ncp_hpo.tracking import LiveTarget

__all__ = ["ComparisonResult", "run_comparison"]

# rough relative cost of one trial, to start the slow studies first
_COST = {
    "gp": 6.0,
    "ax": 4.0,
    "ax-default": 8.0,
    "neural-predictor": 2.0,
    "ncp-paper": 3.0,
    "ncp-guided": 1.0,
    "ncp-local": 1.0,
    "ncp": 1.0,
    "netadapt": 1.5,
}


@dataclass
class ComparisonResult:
    """What :func:`run_comparison` produced.

    Attributes:
        config: the configuration.
        info: the benchmark description (optimum, fidelity ...).
        runs: every sampler x seed record.
        summaries: sampler -> :class:`SamplerSummary`.
        files: output name -> path (``markdown``, ``csv``, ``runs_csv``, ``json``,
            ``anytime_png``, ``pareto_png`` for two objectives).
        elapsed_s: wall time of this call.
        studies: counts of ``skipped`` (already finished), ``resumed``, ``new`` studies and
            ``stale`` RUNNING trials marked FAIL.
        errors: study name -> error of studies that failed in this call.
        mlflow_run_id: the parent MLflow run (None without tracking).
        mlflow_url: a link to the parent run on MLflow's "Model training" pages.
        mlflow_view_url: a link to the experiment's runs table in the saved view that shows
            each sampler's best as a column.
        mlflow_hint: how to see it (:func:`ncp_hpo.tracking.tracking_hint`: for a local
            store the ``mlflow ui --backend-store-uri ...`` command, then the link).
    """

    config: CompareConfig
    info: BenchmarkInfo
    runs: list[RunRecord]
    summaries: dict[str, SamplerSummary]
    files: dict[str, Path] = field(default_factory=dict)
    elapsed_s: float = 0.0
    studies: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None
    mlflow_view_url: str | None = None
    mlflow_hint: str | None = None
    run_seconds: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    warm_start: str | None = None

    def verdict(self) -> str:
        """The report's verdict line (the best median, the significant differences from NCP);
        empty without results."""
        from ncp_hpo.experiments.compare._report import verdict

        return verdict(self.summaries, self.info)

    def summary_lines(self) -> list[str]:
        """The report's summary table and the note on its cells (Markdown lines)."""
        from ncp_hpo.experiments.compare._report import _cells_note, _summary_table

        return [*_summary_table(self), "", _cells_note(self)]

    def to_dict(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self.config)
        # folder names only: records are shared, absolute paths of this machine are not
        cfg["out"] = Path(self.config.out_dir).name
        cfg["data_dir"] = None if self.config.data_dir is None else Path(self.config.data_dir).name
        cfg["ncp_mode"] = NCP_DEFAULT_MODE  # what ``ncp`` ran (records before 0.2.0: paper)
        cfg["warm_start"] = self.warm_start  # the zero-cost warm start ``ncp`` and ``+zc`` used
        return {
            "format": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": cfg,
            "benchmark": self.info.to_dict(),
            "reference_point": list(HV_REFERENCE_POINT) if self.info.n_objectives == 2 else None,
            "score": score_name(self.info),
            "summaries": {k: v.to_dict() for k, v in self.summaries.items()},
            "runs": [r.to_dict() for r in self.runs],
            "studies": self.studies,
            "errors": self.errors,
            "elapsed_s": self.elapsed_s,
            "calls": self.calls,
            "environment": environment_info(),
        }


def run_comparison(config: CompareConfig) -> ComparisonResult:
    """Run (or resume) the comparison, analyse it, write the outputs, log to MLflow.

    Returns:
        A :class:`ComparisonResult`; ``files`` lists what was written under ``config.out``.

    Raises:
        CompareError: settings that differ from the studies already in ``out``, a busy
            ``out``, an unusable sampler.
        KeyboardInterrupt: Ctrl-C stopped the studies (after their running trials; the
            message says how to resume). No reports are written then.
        UnknownSettingError, DataNotFoundError: unknown or missing benchmark.
    """
    from ncp_hpo.benchmarks import get_setting

    t_start = time.perf_counter()
    get_setting(config.benchmark)  # unknown names fail here, with the list of known ones
    quiet()
    data_dir = None if config.data_dir is None else str(Path(config.data_dir).resolve())
    # load (and, in surrogate mode, fit or read the cached oracle) once before any worker
    try:
        obj = objective_for(
            config.benchmark,
            config.mode,
            config.objective,
            config.flops_weight,
            data_dir,
            max_flops=config.max_flops,
        )
    except BudgetError as exc:  # a budget below the space's smallest code
        raise CompareError(f"--max-flops {config.max_flops}: {exc}") from None
    if "cmaes" in map(base_sampler, config.samplers):
        make_sampler("cmaes", space=obj.space, seed=0)  # fails early without 'cmaes'
    zc = [s for s in config.samplers if s.endswith(WARM_START_SUFFIX)]
    if zc:  # fails early without the zero-cost table
        compare_warm_start_codes(obj.space, base_sampler(zc[0]), 0, n_objectives=obj.n_objectives)
    if config.prior is not None:  # fitted (or read from the cache) once, before any worker
        compare_prior(config.prior, data_dir)
    info = benchmark_info(obj)
    settings = config.settings(obj.mode, obj.max_flops)
    out = config.out_dir
    (out / "studies").mkdir(parents=True, exist_ok=True)

    with OutLock(out):
        live = None
        if config.mlflow:  # the parent run is open (RUNNING) while the studies run
            from ncp_hpo.tracking import open_comparison

            live = open_comparison(
                config, info, uri=config.mlflow_uri, experiment=config.mlflow_experiment
            )
        try:
            return _run_locked(config, obj, info, settings, data_dir, live, t_start)
        except BaseException as exc:
            if live is not None:
                from ncp_hpo.tracking import end_comparison

                end_comparison(live, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise


def _plan(
    config: CompareConfig,
    obj: BenchmarkObjective,
    info: BenchmarkInfo,
    settings: dict[str, Any],
    data_dir: str | None,
    live: LiveTarget | None,
) -> tuple[list[StudyTask], dict[str, int], int]:
    """The studies still to run (slow samplers first), the study counts (skipped, resumed,
    new, stale RUNNING trials) and the trials left to run.

    Raises:
        CompareError: a study in ``out`` was run with other settings.
    """
    from ncp_hpo.tracking import child_params

    out = config.out_dir
    tasks: list[StudyTask] = []
    counts = {"skipped": 0, "resumed": 0, "new": 0, "stale": 0}
    remaining = 0
    for seed in config.seed_list:
        for s in config.samplers:
            name = study_name(config.benchmark, s, seed)
            path = study_path(out, name)
            n_done, n_running, stored = study_status(path, name)
            stored = None if stored is None else upgrade_settings(stored)
            if stored is not None and stored != settings:
                diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
                raise CompareError(
                    f"{path} was run with other settings "
                    f"({', '.join(f'{k}: {a!r} now {b!r}' for k, (a, b) in diff.items())}); "
                    "use another --out"
                )
            counts["stale"] += n_running
            if n_done >= config.trials:
                counts["skipped"] += 1
                continue
            counts["resumed" if n_done or n_running else "new"] += 1
            remaining += config.trials - n_done
            tasks.append(
                StudyTask(
                    benchmark=config.benchmark,
                    sampler=s,
                    seed=seed,
                    trials=config.trials,
                    path=str(path),
                    name=name,
                    mode=obj.mode,
                    objective=config.objective,
                    flops_weight=config.flops_weight,
                    data_dir=data_dir,
                    settings_json=json.dumps(settings),
                    live=live,
                    live_params_json=json.dumps(
                        jsonable(child_params(s, seed, config, info)) if live else {}
                    ),
                    max_flops=obj.max_flops,
                    prior=config.prior,
                )
            )
    tasks.sort(key=lambda t: -_COST.get(t.sampler, 1.0))
    return tasks, counts, remaining


def _run_locked(
    config: CompareConfig,
    obj: BenchmarkObjective,
    info: BenchmarkInfo,
    settings: dict[str, Any],
    data_dir: str | None,
    live: LiveTarget | None,
    t_start: float,
) -> ComparisonResult:
    """The body of :func:`run_comparison` (``<out>/compare.lock`` is held)."""
    out = config.out_dir
    tasks, counts, remaining = _plan(config, obj, info, settings, data_dir, live)
    errors: dict[str, str] = {}
    t_run = time.perf_counter()
    with progress_bar(remaining, config.progress, f"compare {config.benchmark}") as update:
        outcomes = execute(tasks, config.jobs, update)
    run_seconds = time.perf_counter() - t_run
    if any(o.interrupted for o in outcomes):
        raise KeyboardInterrupt(
            f"compare stopped after {sum(o.ran for o in outcomes)} new trial(s): no trial "
            f"started after Ctrl-C and every finished one is kept in {out / 'studies'}; run "
            "the same command again (same --out) to resume"
        )
    for o in outcomes:
        if o.error:
            errors[o.name] = o.error

    runs: list[RunRecord] = []
    for seed in config.seed_list:
        for s in config.samplers:
            name = study_name(config.benchmark, s, seed)
            rec = read_run(study_path(out, name), name, s, seed, config.trials)
            if rec is not None and rec.n:
                runs.append(rec)
    summaries = summarize_runs(
        runs, info, samplers=config.samplers, trials=config.trials, budgets=config.budgets
    )
    result = ComparisonResult(
        config=config,
        info=info,
        runs=runs,
        summaries=summaries,
        studies=counts,
        errors=errors,
        run_seconds=run_seconds,
        warm_start=_warm_start_name(obj.space, obj.n_objectives),
    )
    result.elapsed_s = time.perf_counter() - t_start
    try:
        result.calls = record_call(out, result, remaining)
        result.files = write_reports(result, out)
    except OSError as exc:  # e.g. the folder was made read-only meanwhile: the cause
        raise CompareError(_unwritable(out, exc, errors)) from None
    if config.mlflow:
        from ncp_hpo.tracking import log_comparison

        result.mlflow_run_id = log_comparison(
            result, uri=config.mlflow_uri, experiment=config.mlflow_experiment
        )
        if live is not None and result.mlflow_run_id is not None:
            from ncp_hpo.tracking import tracking_hint, ui_url
            from ncp_hpo.tracking._comparison import BEST_VIEW

            result.mlflow_url = ui_url(live.uri, live.experiment_id, result.mlflow_run_id)
            result.mlflow_view_url = ui_url(live.uri, live.experiment_id, view=BEST_VIEW)
            result.mlflow_hint = tracking_hint(live.uri, live.experiment_id, result.mlflow_run_id)
    return result


def _unwritable(out: Path, exc: OSError, errors: dict[str, str]) -> str:
    """The one-line error of a comparison whose reports could not be written."""
    where = Path(exc.filename).name if exc.filename else out
    failed = (
        f"; {len(errors)} stud{'y' if len(errors) == 1 else 'ies'} stopped early (first: "
        f"{next(iter(errors))}: {next(iter(errors.values()))})"
        if errors
        else ""
    )
    return (
        f"cannot write the reports to the output folder {out} ({where}: "
        f"{exc.strerror or exc}){failed}; every finished trial is kept in {out / 'studies'}: "
        "make the folder writable and run the same command again to finish"
    )


def _warm_start_name(space: Any, n_objectives: int) -> str | None:
    """How NCP's default chooses its start-up codes on ``space`` in a study of
    ``n_objectives`` (``None``: at random)."""
    from ncp_hpo.search._warm_start import auto_warm_start

    warm = auto_warm_start(space)
    if n_objectives > 1 and space.has_exact_flops:
        if warm is None:
            return "none; the codes are spread along their exact FLOPs (no score table here)"
        return (
            f"{warm!r}, in trade-off order (the pool's estimated Pareto front of the score "
            "against the exact FLOPs, spread along the FLOPs)"
        )
    return None if warm is None else repr(warm)
