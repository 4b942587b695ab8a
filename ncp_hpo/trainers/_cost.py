"""The cost of a trained network: measured FLOPs and parameters of one forward pass, the
closed-form count of its code (:mod:`ncp_hpo.spaces.cost`), and codes in both forms."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ncp_hpo.exceptions import NCPWarning

__all__ = ["analytic_cost", "code_string", "code_vector", "measure_cost"]


def measure_cost(model: nn.Module, example: Tensor) -> tuple[int, int, Any]:
    """``(flops, params, output)`` of one forward pass of ``example`` in eval mode.

    ``flops`` is ``torch.utils.flop_counter.FlopCounterMode``'s total (2 per
    multiply-accumulate of convolutions and matrix products).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            out = model(example)
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return int(counter.get_total_flops()), int(params), out


def analytic_cost(
    code: Any, task: str, example: Tensor, output: Any
) -> tuple[int | None, int | None]:
    """Closed-form MACs and params of ``code`` at the example's geometry, or ``None``s."""
    if code is None:
        return None, None
    try:
        from ncp_hpo.spaces.cost import flops as cost_flops
        from ncp_hpo.spaces.cost import params as cost_params
    except ImportError:  # pragma: no cover - the cost model ships with the package
        return None, None
    kw: dict[str, Any] = {"task": task, "in_chans": int(example.shape[1])}
    if task == "bev-det":
        heat, boxes = output
        kw.update(num_classes=int(heat.shape[1]), box_channels=int(boxes.shape[1]))
    else:
        kw["num_classes"] = int(output.shape[1])
    fkw = dict(kw, input_size=tuple(int(s) for s in example.shape[-2:]))
    if task == "video":
        fkw["frames"] = int(example.shape[2])
    try:
        vec = code_vector(code)
        return int(cost_flops(vec, **fkw)), int(cost_params(vec, **kw))
    except (ValueError, TypeError) as exc:
        warnings.warn(f"no analytic cost for this model: {exc}", NCPWarning, stacklevel=4)
        return None, None


def code_vector(code: Any) -> Any:
    """A multi-resolution code as its 27 integers (strings are decoded)."""
    from ncp_hpo.spaces import MultiResolutionSpace, NetworkCode

    if isinstance(code, str):
        return MultiResolutionSpace().decode(code)
    if isinstance(code, NetworkCode):
        return code.to_vector()
    return code


def code_string(code: Any) -> str | None:
    """The code string of ``code`` (any form), its ``str`` for another space, or ``None``."""
    if code is None:
        return None
    if isinstance(code, str):
        return code
    try:
        from ncp_hpo.spaces import MultiResolutionSpace

        out = MultiResolutionSpace().encode(code)
        return out if isinstance(out, str) else None
    except Exception:  # a code of another space: keep its repr
        return str(code)
