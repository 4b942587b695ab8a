"""The NCP sampler's modes (mode -> proposer class) and the one resolution of its arguments.

``"paper"`` is Algorithm 1 as published (:class:`~ncp_hpo.search._proposers.NCPProposer`);
``"guided"`` is the ensemble-UCB variant
(:class:`~ncp_hpo.search._proposers.GuidedNCPProposer`); ``"local"`` adds predictor-ranked
local walks from the incumbents (:class:`~ncp_hpo.search._local.LocalNCPProposer`). Each
proposer class owns its defaults: its dataclass fields, and the predictor and refit schedule
it wants (``predictor_defaults``). Both adapters (the Optuna ``NCPSampler`` and the Ax
``NCPNode``) turn their arguments into settings with :func:`ncp_settings` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ncp_hpo.search._local import LocalNCPProposer
from ncp_hpo.search._proposers import GuidedNCPProposer, NCPProposer
from ncp_hpo.search._settings import ProposerSettings, SourceSettings
from ncp_hpo.search._tradeoff import check_lam

if TYPE_CHECKING:
    from ncp_hpo.predictor import NeuralPredictor

__all__ = [
    "NCP_DEFAULT_MODE",
    "NCP_MODES",
    "NCP_PRIOR_MODE",
    "Mode",
    "NCPSettings",
    "ncp_settings",
    "resolve_mode",
]

Mode = Literal["guided", "local", "paper"]
"""The NCP sampler's modes."""

NCP_DEFAULT_MODE: Final = "local"
"""The mode ``NCPSampler()``, the Ax node and the ``ncp`` name run without a prior
(``"paper"`` before 0.2.0: records from then name it, see
:func:`ncp_hpo.experiments._record.check_record`)."""

NCP_PRIOR_MODE: Final = "paper"
"""The mode they run when given a ``prior``: propagation through the prior from the first
trial, the paper's transfer setting (why, measured against local mode with the same prior:
``benchmarks/results/real-training-default/``)."""


def resolve_mode(mode: str | None, *, prior: object | None) -> str:
    """``mode`` itself, or for ``None`` the default: :data:`NCP_PRIOR_MODE` with a prior,
    :data:`NCP_DEFAULT_MODE` without."""
    if mode is not None:
        return mode
    return NCP_PRIOR_MODE if prior is not None else NCP_DEFAULT_MODE


NCP_MODES: dict[str, type[NCPProposer]] = {
    "paper": NCPProposer,
    "guided": GuidedNCPProposer,
    "local": LocalNCPProposer,
}
"""Mode -> proposer class; each class owns its defaults (its fields and its
``predictor_defaults``)."""


@dataclass(frozen=True)
class NCPSettings:
    """Resolved settings of one NCP sampler or node.

    Attributes:
        mode: the mode (``None`` resolved by :func:`resolve_mode`).
        proposer: the mode's proposer class with the user's arguments.
        source: the predictor source: the user's prior, schedule and predictor arguments
            over the proposer's ``predictor_defaults``.
    """

    mode: str
    proposer: ProposerSettings
    source: SourceSettings


def ncp_settings(
    mode: str | None,
    *,
    prior: NeuralPredictor | None = None,
    online: bool = True,
    lam: float = 0.0,
    strategy: str = "continuous",
    iterations: int | None = None,
    lr: float | None = None,
    n_starts: int | None = None,
    kappa: float = 2.0,
    refit_every: int | None = None,
    predictor_params: dict[str, Any] | None = None,
) -> NCPSettings:
    """The one resolution of an NCP adapter's arguments (``None``: the mode's default).

    ``mode=None`` is :func:`resolve_mode`'s default. A ``prior`` refits after every trial,
    the paper's way (the proposer's ``refit_growth`` is dropped).

    Raises:
        ValueError: unknown mode or strategy, ``iterations``/``n_starts`` < 1, ``kappa`` or
            ``lam`` < 0.
    """
    resolved = resolve_mode(mode, prior=prior)
    if resolved not in NCP_MODES:
        raise ValueError(f"mode must be 'guided', 'local' or 'paper', got {resolved!r}")
    cls = NCP_MODES[resolved]
    given = {"iterations": iterations, "lr": lr, "n_starts": n_starts}
    params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if not kappa >= 0:  # checked in every mode: a bad value is never silently ignored
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if issubclass(cls, GuidedNCPProposer):
        params["kappa"] = kappa
    if strategy not in ("continuous", "winner_takes_all"):
        raise ValueError(f"strategy must be 'continuous' or 'winner_takes_all', got {strategy!r}")
    its, starts = params.get("iterations", cls.iterations), params.get("n_starts", cls.n_starts)
    if its < 1 or starts < 1:
        raise ValueError(f"iterations and n_starts must be >= 1, got {its}, {starts}")
    proposer = ProposerSettings(cls, {"lam": check_lam(lam), "strategy": strategy, **params})
    source = SourceSettings(
        prior=prior,
        online=online,
        refit_every=refit_every,
        predictor_params=predictor_params,
        defaults=cls.predictor_defaults,
    )
    return NCPSettings(mode=resolved, proposer=proposer, source=source)
