"""What ``ncp-hpo compare`` runs: :class:`CompareConfig` and the study names."""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ncp_hpo.exceptions import CompareError
from ncp_hpo.search import AX_SAMPLERS, DEFAULT_SAMPLERS, PREDICTOR_SAMPLERS, SAMPLERS
from ncp_hpo.search._registry import budget_refusal

if TYPE_CHECKING:
    import numpy as np

    pass

__all__ = [
    "DEFAULT_BUDGETS",
    "MAX_SEEDS",
    "PRIOR_SUFFIX",
    "REFERENCE_SAMPLER",
    "STARTUP_TRIALS",
    "CompareConfig",
    "check_seeds",
    "startup_warning",
    "study_name",
    "upgrade_settings",
]


DEFAULT_BUDGETS: tuple[int, ...] = (10, 25, 50, 100)

REFERENCE_SAMPLER = "ncp"
"""The sampler every other one is tested against."""

MAX_SEEDS = 10_000
"""Most seeds a comparison runs (one study file per sampler x seed)."""

SETTINGS_ATTR = "compare:settings"
GEN_ATTR = "compare:gen_s"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CompareConfig:
    """What ``ncp-hpo compare`` runs.

    Args:
        benchmark: a setting name (``"nas-bench-201"``, ``"seg"``, ``"cls-50-1000"`` ...).
        samplers: names from :data:`SAMPLERS`.
        trials: COMPLETE trials per study (the budget).
        seeds: number of seeds; studies use seeds ``0 .. seeds-1``.
        objective: ``"metric"``, ``"metric+flops"`` or ``"metric+params"`` (two objectives:
            the main metric up, the table's FLOPs or parameter count down).
        flops_weight: with ``"metric+flops"``, scalarise as ``metric - flops_weight x
            z(flops)`` (one objective, see :class:`~ncp_hpo.benchmarks.BenchmarkObjective`);
            ``None`` (the default) keeps two objectives (hypervolume statistics).
        mode: ``"surrogate"``, ``"table"`` or ``"exact"``; ``None`` = the benchmark's
            default (exact for NAS-Bench-201, surrogate for NAS-Bench-MR).
        jobs: worker processes (spawned); 1 runs in this process.
        out: output folder (studies, tables, plots).
        data_dir: where the benchmark files are looked up first.
        budgets: trial counts at which best-found is reported (``trials`` is always added).
        mlflow: log to MLflow.
        mlflow_uri: tracking URI (``None``: MLflow's default, a local store).
        mlflow_experiment: MLflow experiment name.
        progress: show a tqdm progress bar.
        max_flops: a FLOPs budget: maximise the metric subject to the code's exact FLOPs
            (the table's unit) ``<= max_flops``; a number or ``"pNN"`` (a percentile of the
            table's FLOPs). Predictor samplers search the budgeted space; a code over the
            budget is refused unevaluated (PRUNED, never counted) and Optuna's samplers learn
            it as a constraint. ``None``: no budget.
        prior: a NAS-Bench-MR setting (not the benchmark itself) whose predictor
            (:func:`ncp_hpo.benchmarks.predictors.setting_predictor`, seed 0) the
            ``<sampler>+prior`` entries of ``samplers`` start from, as
            ``NCPSampler(prior=...)`` does; one objective, no ``max_flops``.
        lam: deprecated old name of ``flops_weight`` (a :class:`FutureWarning`); not a field.
    """

    benchmark: str
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    trials: int = 100
    seeds: int = 10
    objective: Literal["metric", "metric+flops", "metric+params"] = "metric"
    flops_weight: float | None = None
    mode: Literal["surrogate", "table", "exact"] | None = None
    jobs: int = 1
    out: str | Path | None = None
    data_dir: str | Path | None = None
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    mlflow: bool = False
    mlflow_uri: str | None = None
    mlflow_experiment: str = "ncp-hpo-compare"
    progress: bool = True
    max_flops: float | str | None = None
    prior: str | None = None
    lam: InitVar[float | None] = None

    def __post_init__(self, lam: float | None) -> None:
        from ncp_hpo.benchmarks._objectives import OBJECTIVES, check_flops_weight, renamed_lam

        weight = renamed_lam(self.flops_weight, lam, "CompareConfig", stacklevel=4)
        samplers = tuple(s.strip() for s in self.samplers if s.strip())
        object.__setattr__(self, "samplers", samplers)
        unknown = [s for s in samplers if base_sampler(s) not in SAMPLERS]
        if unknown:
            raise CompareError(
                f"unknown sampler {unknown[0]!r} in --samplers; choose from {', '.join(SAMPLERS)}"
                f", each but {' and '.join(AX_SAMPLERS)} optionally with {WARM_START_SUFFIX} "
                "(the zero-cost warm-start codes enqueued), a predictor sampler also with "
                f"{PRIOR_SUFFIX} (--prior's predictor)"
            )
        for name in AX_SAMPLERS:
            if name + WARM_START_SUFFIX in samplers:
                raise CompareError(
                    f"{name}{WARM_START_SUFFIX}: Ax's strategy takes no enqueued codes"
                )
        if not samplers:
            raise CompareError("--samplers is empty; choose from " + ", ".join(SAMPLERS))
        dup = sorted({s for s in samplers if samplers.count(s) > 1})
        if dup:
            raise CompareError(f"sampler {dup[0]!r} appears twice in --samplers")
        for name, v, lo in (
            ("trials", self.trials, 1),
            ("jobs", self.jobs, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise CompareError(f"--{name} must be an integer >= {lo}, got {v!r}")
        check_seeds(self.seeds)
        if self.objective not in OBJECTIVES:
            allowed = ", ".join(repr(o) for o in OBJECTIVES)
            raise CompareError(f"--objective must be one of {allowed}, got {self.objective!r}")
        try:
            weight = check_flops_weight(weight, self.objective, name="--flops-weight")
        except ValueError as exc:
            raise CompareError(str(exc)) from None
        object.__setattr__(self, "flops_weight", weight)
        if self.mode not in (None, "surrogate", "table", "exact"):
            raise CompareError(f"--mode must be 'surrogate', 'table' or 'exact', got {self.mode!r}")
        if self.n_objectives == 2 and "cmaes" in samplers:
            raise CompareError(
                "cmaes is single-objective: drop it, or use --objective metric (or metric+flops "
                "scalarised with --flops-weight)"
            )
        self._check_budget()
        self._check_prior()
        budgets = sorted({int(b) for b in self.budgets if 0 < int(b) < self.trials})
        object.__setattr__(self, "budgets", (*budgets, self.trials))

    def _check_budget(self) -> None:
        if self.max_flops is None:
            return
        from ncp_hpo.benchmarks._budget import check_max_flops

        try:
            object.__setattr__(
                self, "max_flops", check_max_flops(self.max_flops, name="--max-flops")
            )
        except ValueError as exc:
            raise CompareError(str(exc)) from None
        if self.n_objectives == 2:
            raise CompareError(
                "--max-flops maximises the metric within a FLOPs budget: use --objective "
                "metric (or metric+flops scalarised with --flops-weight), not two objectives"
            )
        if self.mode == "table":
            raise CompareError("--max-flops needs --mode exact or surrogate (table mode snaps)")
        ax = [s for s in self.samplers if s in AX_SAMPLERS]
        if ax:
            raise CompareError(
                f"--max-flops: the {ax[0]} strategy is not budgeted yet; drop {ax[0]}"
            )
        refused = [r for s in self.samplers if (r := budget_refusal(base_sampler(s))) is not None]
        if refused:
            raise CompareError(f"--max-flops: {refused[0]} (or drop --max-flops)")

    def _check_prior(self) -> None:
        from ncp_hpo.benchmarks import SETTINGS

        with_prior = [s for s in self.samplers if s.endswith(PRIOR_SUFFIX)]
        if self.prior is None:
            if with_prior:
                raise CompareError(
                    f"{with_prior[0]} needs --prior SETTING (the NAS-Bench-MR setting whose "
                    "predictor it starts from)"
                )
            return
        if not with_prior:
            raise CompareError(
                f"--prior goes to the <sampler>{PRIOR_SUFFIX} entries of --samplers (e.g. "
                f"ncp{PRIOR_SUFFIX}); none is listed"
            )
        bad = [s for s in with_prior if base_sampler(s) not in PREDICTOR_SAMPLERS]
        if bad:
            raise CompareError(
                f"{bad[0]}: only the predictor samplers take a prior "
                f"({', '.join(PREDICTOR_SAMPLERS)})"
            )
        multires = [n for n, st in SETTINGS.items() if st.kind == "multires"]
        if self.prior not in multires:
            raise CompareError(
                f"--prior must be a NAS-Bench-MR setting ({', '.join(multires)}), "
                f"got {self.prior!r}"
            )
        if SETTINGS.get(self.benchmark) is None or SETTINGS[self.benchmark].kind != "multires":
            raise CompareError(
                f"--prior {self.prior}: a NAS-Bench-MR predictor knows the multi-resolution "
                f"space, not {self.benchmark}'s"
            )
        if self.prior == self.benchmark:
            raise CompareError(
                f"--prior {self.prior} is the benchmark itself: its predictor was fitted on the "
                "table being searched; choose another setting"
            )
        if self.objective != "metric" or self.max_flops is not None:
            raise CompareError(
                "--prior needs --objective metric and no --max-flops (a prior is searched "
                "for its main metric alone)"
            )

    @property
    def n_objectives(self) -> int:
        return 1 if self.objective == "metric" or self.flops_weight is not None else 2

    @property
    def out_dir(self) -> Path:
        return Path(self.out if self.out is not None else f"ncp-compare-{self.benchmark}")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def settings(self, mode: str, max_flops: float | None = None) -> dict[str, Any]:
        """What a study must have been run with to be resumed (mode and the absolute FLOPs
        budget resolved; ``max_flops`` only when a budget is set)."""
        out: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "benchmark": self.benchmark,
            "mode": mode,
            "objective": self.objective,
            "flops_weight": self.flops_weight,
        }
        if max_flops is not None:
            out["max_flops"] = max_flops
        if self.prior is not None:
            out["prior"] = self.prior
        return out


def upgrade_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """A study's recorded :meth:`CompareConfig.settings`, with the key ``lam`` of studies
    written before the rename read as ``flops_weight``."""
    if "lam" in stored and "flops_weight" not in stored:
        stored = {("flops_weight" if k == "lam" else k): v for k, v in stored.items()}
    return stored


def check_seeds(seeds: object) -> None:
    """Raise :class:`CompareError` unless ``seeds`` is an int from 1 to :data:`MAX_SEEDS`."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise CompareError(
            f"--seeds must be an integer from 1 to {MAX_SEEDS:,} (one study per sampler and "
            f"seed), got {seeds!r}"
        )


def study_name(benchmark: str, sampler: str, seed: int) -> str:
    """``<benchmark>-<sampler>-seed<k>``: the study (and SQLite file) of one sampler x seed."""
    return f"{benchmark}-{sampler}-seed{seed}"


WARM_START_SUFFIX = "+zc"
"""``<sampler>+zc`` in ``--samplers``: the sampler's study starts with the zero-cost
warm-start codes of its seed enqueued (:func:`ncp_hpo.search.warm_start_codes`: the codes
NCP's own warm start takes), so a table shows what the proxy alone buys."""


PRIOR_SEED = 0
"""The seed of ``--prior``'s predictor (split and training): one prior for every study."""

PRIOR_SUFFIX = "+prior"
"""``<sampler>+prior`` in ``--samplers``: a predictor sampler given ``--prior``'s predictor
(``prior=``), beside the same sampler from scratch, so a table shows what the prior buys."""


def base_sampler(name: str) -> str:
    """The registry name of a ``--samplers`` entry (``tpe+zc`` -> ``tpe``, ``ncp+prior`` ->
    ``ncp``)."""
    for suffix in (WARM_START_SUFFIX, PRIOR_SUFFIX):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


STARTUP_TRIALS: dict[str, int] = {
    "ncp": 10,
    "ncp-paper": 10,
    "ncp-guided": 10,
    "ncp-local": 10,
    "netadapt": 10,
    "neural-predictor": 10,
    "tpe": 10,
    "gp": 10,
    "ax": 10,
    "ax-default": 5,
    "nsga2": 50,
}
"""Random start-up trials of each sampler as ``compare`` builds it (library defaults; the ax
strategy starts with 10 Sobol trials, ax-default with the 5 Ax 1.3 chooses). A budget within
them compares random search with itself."""


def startup_warning(samplers: tuple[str, ...], trials: int) -> str | None:
    """One line when ``trials`` leaves some samplers no trial past their random start-up."""
    within = [s for s in samplers if s in STARTUP_TRIALS and trials <= STARTUP_TRIALS[s]]
    if not within:
        return None
    counts = ", ".join(f"{s} ({STARTUP_TRIALS[s]})" for s in within)
    return (
        f"ncp-hpo: warning: --trials {trials} is within the random start-up trials of "
        f"{counts}: {'these samplers' if len(within) > 1 else 'it'} will not leave random "
        "sampling; use --trials > "
        f"{max(STARTUP_TRIALS[s] for s in within)}"
    )


def compare_warm_start_codes(
    space: Any, sampler: str, seed: int, *, n_objectives: int = 1
) -> np.ndarray:
    """The zero-cost start-up codes a ``<sampler>+zc`` study of ``seed`` starts with: as
    many as ``sampler``'s random start-up trials (10 for ``random``), the ones NCP's own
    start proposes first in a study of ``n_objectives`` (``n x d``): the warm start's, or
    in a multi-objective study on a space without a zero-cost table the codes spread along
    the exact FLOPs (:func:`~ncp_hpo.search._warm_start.spread_pool`).

    Raises:
        CompareError: one objective on a space without a zero-cost table (only NAS-Bench-201
            has one).
    """
    from ncp_hpo.search import warm_start_codes
    from ncp_hpo.search._warm_start import auto_warm_start, spread_pool

    n = STARTUP_TRIALS.get(sampler, 10)
    warm = auto_warm_start(space)
    if warm is None and n_objectives > 1 and space.has_exact_flops:
        return spread_pool(space, seed)[:n]
    if warm is None:
        raise CompareError(
            f"{WARM_START_SUFFIX} needs a zero-cost score table for this space (only "
            "nas-bench-201 has one), or two objectives on a space with exact FLOPs"
        )
    return warm_start_codes(warm, space, n, seed=seed, n_objectives=n_objectives)
