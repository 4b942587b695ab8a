"""Experiments built on the package: the head-to-head sampler comparison behind
``ncp-hpo compare`` (:mod:`ncp_hpo.experiments.compare`), the paper's fixed-budget protocol
(:mod:`ncp_hpo.experiments.paper`) and the check that a recorded comparison regenerates
(:mod:`ncp_hpo.experiments.record`)."""
