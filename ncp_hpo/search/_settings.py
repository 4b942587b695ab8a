"""What the adapters are built from: a proposer's settings and a predictor source's settings.

Both adapters (the Optuna samplers and the Ax nodes) take one :class:`ProposerSettings` and
one :class:`SourceSettings`; each is a frozen value that, called with the code space, builds
the :class:`~ncp_hpo.search.Proposer` or the :class:`~ncp_hpo.search.PredictorSource` for
that space. A proposer class states the predictor it wants by default in its
``predictor_defaults`` (:class:`PredictorDefaults`), so no adapter holds a mode's defaults.
Their mappings are plain dicts, never mutated (Ax deep-copies the nodes that hold them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ncp_hpo.search._surrogate import PredictorSource

if TYPE_CHECKING:
    from ncp_hpo.predictor import NeuralPredictor
    from ncp_hpo.search._proposers import Proposer
    from ncp_hpo.spaces import CodeSpace

__all__ = ["PredictorDefaults", "ProposerSettings", "SourceSettings"]


@dataclass(frozen=True, kw_only=True)
class PredictorDefaults:
    """The online predictor and refit schedule a proposer runs with unless told otherwise.

    Attributes:
        predictor_params: ``NeuralPredictor`` keyword arguments (the user's override them).
        refit_every: refit after at least this many new completed trials.
        refit_growth: also wait for ``refit_growth x n`` new trials after a fit on ``n``
            (dropped with a prior: a prior is fine-tuned after every trial, the paper's way).
        input_features: give the online predictor the space's ``input_features`` as its
            ``input_map`` (where the space has any).
    """

    predictor_params: Mapping[str, Any] = field(default_factory=dict)
    refit_every: int = 1
    refit_growth: float = 0.0
    input_features: bool = False


@dataclass(frozen=True)
class ProposerSettings:
    """A proposer class and its arguments besides ``space``: ``settings(space)`` builds it.

    Attributes:
        cls: the :class:`~ncp_hpo.search.Proposer` subclass.
        params: its keyword arguments (its own field defaults fill the rest).
    """

    cls: type[Proposer]
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, space: CodeSpace) -> Proposer:
        """A fresh proposer over ``space`` (its arguments are checked here)."""
        return self.cls(space, **self.params)

    @property
    def lam(self) -> float:
        """The FLOPs penalty the proposer will weigh, as given (0 when not given)."""
        lam: float = self.params.get("lam", 0.0)
        return lam

    @property
    def predictor_defaults(self) -> PredictorDefaults:
        """The predictor the proposer class wants by default."""
        return self.cls.predictor_defaults


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """Where a sampler's predictor comes from: ``settings(space)`` builds the
    :class:`~ncp_hpo.search.PredictorSource` for ``space``.

    Attributes:
        prior: a fitted predictor to propose with from the first trial (``None``: none).
        online: fit (or, with a prior, fine-tune) a predictor on the completed trials.
        refit_every: refit after this many new completed trials (``None``: the defaults').
        predictor_params: the user's ``NeuralPredictor`` keyword arguments; they override
            ``defaults.predictor_params``.
        defaults: the proposer's :class:`PredictorDefaults`.
    """

    prior: NeuralPredictor | None = None
    online: bool = True
    refit_every: int | None = None
    predictor_params: Mapping[str, Any] | None = None
    defaults: PredictorDefaults = field(default_factory=PredictorDefaults)

    def source_args(self) -> dict[str, Any]:
        """``PredictorSource`` keyword arguments besides ``predictor_params``."""
        return {
            "prior": self.prior,
            "online": self.online,
            "refit_every": self.defaults.refit_every
            if self.refit_every is None
            else self.refit_every,
            "refit_growth": 0.0 if self.prior is not None else self.defaults.refit_growth,
        }

    def predictor_kwargs(self, space: CodeSpace | None) -> dict[str, Any]:
        """The online predictor's keyword arguments on ``space``: one thread, the defaults,
        the space's ``input_features`` as ``input_map`` (where the defaults want them and the
        space has any), then the user's ``predictor_params``."""
        use = self.defaults.input_features and space is not None
        features = space.input_features if use and space is not None else None
        return {
            "n_threads": 1,
            **self.defaults.predictor_params,
            **({} if features is None else {"input_map": features}),
            **(self.predictor_params or {}),
        }

    def check(self) -> None:
        """Raise what :class:`~ncp_hpo.search.PredictorSource` raises for these settings
        (before any space is known)."""
        PredictorSource(**self.source_args())

    def __call__(self, space: CodeSpace) -> PredictorSource:
        """A fresh predictor source for ``space``."""
        return PredictorSource(predictor_params=self.predictor_kwargs(space), **self.source_args())
