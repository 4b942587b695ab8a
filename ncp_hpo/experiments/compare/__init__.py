"""Head-to-head comparison of samplers on one benchmark objective (``ncp-hpo compare``)."""

from ncp_hpo.experiments.compare.runner import *  # noqa: F403
