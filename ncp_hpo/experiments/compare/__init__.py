"""Head-to-head comparison of samplers on one benchmark objective (``ncp-hpo compare``).

:func:`run_comparison` runs (or resumes) one study per sampler x seed and writes the reports;
see :mod:`ncp_hpo.experiments.compare._runner` for storage, resuming and the statistics.
"""

from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.compare._config import (
    DEFAULT_BUDGETS,
    CompareConfig,
    startup_warning,
    study_name,
)
from ncp_hpo.experiments.compare._records import (
    BenchmarkInfo,
    RunRecord,
    SamplerSummary,
    summarize_runs,
)
from ncp_hpo.experiments.compare._report import markdown_report, verdict
from ncp_hpo.experiments.compare._runner import ComparisonResult, run_comparison
from ncp_hpo.experiments.compare._stats import (
    PairedTest,
    Stat,
    best_so_far,
    hypervolume_2d,
    hypervolume_history,
    paired_wilcoxon,
    pareto_front_2d,
    summary_stat,
)

__all__ = [
    "DEFAULT_BUDGETS",
    "BenchmarkInfo",
    "CompareConfig",
    "CompareError",
    "ComparisonResult",
    "PairedTest",
    "RunRecord",
    "SamplerSummary",
    "Stat",
    "best_so_far",
    "hypervolume_2d",
    "hypervolume_history",
    "markdown_report",
    "paired_wilcoxon",
    "pareto_front_2d",
    "run_comparison",
    "startup_warning",
    "study_name",
    "summarize_runs",
    "summary_stat",
    "verdict",
]
