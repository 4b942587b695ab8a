"""Check ``--sampler-param NAME=VALUE`` values against the sampler's constructor.

The command line passes JSON values; a wrong type or an out-of-range value gets a one-line
message naming the parameter, the expected type and the allowed range, instead of whatever
the sampler's constructor happens to raise (``'<' not supported between ...``).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from ncp_hpo.exceptions import SamplerParamError

__all__ = ["SamplerParamError", "check_sampler_params"]

# Lower bounds of the numeric constructor arguments the command line can set:
# name -> (bound, inclusive). Arguments not listed accept any finite value of their type.
_LOWER: dict[str, tuple[float, bool]] = {
    "iterations": (1, True),
    "n_starts": (1, True),
    "refit_every": (1, True),
    "n_startup_trials": (0, True),
    "n_ei_candidates": (1, True),
    "population_size": (2, True),
    "lam": (0, True),
    "lr": (0, False),
    "gamma": (0, False),
    "prior_weight": (0, False),
}


def check_sampler_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` checked (and ints widened to floats) against ``cls.__init__``'s annotations.

    Raises:
        SamplerParamError: ``"sampler parameter iterations='abc': expected an integer >= 1"``.
    """
    return {k: _check(k, v, _hint(cls, k)) for k, v in params.items()}


def _hint(cls: type, name: str) -> Any:
    """The resolved annotation of ``cls.__init__``'s argument ``name`` (None if unresolvable)."""
    init: Any = getattr(cls, "__init__")  # noqa: B009 (mypy: __init__ of a type)
    try:
        return typing.get_type_hints(init).get(name)
    except Exception:  # some annotation names a type-checking-only import: resolve just this one
        raw = getattr(init, "__annotations__", {}).get(name)
        if not isinstance(raw, str):
            return raw
        namespace = {**vars(typing), **getattr(init, "__globals__", {})}
        try:
            return eval(raw, namespace)  # an annotation string of the sampler's own module
        except Exception:
            return None


def _check(name: str, value: Any, hint: Any) -> Any:
    if hint is None or hint is Any:
        return value
    options = _flatten(hint)
    for option in options:
        ok, converted = _accepts(option, name, value)
        if ok:
            return converted
    wanted = " or ".join(dict.fromkeys(_describe(o, name) for o in options))
    raise SamplerParamError(f"sampler parameter {name}={value!r}: expected {wanted}")


def _flatten(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [o for arg in typing.get_args(hint) for o in _flatten(arg)]
    return [hint]


def _in_range(name: str, v: float) -> bool:
    bound = _LOWER.get(name)
    if bound is None:
        return True
    low, inclusive = bound
    return v >= low if inclusive else v > low


def _accepts(option: Any, name: str, value: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(option) or option
    if option is type(None):
        return value is None, value
    if origin is Literal:
        return value in typing.get_args(option), value
    if option is bool:
        return isinstance(value, bool), value
    if option is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and _in_range(name, value)
        return ok, value
    if option is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        v = float(value)
        return math.isfinite(v) and _in_range(name, v), v
    if option is str:
        return isinstance(value, str), value
    if origin in (dict, Mapping, typing.Mapping):
        return isinstance(value, dict), value
    if origin in (list, tuple, typing.Sequence):
        return isinstance(value, list), value
    if isinstance(option, type):  # objects (a prior predictor ...) passed by the library itself
        return isinstance(value, option), value
    return False, value


def _range_text(name: str) -> str:
    bound = _LOWER.get(name)
    if bound is None:
        return ""
    low, inclusive = bound
    return f" {'>=' if inclusive else '>'} {low:g}"


def _describe(option: Any, name: str) -> str:
    origin = typing.get_origin(option) or option
    if option is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(option))
    if option is bool:
        return "true or false"
    if option is int:
        return "an integer" + _range_text(name)
    if option is float:
        return "a number" + _range_text(name)
    if option is str:
        return "a string"
    if origin in (dict, Mapping, typing.Mapping):
        return "a JSON object"
    if origin in (list, tuple, typing.Sequence):
        return "a JSON list"
    return f"a {getattr(option, '__name__', option)} (not settable from the command line)"
