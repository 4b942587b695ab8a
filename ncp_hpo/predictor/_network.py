"""The predictor's network: an ensemble of multi-head MLPs as batched weight tensors.

See :mod:`ncp_hpo.predictor` for the model; :class:`EnsembleMLP` trains, and
:class:`FrozenWeights` is its constant copy that propagation differentiates through.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EnsembleMLP", "FrozenWeights", "keep_mask"]


class EnsembleMLP(nn.Module):
    """``E`` members x ``G`` heads x ``m`` outputs, stored as stacked weight tensors.

    Parameters (``E`` members, ``d`` inputs, ``H`` shared width, ``G`` heads, ``K`` head
    width, ``m`` metrics): ``w1`` ``E x d x H``, ``b1`` ``E x 1 x H``, ``w2`` ``E x H x (G*K)``
    (the ``G`` head layers side by side, so all heads run as one matrix product),
    ``b2`` ``E x 1 x (G*K)``, ``w3`` ``E x m x K`` (one ``K -> 1`` output per metric, reading
    its head's ``K`` features), ``b3`` ``E x m``.
    Buffers: ``input_mean``/``input_std`` (``d``), ``target_mean``/``target_std`` (``m``),
    ``head_of_metric`` (``m``, int64, the head index of each metric).
    """

    def __init__(
        self,
        d: int,
        head_of_metric: Sequence[int],
        *,
        n_members: int,
        hidden: int,
        head_hidden: int,
        dropout: float,
        activation: str,
    ) -> None:
        super().__init__()
        m = len(head_of_metric)
        g = max(head_of_metric) + 1
        e = n_members
        self.dropout = float(dropout)
        self.activation = activation
        self.n_heads = g
        self.head_hidden = head_hidden
        self.w1 = nn.Parameter(torch.empty(e, d, hidden))
        self.b1 = nn.Parameter(torch.empty(e, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(e, hidden, g * head_hidden))
        self.b2 = nn.Parameter(torch.empty(e, 1, g * head_hidden))
        self.w3 = nn.Parameter(torch.empty(e, m, head_hidden))
        self.b3 = nn.Parameter(torch.empty(e, m))
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        self.register_buffer("target_mean", torch.zeros(m))
        self.register_buffer("target_std", torch.ones(m))
        self.register_buffer("head_of_metric", torch.as_tensor(list(head_of_metric)).long())
        self._identity_heads = list(head_of_metric) == list(range(m))
        # outputs -> (w2 columns or None for all heads, head position per output, outputs, g)
        self._plans: dict[tuple[int, ...], tuple[Tensor | None, Tensor, Tensor, int]] = {}
        self._frozen: dict[tuple[int, ...] | None, tuple[tuple[Any, ...], FrozenWeights]] = {}

    input_mean: Tensor
    input_std: Tensor
    target_mean: Tensor
    target_std: Tensor
    head_of_metric: Tensor

    @property
    def n_members(self) -> int:
        return int(self.w1.shape[0])

    def set_target_stats(self, y: np.ndarray, *, keep_function: bool = False) -> None:
        """Set ``target_mean``/``target_std`` from ``y`` (``n x m``, original units).

        With ``keep_function`` the output layer is rescaled so the function in original
        units is unchanged (a warm start on new data with the same metrics).
        """
        old_mu, old_sd = self.target_mean.clone(), self.target_std.clone()
        std = y.std(0)
        self.target_mean.copy_(torch.from_numpy(y.mean(0)))
        self.target_std.copy_(torch.from_numpy(np.where(std > 1e-12, std, 1.0)))
        if not keep_function:
            return
        scale = old_sd / self.target_std  # m
        shift = (old_mu - self.target_mean) / self.target_std
        with torch.no_grad():
            self.w3.mul_(scale.view(1, -1, 1))
            self.b3.mul_(scale.view(1, -1)).add_(shift.view(1, -1))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """``nn.Linear``'s default init (uniform in ``+-1/sqrt(fan_in)``) from ``generator``."""
        with torch.no_grad():
            for w, b, fan_in in (
                (self.w1, self.b1, self.w1.shape[1]),
                (self.w2, self.b2, self.w2.shape[1]),
                (self.w3, self.b3, self.w3.shape[2]),
            ):
                bound = 1.0 / math.sqrt(fan_in)
                w.uniform_(-bound, bound, generator=generator)
                b.uniform_(-bound, bound, generator=generator)

    def _act(self, x: Tensor) -> Tensor:
        if self.activation == "swish":
            return F.silu(x)
        if self.activation == "relu":
            return F.relu(x)
        return torch.tanh(x)

    def _drop(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if generator is None or self.dropout == 0.0:
            return x
        keep = 1.0 - self.dropout
        scale = keep_mask(x.shape, keep, generator).to(x.dtype).mul_(1.0 / keep)
        return x * scale

    def _linear(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """``x`` (``N x i`` or ``E x N x i``) @ ``w`` (``E x i x o``) + ``b`` -> ``E x N x o``."""
        if w.shape[0] == 1:  # one member: a plain GEMM is faster than a batched one
            # views, not w[0]: select's backward allocates and fills a zero tensor
            out = torch.addmm(b.view(-1), x.reshape(-1, x.shape[-1]), w.view(w.shape[1:]))
            return out.unsqueeze(0)
        if x.ndim == 2:
            x = x.expand(w.shape[0], *x.shape)
        return torch.baddbmm(b, x, w)

    def forward(
        self,
        z: Tensor,
        generator: torch.Generator | None = None,
        outputs: Sequence[int] | None = None,
    ) -> Tensor:
        """Standardised codes -> standardised outputs of every member.

        Args:
            z: ``N x d`` (shared by all members) or ``E x N x d`` (one batch per member).
            generator: when given, dropout is active and its masks come from it (training);
                ``None`` is evaluation mode.
            outputs: metric indices to compute (``m'`` of them); only their heads run.
                Default: all ``m``.

        Returns:
            ``E x N x m`` (``E x N x m'`` with ``outputs``).
        """
        h = self._drop(self._act(self._linear(z, self.w1, self.b1)), generator)  # E x N x H
        w2: Tensor
        b2: Tensor
        w3: Tensor
        b3: Tensor
        if outputs is None:
            w2, b2, head_of, w3, b3 = self.w2, self.b2, self.head_of_metric, self.w3, self.b3
            identity, g = self._identity_heads, self.n_heads
        else:
            w2, b2, head_of, w3, b3, g = self._select(outputs)
            identity = False
        h2 = self._drop(self._act(self._linear(h, w2, b2)), generator)  # E x N x gK
        e, n = h2.shape[0], h2.shape[1]
        h2 = h2.view(e, n, g, self.head_hidden)  # E x N x g x K
        if not identity:
            h2 = h2.index_select(2, head_of)  # E x N x m x K
        return (h2 * w3.unsqueeze(1)).sum(-1) + b3.unsqueeze(1)  # E x N x m

    def _select(self, outputs: Sequence[int]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:
        """Weights of the heads that ``outputs`` need (differentiable slices)."""
        key = tuple(int(j) for j in outputs)
        plan = self._plans.get(key)
        if plan is None:
            head_of = self.head_of_metric.tolist()
            heads = sorted({head_of[j] for j in key})
            k = self.head_hidden
            cols = torch.tensor([h * k + i for h in heads for i in range(k)], dtype=torch.long)
            plan = (
                None if len(heads) == self.n_heads else cols,
                torch.tensor([heads.index(head_of[j]) for j in key], dtype=torch.long),
                torch.tensor(key, dtype=torch.long),
                len(heads),
            )
            self._plans[key] = plan
        cols_t, head_pos, metrics, g = plan
        w2: Tensor = self.w2
        b2: Tensor = self.b2
        if cols_t is not None:
            w2, b2 = w2.index_select(2, cols_t), b2.index_select(2, cols_t)
        return (
            w2,
            b2,
            head_pos,
            self.w3.index_select(1, metrics),
            self.b3.index_select(1, metrics),
            g,
        )

    def _frozen_weights(self, outputs: Sequence[int] | None) -> FrozenWeights:
        """Detached copies of the weights ``outputs`` needs, cached until they change
        (keyed by the parameters' identity, storage and version counters)."""
        key = None if outputs is None else tuple(int(j) for j in outputs)
        versions = tuple((id(p), p.data_ptr(), p._version) for p in self.parameters())
        hit = self._frozen.get(key)
        if hit is not None and hit[0] == versions:
            return hit[1]
        with torch.no_grad():
            w2, b2, head_of, w3, b3, g = (
                (self.w2, self.b2, self.head_of_metric, self.w3, self.b3, self.n_heads)
                if key is None
                else self._select(key)
            )
            fw = FrozenWeights(
                w1=self.w1.detach().clone(),
                b1=self.b1.detach().clone(),
                w2=w2.detach().clone(),
                b2=b2.detach().clone(),
                w3=w3.detach().clone(),
                b3=b3.detach().clone(),
                head_of=head_of,
                identity=key is None and self._identity_heads,
                g=g,
                k=self.head_hidden,
                activation=self.activation,
            )
        self._frozen[key] = (versions, fw)
        return fw

    def frozen_forward(self, outputs: Sequence[int] | None = None) -> Callable[[Tensor], Tensor]:
        """Evaluation-mode forward with the weights as constants (detached, pre-sliced).

        For propagation: gradients flow to the input only, the heads ``outputs`` needs are
        sliced once, and the ensemble mean is taken. Rebuilt when the weights change.

        Returns:
            ``f(z)``: ``N x d`` standardised codes -> ``N x m'`` standardised outputs.
        """
        return self._frozen_weights(outputs).forward

    def frozen_input_gradient(
        self, outputs: Sequence[int], weights: Sequence[float]
    ) -> Callable[[Tensor], Tensor]:
        """Hand-written ``d/dz sum_j weights_j * output_j`` (evaluation mode, ensemble mean).

        Returns:
            ``g(z)``: ``N x d`` standardised codes -> ``N x d`` gradient (no autograd).
        """
        return self._frozen_weights(outputs).input_gradient(weights)


@dataclass(frozen=True)
class FrozenWeights:
    """Constant weights of an ensemble MLP restricted to some outputs (see ``EnsembleMLP``).

    ``w1`` ``E x d x H``, ``b1`` ``E x 1 x H``, ``w2`` ``E x H x gK``, ``b2`` ``E x 1 x gK``,
    ``w3`` ``E x m' x K``, ``b3`` ``E x m'``; ``head_of`` ``m'`` (head position of each output).
    """

    w1: Tensor
    b1: Tensor
    w2: Tensor
    b2: Tensor
    w3: Tensor
    b3: Tensor
    head_of: Tensor
    identity: bool
    g: int
    k: int
    activation: str

    @property
    def e(self) -> int:
        return int(self.w1.shape[0])

    def _lin(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        if self.e == 1:
            return torch.addmm(b[0, 0], x.reshape(-1, x.shape[-1]), w[0]).unsqueeze(0)
        return torch.baddbmm(b, x.expand(self.e, *x.shape) if x.ndim == 2 else x, w)

    def _act(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """Activation and its derivative at ``a``."""
        if self.activation == "swish":
            s = torch.sigmoid(a)
            return a * s, s * (1 + a * (1 - s))
        if self.activation == "relu":
            return torch.relu(a), (a > 0).to(a.dtype)
        t = torch.tanh(a)
        return t, 1 - t * t

    def forward(self, z: Tensor) -> Tensor:
        """``N x d`` -> ``N x m'`` (differentiable in ``z``)."""
        act = (
            F.silu
            if self.activation == "swish"
            else (F.relu if self.activation == "relu" else torch.tanh)
        )
        h = act(self._lin(z, self.w1, self.b1))  # E x N x H
        h2 = act(self._lin(h, self.w2, self.b2))  # E x N x gK
        h2 = h2.view(self.e, h2.shape[1], self.g, self.k)
        if not self.identity:
            h2 = h2.index_select(2, self.head_of)  # E x N x m' x K
        if self.e == 1:  # m' small GEMVs: (m' x N x K) @ (m' x K x 1)
            out = torch.baddbmm(
                self.b3[0].view(-1, 1, 1), h2[0].transpose(0, 1), self.w3[0].unsqueeze(-1)
            )  # m' x N x 1
            return out.squeeze(-1).transpose(0, 1)
        out = (h2 * self.w3.unsqueeze(1)).sum(-1) + self.b3.unsqueeze(1)  # E x N x m'
        return out.mean(0)

    def input_gradient(self, weights: Sequence[float]) -> Callable[[Tensor], Tensor]:
        c = torch.as_tensor(list(weights), dtype=self.w3.dtype)  # m'
        # d(sum_j c_j out_j)/d h2: the same vector for every row, E x gK
        vec = torch.zeros(self.e, self.g, self.k, dtype=self.w3.dtype)
        vec.index_add_(1, self.head_of, c.view(1, -1, 1) * self.w3)
        vec = vec.reshape(self.e, 1, -1)
        w1t, w2t = self.w1.transpose(1, 2), self.w2.transpose(1, 2)

        def grad(z: Tensor) -> Tensor:
            h, dh = self._act(self._lin(z, self.w1, self.b1))  # E x N x H
            _, dh2 = self._act(self._lin(h, self.w2, self.b2))  # E x N x gK
            d2 = vec * dh2
            if self.e == 1:
                d1 = (d2[0] @ w2t[0]) * dh[0]  # N x H
                return d1 @ w1t[0]  # N x d
            d1 = torch.bmm(d2, w2t) * dh
            return torch.bmm(d1, w1t).mean(0)

        return grad


def keep_mask(shape: torch.Size, keep: float, generator: torch.Generator) -> Tensor:
    """Boolean Bernoulli(``keep``) mask of ``shape`` drawn from ``generator``.

    One element per 16 random bits: 64 random bits are drawn per four elements and each
    16-bit chunk is compared with ``keep`` quantised to 1/65536 (exact for the paper's
    0.5); cheaper than ``bernoulli_`` (or ``F.dropout``), which draws per element.
    """
    numel = math.prod(shape)
    words = torch.empty(-(-numel // 4), dtype=torch.int64).random_(
        -(2**63), 2**63 - 1, generator=generator
    )
    threshold = round(keep * 65536) - 32768  # P(int16 < threshold) = keep
    return (words.view(torch.int16)[:numel] < threshold).view(shape)
