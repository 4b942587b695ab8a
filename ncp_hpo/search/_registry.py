"""One registry of sampler names and task names: every command and API builds samplers here.

``make_sampler(name, space=..., seed=...)`` is what ``compare``, ``study`` and ``worker`` call;
the names they accept come from :data:`SAMPLERS` (``"ax"`` is a generation strategy, not an
Optuna sampler: ``compare`` runs it through its own loop).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import SamplerConfigError

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

__all__ = [
    "DEFAULT_SAMPLERS",
    "OPTUNA_SAMPLERS",
    "PREDICTOR_SAMPLERS",
    "SAMPLERS",
    "TASKS",
    "SamplerConfigError",
    "make_sampler",
]

PREDICTOR_SAMPLERS: tuple[str, ...] = (
    "ncp",
    "ncp-paper",
    "ncp-guided",
    "ncp-local",
    "netadapt",
    "neural-predictor",
)
"""Samplers built on the neural predictor: they take ``lam`` and a ``prior``. ``ncp`` is
``NCPSampler``'s default configuration (its ``"local"`` mode); ``ncp-paper``, ``ncp-guided``
and ``ncp-local`` name one mode each."""

OPTUNA_SAMPLERS: tuple[str, ...] = (
    *PREDICTOR_SAMPLERS,
    "random",
    "tpe",
    "gp",
    "cmaes",
    "nsga2",
)
"""Names :func:`make_sampler` builds: an Optuna ``BaseSampler`` each."""

SAMPLERS: tuple[str, ...] = (*OPTUNA_SAMPLERS, "ax")
"""Every sampler name a comparison accepts (``ax``: Ax's default generation strategy)."""

DEFAULT_SAMPLERS: tuple[str, ...] = ("ncp", "netadapt", "neural-predictor", "random", "tpe")
"""The samplers a comparison runs by default. ``gp`` is left out: Optuna's GPSampler costs
several times NCP's time per trial on the 27-dimensional NAS-Bench-MR space."""

TASKS: tuple[str, ...] = ("cls", "seg", "video", "bev-det")
"""Real-training tasks (``ncp_hpo.trainers.TASKS`` maps each to its strategy)."""


def _sampler_class(name: str, space: Any) -> tuple[Any, dict[str, Any]]:
    """The class of sampler ``name`` and the fixed arguments it gets for ``space``."""
    import optuna

    if name in PREDICTOR_SAMPLERS:
        from ncp_hpo.samplers import NCPSampler, NetAdaptSampler, NeuralPredictorSampler

        predictor_classes: dict[str, type] = {
            "ncp": NCPSampler,
            "ncp-paper": NCPSampler,
            "ncp-guided": NCPSampler,
            "ncp-local": NCPSampler,
            "netadapt": NetAdaptSampler,
            "neural-predictor": NeuralPredictorSampler,
        }
        fixed: dict[str, Any] = {"space": space}
        if name in ("ncp-paper", "ncp-guided", "ncp-local"):
            fixed["mode"] = name.removeprefix("ncp-")
        return predictor_classes[name], fixed
    if name == "random":
        if space is not None and space.restricted:
            from ncp_hpo.samplers import SpaceRandomSampler

            return SpaceRandomSampler, {"space": space}  # uniform over codes within the budget
        return optuna.samplers.RandomSampler, {}
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError as exc:
            raise SamplerConfigError(
                "the cmaes sampler needs the 'cmaes' extra: pip install 'ncp-hpo[cmaes]'"
            ) from exc
        return optuna.samplers.CmaEsSampler, {"warn_independent_sampling": False}
    classes: dict[str, type] = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    if name not in classes:
        allowed = ", ".join(OPTUNA_SAMPLERS)
        if name == "ax":
            raise SamplerConfigError(
                f"'ax' is an Ax generation strategy, not an Optuna sampler; choose from {allowed}"
            )
        raise SamplerConfigError(f"unknown sampler {name!r}; choose from {allowed}")
    return classes[name], {}


def make_sampler(
    name: str,
    *,
    space: Any,
    seed: int | None = None,
    startup_trials: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> BaseSampler:
    """The Optuna sampler called ``name`` (one of :data:`OPTUNA_SAMPLERS`) for ``space``.

    Args:
        name: the sampler's registry name.
        space: the code space (the predictor-based samplers and the budgeted random sampler
            search it; Optuna's own samplers see the distributions the objective suggests).
        seed: the sampler's seed.
        startup_trials: ``n_startup_trials`` for samplers that have one.
        params: further constructor arguments (``--sampler-param NAME=VALUE``), checked
            against the constructor's annotations.

    Raises:
        SamplerConfigError: unknown name, unknown or ill-typed parameter.
    """
    from ncp_hpo.search._sampler_params import SamplerParamError, check_sampler_params

    cls, fixed = _sampler_class(name, space)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    given = dict(params or {})
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise SamplerConfigError(
            f"unknown {name} sampler parameter(s) {', '.join(unknown)}; accepted: "
            f"{', '.join(sorted(accepted - {'space', 'seed'}))}"
        )
    try:
        checked = check_sampler_params(cls, given)
    except SamplerParamError as exc:
        raise SamplerConfigError(f"--sampler-param: {exc}") from None
    kwargs: dict[str, Any] = {**fixed, "seed": seed, **checked}
    if startup_trials is not None:
        if "n_startup_trials" not in accepted:
            raise SamplerConfigError(f"--startup-trials does not apply to the {name} sampler")
        kwargs["n_startup_trials"] = startup_trials
    try:
        sampler: BaseSampler = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SamplerConfigError(f"{name} sampler: {exc}") from None
    return sampler
