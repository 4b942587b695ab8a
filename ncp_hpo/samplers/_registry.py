"""Any sampler by name: :func:`make_sampler` is what ``compare``, ``study`` and ``worker`` call.

The names it accepts live in :mod:`ncp_hpo.search` (:data:`~ncp_hpo.search.OPTUNA_SAMPLERS`:
the command line reads them without importing this package).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ncp_hpo.exceptions import SamplerConfigError
from ncp_hpo.samplers._baselines import NetAdaptSampler, NeuralPredictorSampler, SpaceRandomSampler
from ncp_hpo.samplers._ncp import NCPSampler
from ncp_hpo.search._registry import (
    AX_SAMPLERS,
    OPTUNA_SAMPLERS,
    PREDICTOR_SAMPLERS,
    budget_refusal,
)
from ncp_hpo.search._sampler_params import SamplerParamError, check_sampler_params

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

__all__ = ["make_sampler"]


def _sampler_class(name: str, space: Any) -> tuple[Any, dict[str, Any]]:
    """The class of sampler ``name`` and the fixed arguments it gets for ``space``."""
    import optuna

    if name in PREDICTOR_SAMPLERS:
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
        if name in AX_SAMPLERS:
            raise SamplerConfigError(
                f"{name!r} is an Ax generation strategy, not an Optuna sampler; "
                f"choose from {allowed}"
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
        SamplerConfigError: unknown name, unknown or ill-typed parameter, or a sampler that
            cannot search a space restricted to a compute budget (``gp``).
    """
    refusal = budget_refusal(name) if getattr(space, "restricted", False) else None
    if refusal is not None:
        raise SamplerConfigError(refusal)
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
