"""The paper's fixed-budget comparison protocol (``ncp-hpo compare --protocol paper``)."""

from ncp_hpo.experiments.paper.protocol import *  # noqa: F403
