"""Head-to-head comparison of samplers on one benchmark objective (``ncp-hpo compare``).

:func:`run_comparison` runs (or resumes) one study per sampler x seed and writes the reports
(a :class:`ComparisonResult`: per-run :class:`RunRecord` rows, per-sampler
:class:`SamplerSummary` statistics with :class:`Stat` and :class:`PairedTest` values). The
statistics are public too: :func:`best_so_far`, :func:`summary_stat`,
:func:`paired_wilcoxon`, :func:`pareto_front_2d`, :func:`hypervolume_2d`. The modules are
private.
"""

from ncp_hpo.experiments.compare._config import CompareConfig
from ncp_hpo.experiments.compare._config import startup_warning as startup_warning
from ncp_hpo.experiments.compare._records import (
    BenchmarkInfo,
    RunRecord,
    SamplerSummary,
)
from ncp_hpo.experiments.compare._runner import ComparisonResult, run_comparison
from ncp_hpo.experiments.compare._stats import (
    PairedTest,
    Stat,
    best_so_far,
    hypervolume_2d,
    paired_wilcoxon,
    pareto_front_2d,
    summary_stat,
)

# ``startup_warning`` is imported for ncp_hpo's command line; it is not public.
__all__ = [
    "BenchmarkInfo",
    "CompareConfig",
    "ComparisonResult",
    "PairedTest",
    "RunRecord",
    "SamplerSummary",
    "Stat",
    "best_so_far",
    "hypervolume_2d",
    "paired_wilcoxon",
    "pareto_front_2d",
    "run_comparison",
    "summary_stat",
]
