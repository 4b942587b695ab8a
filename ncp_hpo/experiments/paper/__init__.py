"""The paper's fixed-budget comparison protocol (``ncp-hpo compare --protocol paper``):
Tables 2-4 of the paper, on the surrogate oracle; see :mod:`._protocol`."""

from ncp_hpo.experiments.paper._protocol import (
    PAPER_PROTOCOL_USES as PAPER_PROTOCOL_USES,
)
from ncp_hpo.experiments.paper._protocol import (
    PaperProtocolResult,
    run_paper_protocol,
)
from ncp_hpo.experiments.paper._protocol import (
    unused_options as unused_options,
)

# ``PAPER_PROTOCOL_USES`` and ``unused_options`` are imported for ncp_hpo's command line; they
# are not public.
__all__ = ["PaperProtocolResult", "run_paper_protocol"]
