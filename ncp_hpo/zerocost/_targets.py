"""Which untrained network a code is scored on, per benchmark, and the scoring of one code.

Each benchmark setting names a :class:`Target`: the builder (NAS-Bench-201 or
multi-resolution), the task head, the classes and the synflow input shape.

* ``nas-bench-201``: the NAS-Bench-201 network with a 120-class head on a ``3 x 16 x 16``
  input, the ImageNet16-120 network whose accuracy the table holds.
* NAS-Bench-MR settings: :func:`~ncp_hpo.models.create_model` with the setting's task and
  classes (``cls-*``: ImageNet subsets, 50 or 10 classes; ``seg*``: 19 Cityscapes classes;
  ``video*``: 51 HMDB51 classes, 2-frame clips). Synflow runs on a ``64 x 64`` input (the
  cost columns use 128 x 128; ``benchmarks/zerocost_proxies.py --resolution-check`` measures
  the Spearman between the two). ``3ddet`` has no target (the BEV pseudo-image input of
  its network is not defined by the code).

Weights are initialised from :data:`INIT_SEED` by the builder's own initialiser, in a
forked RNG (the global torch RNG is left as it was).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ncp_hpo.exceptions import UnsupportedSettingError

__all__ = ["INIT_SEED", "PROXIES", "PROXY_VERSION", "Target", "build_network", "get_target"]

PROXY_VERSION = 1
"""Version of the proxy math and of the targets below; bump it when a score would change
(cached tables with another version are refused as stale)."""

INIT_SEED = 0
"""Seed of the weight initialisation of every scored network."""

PROXIES: tuple[str, ...] = ("synflow", "naswot")
"""Proxy names. ``synflow`` is data-free; ``naswot`` needs a minibatch."""


@dataclass(frozen=True)
class Target:
    """The network a benchmark's codes are scored on.

    Attributes:
        kind: ``"nb201"`` or ``"multires"`` (the code space).
        task: the multi-resolution task head (``"cls"``, ``"seg"``, ``"video"``); ``""`` for NB201.
        num_classes: classes of the head.
        input_shape: synflow's all-ones input without the batch dimension,
            ``C x H x W`` or ``C x T x H x W`` (clips).
    """

    kind: str
    task: str
    num_classes: int
    input_shape: tuple[int, ...]

    def describe(self) -> str:
        """One line: builder, head and input, e.g. ``nb201 network, 120 classes, input 3x16x16``."""
        net = "nb201 network" if self.kind == "nb201" else f"multires {self.task} network"
        shape = "x".join(str(s) for s in self.input_shape)
        return f"{net}, {self.num_classes} classes, input {shape}"


_MR_SIZE = 64
_TARGETS: dict[str, Target] = {
    "nas-bench-201": Target("nb201", "", 120, (3, 16, 16)),
    "cls-50-1000": Target("multires", "cls", 50, (3, _MR_SIZE, _MR_SIZE)),
    "cls-50-100": Target("multires", "cls", 50, (3, _MR_SIZE, _MR_SIZE)),
    "cls-10-1000": Target("multires", "cls", 10, (3, _MR_SIZE, _MR_SIZE)),
    "cls-10c": Target("multires", "cls", 50, (3, _MR_SIZE, _MR_SIZE)),
    "seg": Target("multires", "seg", 19, (3, _MR_SIZE, _MR_SIZE)),
    "seg-4x": Target("multires", "seg", 19, (3, _MR_SIZE, _MR_SIZE)),
    "video": Target("multires", "video", 51, (3, 2, _MR_SIZE, _MR_SIZE)),
    "video-p": Target("multires", "video", 51, (3, 2, _MR_SIZE, _MR_SIZE)),
}


def get_target(benchmark: str) -> Target:
    """The :class:`Target` of a benchmark setting name.

    Raises:
        UnknownSettingError: not a registered setting.
        UnsupportedSettingError: a registered setting without a target (``3ddet``).
    """
    from ncp_hpo.benchmarks import get_setting

    name = get_setting(benchmark).name
    if name not in _TARGETS:
        raise UnsupportedSettingError(
            f"no zero-cost target for setting {name!r}; supported: {', '.join(_TARGETS)}"
        )
    return _TARGETS[name]


def build_network(target: Target, code: Any, *, batch_norm: bool) -> nn.Module:
    """The untrained network of ``code`` for ``target``, initialised from :data:`INIT_SEED`.

    ``batch_norm=False`` builds it without batch norm (synflow's convention).
    """
    from ncp_hpo.zerocost._proxies import strip_batch_norm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        if target.kind == "nb201":
            from ncp_hpo.models.nb201_net import create_nb201_model

            net: nn.Module = create_nb201_model(
                code, num_classes=target.num_classes, batch_norm=batch_norm
            )
        else:
            from ncp_hpo.models import create_model

            net = create_model(code, task=target.task, num_classes=target.num_classes)
            if not batch_norm:
                strip_batch_norm(net)
    return net


def score_code(target: Target, proxy: str, code: Any, batch: Tensor | None = None) -> float:
    """One proxy score of one code (see :mod:`ncp_hpo.zerocost._proxies`)."""
    from ncp_hpo.zerocost._proxies import naswot, synflow

    if proxy == "synflow":
        return synflow(build_network(target, code, batch_norm=False), target.input_shape)
    if proxy == "naswot":
        if batch is None:
            raise ValueError("proxy 'naswot' needs a minibatch: pass batch=<B x C x H x W tensor>")
        return naswot(build_network(target, code, batch_norm=True), batch)
    raise ValueError(f"unknown proxy {proxy!r}; known: {', '.join(PROXIES)}")


def score_chunk(
    target: Target, proxy: str, codes: np.ndarray, batch: Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and seconds of each code of ``codes`` (``n x d``): two float64 arrays ``n``.

    Runs with one torch thread (a process-pool worker's whole budget)."""
    torch.set_num_threads(1)
    scores = np.empty(len(codes), dtype=np.float64)
    seconds = np.empty(len(codes), dtype=np.float64)
    for i, code in enumerate(codes):
        t0 = time.perf_counter()
        scores[i] = score_code(target, proxy, code, batch)
        seconds[i] = time.perf_counter() - t0
    return scores, seconds
