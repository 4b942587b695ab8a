"""The NCP sampler's modes: proposer, predictor and refit-schedule defaults per mode.

``"paper"`` is Algorithm 1 as published; ``"guided"`` is the ensemble-UCB variant
(:class:`~ncp_hpo.search._proposers.GuidedNCPProposer`); ``"local"`` adds predictor-ranked
local walks from the incumbents (:class:`~ncp_hpo.search._local.LocalNCPProposer`). Both
adapters (the Optuna ``NCPSampler`` and the Ax nodes) resolve their arguments here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ncp_hpo.search._local import LocalNCPProposer
from ncp_hpo.search._proposers import GuidedNCPProposer, NCPProposer
from ncp_hpo.search._tradeoff import check_lam

if TYPE_CHECKING:
    from ncp_hpo.spaces import CodeSpace

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


# mode -> (proposer defaults, predictor defaults, refit schedule)
NCP_MODES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "paper": (
        {"iterations": 70, "lr": 3.0, "n_starts": 32},
        {},
        {"refit_every": 1},
    ),
    "guided": (
        {"iterations": 30, "lr": 3.0, "n_starts": 16},
        {"hidden": 64, "head_hidden": 32, "n_members": 5, "dropout": 0.1, "epochs": 100},
        {"refit_every": 1, "refit_growth": 0.3},
    ),
}
# the guided pool plus local walks; the online predictor also learns from the space's
# input features (NAS-Bench-201's operation counts; none on the multi-resolution space)
NCP_MODES["local"] = (
    NCP_MODES["guided"][0],
    NCP_MODES["guided"][1],
    {**NCP_MODES["guided"][2], "input_features": True},
)

_PROPOSERS: dict[str, type[NCPProposer]] = {
    "paper": NCPProposer,
    "guided": GuidedNCPProposer,
    "local": LocalNCPProposer,
}


@dataclass(frozen=True)
class NCPSettings:
    """Resolved settings of one NCP sampler.

    Attributes:
        proposer: the proposer class of the mode.
        proposer_params: its keyword arguments (besides ``space``).
        predictor_params: defaults of the online predictor (user values override them).
        refit_every: refit after this many new completed trials.
        source_params: the rest of the refit schedule (``refit_growth``).
        input_features: give the online predictor the space's ``input_features`` as its
            ``input_map`` (where the space has any).
    """

    proposer: type[NCPProposer]
    proposer_params: dict[str, Any]
    predictor_params: dict[str, Any]
    refit_every: int
    source_params: dict[str, Any]
    input_features: bool = False

    def predictor_kwargs(
        self, space: CodeSpace | None, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The online predictor's keyword arguments on ``space``: the mode's defaults, the
        space's ``input_features`` as ``input_map`` (where the mode wants them and the space
        has any), then the user's ``overrides``."""
        features = space.input_features if self.input_features and space is not None else None
        return {
            **self.predictor_params,
            **({} if features is None else {"input_map": features}),
            **(overrides or {}),
        }


def ncp_settings(
    mode: str,
    *,
    lam: float = 0.0,
    strategy: str = "continuous",
    iterations: int | None = None,
    lr: float | None = None,
    n_starts: int | None = None,
    kappa: float = 2.0,
    refit_every: int | None = None,
    fine_tune: bool = False,
) -> NCPSettings:
    """The settings of ``mode`` with the given overrides (``None``: the mode's default).

    ``fine_tune`` (a prior is given) refits after every trial, the paper's way.

    Raises:
        ValueError: unknown mode or strategy, ``iterations``/``n_starts`` < 1, ``kappa`` or
            ``lam`` < 0.
    """
    if mode not in NCP_MODES:
        raise ValueError(f"mode must be 'guided', 'local' or 'paper', got {mode!r}")
    prop, pred, sched = (dict(d) for d in NCP_MODES[mode])
    for name, value in (("iterations", iterations), ("lr", lr), ("n_starts", n_starts)):
        if value is not None:
            prop[name] = value
    if refit_every is not None:
        sched["refit_every"] = refit_every
    if fine_tune:
        sched.pop("refit_growth", None)
    if not kappa >= 0:  # checked in every mode: a bad value is never silently ignored
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if mode != "paper":
        prop["kappa"] = kappa
    if strategy not in ("continuous", "winner_takes_all"):
        raise ValueError(f"strategy must be 'continuous' or 'winner_takes_all', got {strategy!r}")
    if prop["iterations"] < 1 or prop["n_starts"] < 1:
        raise ValueError(
            f"iterations and n_starts must be >= 1, got {prop['iterations']}, {prop['n_starts']}"
        )
    return NCPSettings(
        proposer=_PROPOSERS[mode],
        proposer_params={"lam": check_lam(lam), "strategy": strategy, **prop},
        predictor_params=pred,
        refit_every=sched.pop("refit_every"),
        input_features=bool(sched.pop("input_features", False)),
        source_params=sched,
    )
