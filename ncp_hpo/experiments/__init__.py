"""Experiments built on the package: the head-to-head sampler comparison behind
``ncp-hpo compare`` (:mod:`ncp_hpo.experiments.compare`), the paper's fixed-budget protocol
(:mod:`ncp_hpo.experiments.paper`) and the check that a recorded comparison regenerates
(:func:`check_record`). The modules with a leading underscore are private (Markdown tables
of every report come from one helper, ``_markdown.markdown_table``).

>>> from ncp_hpo.experiments import CompareConfig, run_comparison   # doctest: +SKIP
>>> res = run_comparison(CompareConfig("nas-bench-201", out="cmp", seeds=3))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncp_hpo._lazy import lazy_getattr

if TYPE_CHECKING:
    from ncp_hpo.experiments._record import RecordCheck, check_record
    from ncp_hpo.experiments.compare import CompareConfig, ComparisonResult, run_comparison
    from ncp_hpo.experiments.paper import PaperProtocolResult, run_paper_protocol

# Optuna, torch and matplotlib load with the modules, on first use.
_LAZY = {
    **dict.fromkeys(
        ("CompareConfig", "ComparisonResult", "run_comparison"), "ncp_hpo.experiments.compare"
    ),
    **dict.fromkeys(("PaperProtocolResult", "run_paper_protocol"), "ncp_hpo.experiments.paper"),
    **dict.fromkeys(("RecordCheck", "check_record"), "ncp_hpo.experiments._record"),
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())

__all__ = [
    "CompareConfig",
    "ComparisonResult",
    "PaperProtocolResult",
    "RecordCheck",
    "check_record",
    "run_comparison",
    "run_paper_protocol",
]
