"""The paper's fixed-budget comparison protocol (``ncp-hpo compare --protocol paper``):
Tables 2-4 of the paper, on the surrogate oracle; see :mod:`._protocol`."""

from ncp_hpo.experiments.paper._methods import netadapt_greedy
from ncp_hpo.experiments.paper._protocol import (
    PAPER_PROTOCOL_USES,
    PaperProtocolResult,
    run_paper_protocol,
    unused_options,
)

__all__ = [
    "PAPER_PROTOCOL_USES",
    "PaperProtocolResult",
    "netadapt_greedy",
    "run_paper_protocol",
    "unused_options",
]
