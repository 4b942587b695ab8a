"""The neural predictor: architecture code -> metrics (paper Section 3.1, Eq. 1-2, Appendix E.1).

:class:`NeuralPredictor` is a small multi-head MLP with a scikit-learn-like interface:
``fit`` / ``predict`` / ``score`` / ``get_params`` / ``set_params`` / ``save`` / ``load``.
Propagation (:mod:`ncp_hpo.propagation`) back-propagates through its frozen weights with
:meth:`NeuralPredictor.forward_standardized`.

The model (paper Appendix E.1, upstream ``configs/*.yaml``)::

    z = (code - input_mean) / input_std                          # buffers, d
    h = dropout(swish(z @ W1 + b1))                              # shared layer, 256
    for each head g (a group of metrics):
        h_g = dropout(swish(h @ W2_g + b2_g))                    # one 128-wide layer per head
        y_j = h_g @ w3_j + b3_j       for each metric j in g     # 128 -> 1 per metric
    metric_j = y_j * target_std_j + target_mean_j                 # buffers, m

trained with the smooth-L1 loss on standardised targets, Adam (weight decay 1e-7) and a
one-cycle learning rate peaking at 0.01, batch 128, 200 epochs. ``n_members > 1`` trains an
ensemble; its members are stored as one ``n_members x ...`` weight tensor per layer, so the
whole ensemble runs as a few batched matrix products.

Determinism: every random draw of :meth:`NeuralPredictor.fit` (initialisation, the
per-epoch permutations, dropout masks) comes from one private ``torch.Generator`` seeded
with ``seed``; dropout is implemented with masks drawn from that generator (``F.dropout``
and ``nn.init`` would use the global RNG), and weights are initialised with
``Tensor.uniform_(generator=...)``, so the global torch RNG is neither read nor advanced.
Same ``seed``, data, parameters and thread count give bit-identical weights.

Differences from the upstream research code (``models/mlp.py``, ``datasets/dataset.py``):
upstream also puts ``BatchNorm1d`` on the input and after each hidden layer; here the
input is standardised with stored statistics and there is no batch normalisation (the
seg validation MAE is the paper's, ~0.75 mIoU, and propagation gradients do not depend
on batch statistics). Upstream computes the standardisation statistics on the whole table
(train and validation); here on the training codes only. Upstream's YAML configs switch
dropout off in the ``[flops, params]`` head; here one ``dropout`` applies to every layer.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncp_hpo.exceptions import InvalidCodeError, NCPError, PredictorNotFittedError

__all__ = [
    "CheckpointError",
    "NeuralPredictor",
    "PredictorScore",
    "as_code_batch",
    "fit_setting_predictor",
]

_FORMAT = "ncp_hpo.NeuralPredictor"
_FORMAT_VERSION = 2  # 1: draft whose checksum covered the tensors only
_ACTIVATIONS = ("swish", "relu", "tanh")
_LOSSES = ("smooth_l1", "mse", "l1")


class CheckpointError(NCPError, ValueError):
    """A predictor checkpoint is unreadable, corrupt, tampered with or of an unknown format."""


# ---------------------------------------------------------------------------------------
# Shapes: one helper for ``d`` vs ``n x d`` everywhere (predictor and propagation)
# ---------------------------------------------------------------------------------------
def as_code_batch(
    x: Any, d: int, *, name: str = "codes", dtype: torch.dtype = torch.float32
) -> tuple[Tensor, bool]:
    """Turn one code (``d``) or a batch (``n x d``) into an ``n x d`` tensor.

    Args:
        x: array-like, numpy array or tensor of shape ``d`` or ``n x d``.
        d: the expected number of code dimensions.
        name: the argument's name, used in error messages.
        dtype: floating dtype of the returned tensor.

    Returns:
        ``(batch, was_single)``: ``batch`` is ``n x d`` (``n = 1`` for a single code) on the
        CPU unless ``x`` is a tensor elsewhere; ``was_single`` tells the caller to squeeze the
        leading dimension of its result again.

    Raises:
        InvalidCodeError: wrong number of dimensions, wrong ``d``, non-numeric or NaN input;
            the message names the expected and the received shape.
    """
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InvalidCodeError(
                f"{name} must be an array of shape ({d},) or (n, {d}): {exc}"
            ) from None
        if (
            arr.dtype == object
            or np.iscomplexobj(arr)
            or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
        ):
            raise InvalidCodeError(
                f"{name} must be real numbers with shape ({d},) or (n, {d}); got dtype {arr.dtype}"
            )
        if not arr.flags.writeable:  # e.g. benchmark tables; torch wants writable memory
            arr = arr.copy()
        t = torch.from_numpy(np.ascontiguousarray(arr))
    shape = tuple(t.shape)
    if t.ndim not in (1, 2) or shape[-1] != d:
        hint = ""
        if t.ndim in (1, 2) and shape[-1] != d:
            hint = f": the last dimension must be d = {d}, got {shape[-1]}"
        elif t.ndim == 0:
            hint = ": got a scalar"
        else:
            hint = f": got {t.ndim} dimensions"
        raise InvalidCodeError(f"expected {name} of shape ({d},) or (n, {d}); got {shape}{hint}")
    if t.is_complex():
        raise InvalidCodeError(f"{name} must be real numbers; got a {t.dtype} tensor")
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise InvalidCodeError(f"{name} contains NaN or infinite values (or overflows {dtype})")
    single = t.ndim == 1
    return (t.unsqueeze(0) if single else t), single


def _targets_to_array(
    targets: Any, n: int, metric_names: Sequence[str] | None, *, name: str = "targets"
) -> tuple[np.ndarray, list[str]]:
    """``dict name -> (n,)`` or ``n x m`` (or ``n``) array -> (``n x m`` float64, names)."""
    if isinstance(targets, Mapping):
        names = list(targets.keys()) if metric_names is None else list(metric_names)
        missing = [k for k in names if k not in targets]
        if missing:
            raise ValueError(f"{name} has no column(s) {missing}; available: {list(targets)}")
        cols = []
        for k in names:
            col = np.asarray(
                targets[k].detach().cpu().numpy() if isinstance(targets[k], Tensor) else targets[k],
                dtype=np.float64,
            )
            if col.shape != (n,):
                raise ValueError(
                    f"{name}[{k!r}] must have shape ({n},) to match the codes, got {col.shape}"
                )
            cols.append(col)
        arr = np.stack(cols, axis=1) if cols else np.empty((n, 0))
    else:
        raw = targets.detach().cpu().numpy() if isinstance(targets, Tensor) else targets
        arr = np.asarray(raw, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"expected {name} of shape ({n},) or ({n}, m) to match {n} codes; got {arr.shape}"
            )
        if metric_names is None:
            names = ["y"] if arr.shape[1] == 1 else [f"y{j}" for j in range(arr.shape[1])]
        else:
            names = list(metric_names)
        if len(names) != arr.shape[1]:
            raise ValueError(
                f"{name} has {arr.shape[1]} column(s) but metric_names lists {len(names)}: {names}"
            )
    if not names:
        raise ValueError(f"{name} must hold at least one metric")
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be unique, got {names}")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}[{names[c]!r}] has a non-finite value at row {r}: {arr[r, c]}")
    return arr, names


# ---------------------------------------------------------------------------------------
# The network: an ensemble of multi-head MLPs as batched weight tensors
# ---------------------------------------------------------------------------------------
class _EnsembleMLP(nn.Module):
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
        self._frozen: dict[tuple[int, ...] | None, tuple[tuple[Any, ...], _FrozenWeights]] = {}

    input_mean: Tensor
    input_std: Tensor
    target_mean: Tensor
    target_std: Tensor
    head_of_metric: Tensor

    @property
    def n_members(self) -> int:
        return int(self.w1.shape[0])

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
        scale = _keep_mask(x.shape, keep, generator).to(x.dtype).mul_(1.0 / keep)
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

    def _frozen_weights(self, outputs: Sequence[int] | None) -> _FrozenWeights:
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
            fw = _FrozenWeights(
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
class _FrozenWeights:
    """Constant weights of an ensemble MLP restricted to some outputs (see ``_EnsembleMLP``).

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


def _keep_mask(shape: torch.Size, keep: float, generator: torch.Generator) -> Tensor:
    """Boolean Bernoulli(``keep``) mask of ``shape`` drawn from ``generator``.

    ``bernoulli_`` (and ``F.dropout``) cost ~10 ns per element on CPU; this draws 64
    random bits per four elements and compares 16-bit chunks with ``keep`` quantised to
    1/65536 (exact for the paper's 0.5), about 8x faster.
    """
    numel = math.prod(shape)
    words = torch.empty(-(-numel // 4), dtype=torch.int64).random_(
        -(2**63), 2**63 - 1, generator=generator
    )
    threshold = round(keep * 65536) - 32768  # P(int16 < threshold) = keep
    return (words.view(torch.int16)[:numel] < threshold).view(shape)


def _adam(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused where the build supports it (3x faster steps on CPU, same update rule)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch / unsupported device
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set ``torch.set_num_threads`` (``None`` leaves it alone).

    The setting is process-global, and samplers call in from several threads (Optuna's
    ``n_jobs``): the first caller in saves the user's value and the last one out restores
    it; callers that overlap share the first caller's count.
    """
    if n is None:
        yield
        return
    global _THREADS_DEPTH, _THREADS_SAVED
    with _THREADS_LOCK:
        if _THREADS_DEPTH == 0:
            _THREADS_SAVED = torch.get_num_threads()
            if _THREADS_SAVED != n:
                torch.set_num_threads(n)
        _THREADS_DEPTH += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_DEPTH -= 1
            if _THREADS_DEPTH == 0 and torch.get_num_threads() != _THREADS_SAVED:
                torch.set_num_threads(_THREADS_SAVED)


_THREADS_LOCK = threading.Lock()
_THREADS_DEPTH = 0
_THREADS_SAVED = 1


@dataclass(frozen=True)
class PredictorScore:
    """Held-out fidelity of a predictor (:meth:`NeuralPredictor.score`).

    Attributes:
        mae: mean absolute error per metric, in the metric's original units.
        metric: the main metric the rank correlations are computed on.
        kendall_tau: Kendall's tau between predicted and true main metric.
        spearman_rho: Spearman's rho between predicted and true main metric.
        n: number of codes scored.
    """

    mae: dict[str, float]
    metric: str
    kendall_tau: float
    spearman_rho: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _History:
    train_loss: list[float] = field(default_factory=list)
    val_mae: list[list[float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------
class NeuralPredictor:
    """Multi-head MLP predictor of architecture metrics (paper Appendix E.1).

    Args:
        metric_names: column names when ``targets`` is an array (ignored for dicts, whose
            keys are the names; when given with a dict it selects and orders the columns).
        main_metric: the metric ``score`` ranks on and propagation maximises by default;
            default the first metric.
        heads: metric groups, one 128-wide head per group (upstream's seg config is
            ``[["mIoU"], ["mAcc", "aAcc"], ["flops", "params"]]``); every metric ends in its
            own ``128 -> 1`` output. Default: one head per metric.
        hidden: width of the shared layer (256).
        head_hidden: width of each head's layer (128).
        dropout: dropout probability after both hidden layers (0.5).
        activation: ``"swish"`` (SiLU, the paper's), ``"relu"`` or ``"tanh"``.
        epochs: training epochs (200).
        batch_size: mini-batch size (128).
        lr: peak learning rate of the one-cycle schedule (0.01).
        weight_decay: Adam's L2 weight decay (1e-7).
        pct_start: fraction of the steps spent warming up (0.3, upstream).
        div_factor: initial lr = ``lr / div_factor`` (10, upstream).
        final_div_factor: final lr = initial lr / ``final_div_factor`` (1e4, torch default).
        loss: ``"smooth_l1"`` (the paper's), ``"mse"`` or ``"l1"``, on standardised targets.
        n_members: ensemble size; ``predict(..., return_std=True)`` gives their spread.
        seed: seed of the private generator (init, shuffling, dropout). ``None`` draws a
            fresh seed at each ``fit``; the one used is stored in ``seed_``.
        n_threads: torch intra-op threads used inside ``fit``/``predict`` (restored after);
            ``None`` leaves the global setting alone. One thread is fastest for this small
            model on a 2-core CPU (``benchmarks/predictor_speed.py``).
        verbose: print one line per 20 epochs.

    Fitted attributes: ``module_``, ``metric_names_``, ``main_metric_``, ``heads_``,
    ``n_features_in_``, ``seed_``, ``best_epoch_`` (per member; ``None`` without validation
    data), ``history_`` (``train_loss`` per epoch, ``val_mae`` per epoch and metric),
    ``fit_time_`` (seconds).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.uniform(0, 1, size=(256, 4))
        >>> y = {"acc": X @ [1.0, 2.0, 0.0, -1.0], "flops": X.sum(1)}
        >>> p = NeuralPredictor(epochs=20, seed=0).fit(X, y)
        >>> p.predict(X[:3]).shape
        (3, 2)
    """

    def __init__(
        self,
        *,
        metric_names: Sequence[str] | None = None,
        main_metric: str | None = None,
        heads: Sequence[Sequence[str]] | None = None,
        hidden: int = 256,
        head_hidden: int = 128,
        dropout: float = 0.5,
        activation: Literal["swish", "relu", "tanh"] = "swish",
        epochs: int = 200,
        batch_size: int = 128,
        lr: float = 0.01,
        weight_decay: float = 1e-7,
        pct_start: float = 0.3,
        div_factor: float = 10.0,
        final_div_factor: float = 1e4,
        loss: Literal["smooth_l1", "mse", "l1"] = "smooth_l1",
        n_members: int = 1,
        seed: int | None = 0,
        n_threads: int | None = 1,
        verbose: bool = False,
    ) -> None:
        self.metric_names = metric_names
        self.main_metric = main_metric
        self.heads = heads
        self.hidden = hidden
        self.head_hidden = head_hidden
        self.dropout = dropout
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.loss = loss
        self.n_members = n_members
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    # -- scikit-learn parameter protocol ------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as stored."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> NeuralPredictor:
        """Set constructor arguments (takes effect at the next ``fit``); returns ``self``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(
                    f"invalid parameter {k!r} for NeuralPredictor; valid parameters: {valid}"
                )
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {
            k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"NeuralPredictor({', '.join(changed)})"

    def _validate_params(self) -> None:
        def need(cond: bool, name: str, allowed: str) -> None:
            if not cond:
                raise ValueError(
                    f"the {name!r} parameter of NeuralPredictor must be {allowed}; "
                    f"got {getattr(self, name)!r}"
                )

        def pos_int(v: Any) -> bool:
            return bool(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1)

        for name in ("hidden", "head_hidden", "epochs", "batch_size", "n_members"):
            need(pos_int(getattr(self, name)), name, "an int >= 1")
        need(
            isinstance(self.dropout, int | float) and 0 <= self.dropout < 1, "dropout", "in [0, 1)"
        )
        need(self.activation in _ACTIVATIONS, "activation", f"one of {_ACTIVATIONS}")
        need(self.loss in _LOSSES, "loss", f"one of {_LOSSES}")
        need(isinstance(self.lr, int | float) and self.lr > 0, "lr", "a float > 0")
        need(self.weight_decay >= 0, "weight_decay", "a float >= 0")
        need(0 < self.pct_start < 1, "pct_start", "in (0, 1)")
        need(self.div_factor > 0, "div_factor", "a float > 0")
        need(self.final_div_factor > 0, "final_div_factor", "a float > 0")
        need(
            self.seed is None or (isinstance(self.seed, int | np.integer) and self.seed >= 0),
            "seed",
            "None or an int >= 0",
        )
        need(self.n_threads is None or pos_int(self.n_threads), "n_threads", "None or an int >= 1")

    # -- fitted state ---------------------------------------------------------------------
    def _check_fitted(self, what: str) -> _EnsembleMLP:
        module = getattr(self, "module_", None)
        if module is None:
            raise PredictorNotFittedError(
                f"this NeuralPredictor is not fitted yet; call fit(codes, targets) or "
                f"NeuralPredictor.load(path) before {what}"
            )
        return module

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "module_", None) is not None

    @property
    def input_mean_(self) -> Tensor:
        """Per-dimension code mean used for standardisation, ``d``."""
        return self._check_fitted("input_mean_").input_mean

    @property
    def input_std_(self) -> Tensor:
        """Per-dimension code std used for standardisation, ``d``."""
        return self._check_fitted("input_std_").input_std

    @property
    def target_mean_(self) -> Tensor:
        """Per-metric target mean, ``m`` (order of ``metric_names_``)."""
        return self._check_fitted("target_mean_").target_mean

    @property
    def target_std_(self) -> Tensor:
        """Per-metric target std, ``m`` (order of ``metric_names_``)."""
        return self._check_fitted("target_std_").target_std

    def metric_index(self, name: str) -> int:
        """Column of metric ``name`` in predictions."""
        self._check_fitted("metric_index")
        try:
            return self.metric_names_.index(name)
        except ValueError:
            raise KeyError(
                f"the predictor has no metric {name!r}; it predicts {self.metric_names_}"
            ) from None

    # -- fit ----------------------------------------------------------------------------
    def fit(
        self,
        codes: Any,
        targets: Mapping[str, Any] | Any,
        *,
        val_codes: Any | None = None,
        val_targets: Mapping[str, Any] | Any | None = None,
        warm_start: bool = False,
    ) -> NeuralPredictor:
        """Train on ``codes`` (``n x d``) and ``targets`` (dict name -> ``n``, or ``n x m``).

        Args:
            codes: ``n x d`` codes (ints or floats).
            targets: ``{name: (n,)}`` or an ``n x m`` array (names from ``metric_names``).
            val_codes: optional ``n_val x d`` codes for checkpoint selection: each member
                keeps the weights of the epoch with the lowest validation MAE of the main
                metric (upstream's ``best_model.pth``).
            val_targets: targets of ``val_codes``, same format as ``targets``.
            warm_start: continue from the current weights instead of re-initialising
                (refits with more data, cross-task fine-tuning). The input standardisation
                is kept. With the same metric names the new target statistics are folded
                into the output layer, so the function in original units is unchanged
                before the first step; with other names (same count) the heads are reused
                as they are, in standardised units.

        Returns:
            ``self``.
        """
        self._validate_params()
        if (val_codes is None) != (val_targets is None):
            raise ValueError("pass both val_codes and val_targets, or neither")
        x_np = self._codes_array(codes, "codes")
        n, d = x_np.shape
        if n < 2:
            raise ValueError(f"fit needs at least 2 codes, got {n}")
        names_arg = self.metric_names if self.metric_names is not None else None
        y_np, names = _targets_to_array(targets, n, names_arg)
        heads, head_of_metric = self._resolve_heads(names)
        main = self.main_metric if self.main_metric is not None else names[0]
        if main not in names:
            raise ValueError(f"main_metric {main!r} is not among the metrics {names}")
        if val_codes is not None:
            xv_np = self._codes_array(val_codes, "val_codes")
            if xv_np.shape[1] != d:
                raise InvalidCodeError(
                    f"expected val_codes of shape (n_val, {d}) like codes; got {xv_np.shape}"
                )
            yv_np, _ = _targets_to_array(val_targets, len(xv_np), names, name="val_targets")

        seed = int(self.seed) if self.seed is not None else _fresh_seed()
        gen = torch.Generator().manual_seed(seed)

        warm = warm_start and self.is_fitted
        if warm:
            module = self._warm_module(d, names, head_of_metric, y_np)
        else:
            module = _EnsembleMLP(
                d,
                head_of_metric,
                n_members=int(self.n_members),
                hidden=int(self.hidden),
                head_hidden=int(self.head_hidden),
                dropout=float(self.dropout),
                activation=self.activation,
            )
            module.reset_parameters(gen)
            x_std = x_np.std(0)
            module.input_mean.copy_(torch.from_numpy(x_np.mean(0)))
            module.input_std.copy_(torch.from_numpy(np.where(x_std > 1e-12, x_std, 1.0)))
            self._set_target_stats(module, y_np)

        t0 = time.perf_counter()
        with _torch_threads(self.n_threads):
            history, best_epoch = self._train(
                module,
                x_np,
                y_np,
                (xv_np, yv_np) if val_codes is not None else None,
                names.index(main),
                gen,
            )
        module.eval()
        module._frozen.clear()
        self.module_ = module
        self.metric_names_ = names
        self.main_metric_ = main
        self.heads_ = heads
        self.n_features_in_ = d
        self.seed_ = seed
        self.history_ = {"train_loss": history.train_loss, "val_mae": history.val_mae}
        self.best_epoch_ = best_epoch
        self.fit_time_ = time.perf_counter() - t0
        return self

    @staticmethod
    def _codes_array(codes: Any, name: str) -> np.ndarray:
        if isinstance(codes, Tensor):
            codes = codes.detach().cpu().numpy()
        arr = np.asarray(codes)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise InvalidCodeError(f"{name} must be a numeric n x d array; got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise InvalidCodeError(f"expected {name} of shape (n, d); got {arr.shape}")
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise InvalidCodeError(f"{name} contains NaN or inf")
        return arr

    def _resolve_heads(self, names: list[str]) -> tuple[list[list[str]], list[int]]:
        if self.heads is None:
            return [[n] for n in names], list(range(len(names)))
        heads = [list(g) for g in self.heads]
        flat = [n for g in heads for n in g]
        if (
            sorted(flat) != sorted(names)
            or len(flat) != len(set(flat))
            or any(not g for g in heads)
        ):
            raise ValueError(
                f"heads must partition the metrics {names} into non-empty groups; got {heads}"
            )
        head_of = {n: i for i, g in enumerate(heads) for n in g}
        return heads, [head_of[n] for n in names]

    @staticmethod
    def _set_target_stats(module: _EnsembleMLP, y: np.ndarray) -> None:
        std = y.std(0)
        module.target_mean.copy_(torch.from_numpy(y.mean(0)))
        module.target_std.copy_(torch.from_numpy(np.where(std > 1e-12, std, 1.0)))

    def _warm_module(
        self, d: int, names: list[str], head_of_metric: list[int], y: np.ndarray
    ) -> _EnsembleMLP:
        module = copy.deepcopy(self._check_fitted("fit(warm_start=True)"))
        if d != self.n_features_in_:
            raise ValueError(
                f"warm_start needs codes with d = {self.n_features_in_} like the first fit; got {d}"
            )
        if (
            len(names) != len(self.metric_names_)
            or head_of_metric != module.head_of_metric.tolist()
        ):
            raise ValueError(
                f"warm_start needs the same number of metrics and heads as the fitted model "
                f"({self.metric_names_}, heads {self.heads_}); got {names}"
            )
        if module.n_members != int(self.n_members):
            raise ValueError(
                f"warm_start cannot change n_members ({module.n_members} -> {self.n_members})"
            )
        module.dropout = float(self.dropout)
        if names == self.metric_names_:
            old_mu, old_sd = module.target_mean.clone(), module.target_std.clone()
            self._set_target_stats(module, y)
            scale = old_sd / module.target_std  # m
            shift = (old_mu - module.target_mean) / module.target_std
            with torch.no_grad():
                module.w3.mul_(scale.view(1, -1, 1))
                module.b3.mul_(scale.view(1, -1)).add_(shift.view(1, -1))
        else:
            self._set_target_stats(module, y)
        return module

    def _train(
        self,
        module: _EnsembleMLP,
        x_np: np.ndarray,
        y_np: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None,
        main_idx: int,
        gen: torch.Generator,
    ) -> tuple[_History, list[int] | None]:
        x = (torch.from_numpy(x_np).float() - module.input_mean) / module.input_std  # n x d
        y = (torch.from_numpy(y_np).float() - module.target_mean) / module.target_std  # n x m
        n = x.shape[0]
        e = module.n_members
        bs = min(int(self.batch_size), n)
        steps_per_epoch = -(-n // bs)
        total = steps_per_epoch * int(self.epochs)
        opt = _adam(module, float(self.lr), float(self.weight_decay))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=float(self.lr),
            total_steps=total,
            pct_start=float(self.pct_start),
            div_factor=float(self.div_factor),
            final_div_factor=float(self.final_div_factor),
        )
        loss_fn = {"smooth_l1": F.smooth_l1_loss, "mse": F.mse_loss, "l1": F.l1_loss}[self.loss]
        history = _History()
        best_epoch: list[int] | None = None
        if val is not None:
            xv = (torch.from_numpy(val[0]).float() - module.input_mean) / module.input_std
            yv = torch.from_numpy(val[1]).float()  # original units
            best_mae = torch.full((e,), float("inf"))
            best_state = {k: v.detach().clone() for k, v in module.named_parameters()}
            best_epoch = [-1] * e
        module.train()
        for epoch in range(int(self.epochs)):
            perm = torch.rand(e, n, generator=gen).argsort(dim=1)  # E x n
            xs, ys = x[perm], y[perm]  # E x n x d, E x n x m
            epoch_loss = torch.zeros(())
            for s in range(0, n, bs):
                out = module(xs[:, s : s + bs], gen)  # E x b x m
                # mean over batch and metrics per member, summed over members
                loss = loss_fn(out, ys[:, s : s + bs], reduction="mean") * e
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss += loss.detach()
            history.train_loss.append(float(epoch_loss) / (steps_per_epoch * e))
            if val is not None:
                with torch.no_grad():
                    pred = module(xv) * module.target_std + module.target_mean  # E x nv x m
                    mae = (pred - yv).abs().mean(1)  # E x m
                history.val_mae.append(mae.mean(0).tolist())
                improved = mae[:, main_idx] < best_mae
                if improved.any():
                    best_mae = torch.where(improved, mae[:, main_idx], best_mae)
                    for k, p in module.named_parameters():
                        mask = improved.view(-1, *([1] * (p.ndim - 1)))
                        best_state[k] = torch.where(mask, p.detach(), best_state[k])
                    for i in torch.nonzero(improved).flatten().tolist():
                        best_epoch[i] = epoch  # type: ignore[index]
            if self.verbose and (epoch % 20 == 0 or epoch == self.epochs - 1):
                msg = f"epoch {epoch:4d}  train loss {history.train_loss[-1]:.5f}"
                if history.val_mae:
                    msg += f"  val MAE {history.val_mae[-1][main_idx]:.4f}"
                print(msg)
        if val is not None:
            with torch.no_grad():
                for k, p in module.named_parameters():
                    p.copy_(best_state[k])
        return history, best_epoch

    # -- predict ------------------------------------------------------------------------
    def standardize(self, codes: Tensor) -> Tensor:
        """Codes ``... x d`` -> standardised codes ``... x d`` (differentiable)."""
        m = self._check_fitted("standardize")
        return (codes - m.input_mean) / m.input_std

    def unstandardize(self, z: Tensor) -> Tensor:
        """Standardised codes ``... x d`` -> codes ``... x d`` (differentiable)."""
        m = self._check_fitted("unstandardize")
        return z * m.input_std + m.input_mean

    def forward_standardized(
        self, z: Tensor, *, members: bool = False, outputs: Sequence[int] | None = None
    ) -> Tensor:
        """Forward on standardised codes, in evaluation mode (no dropout), differentiable
        with respect to ``z`` (the weights are constants here; train through ``fit``).

        Args:
            z: standardised codes, ``batch_shape x d`` (float32).
            members: return every member's output instead of the ensemble mean.
            outputs: metric indices (``metric_index``) to compute, ``m'`` of them; only
                their heads run (propagation needs one or two of ``m`` outputs).

        Returns:
            standardised predictions, ``batch_shape x m`` (``batch_shape x m'`` with
            ``outputs``; ``n_members x ...`` with ``members=True``); multiply by
            ``target_std_`` and add ``target_mean_`` (of those outputs) for original units.
        """
        module = self._check_fitted("forward_standardized")
        if z.shape[-1] != self.n_features_in_:
            raise InvalidCodeError(
                f"expected standardised codes of shape (..., {self.n_features_in_}); "
                f"got {tuple(z.shape)}"
            )
        batch = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        if members:
            out = module(flat, outputs=outputs)  # E x N x m
            return out.reshape(module.n_members, *batch, out.shape[-1])
        out = module.frozen_forward(outputs)(flat)  # N x m
        return out.reshape(*batch, out.shape[-1])

    def input_gradient_fn(
        self, outputs: Sequence[int], weights: Sequence[float]
    ) -> Callable[[Tensor], Tensor]:
        """``g(z) = d/dz sum_j weights_j * forward_standardized(z)[..., outputs[j]]``.

        The gradient propagation needs, written out by hand (no autograd graph): a few
        matrix products per call. Evaluation mode, ensemble mean, weights as constants.

        Args:
            outputs: metric indices (``metric_index``), ``m'`` of them.
            weights: one coefficient per output.

        Returns:
            ``g``: ``N x d`` standardised codes (float32) -> ``N x d``.
        """
        module = self._check_fitted("input_gradient_fn")
        if len(outputs) != len(weights):
            raise ValueError(
                f"input_gradient_fn needs one weight per output; got {len(outputs)} outputs "
                f"and {len(weights)} weights"
            )
        return module.frozen_input_gradient(outputs, weights)

    def predict(self, codes: Any, *, return_std: bool = False, as_dict: bool = False) -> Any:
        """Predicted metrics in original units.

        Args:
            codes: ``d`` or ``n x d``.
            return_std: also return the ensemble's standard deviation (zeros for one member).
            as_dict: return ``{metric: array}`` instead of a matrix.

        Returns:
            ``n x m`` float64 array (``m`` for a single code), columns in ``metric_names_``
            order; ``(mean, std)`` with ``return_std``; dicts of ``n`` (or scalar) arrays with
            ``as_dict``.
        """
        module = self._check_fitted("predict")
        x, single = as_code_batch(codes, self.n_features_in_)
        with _torch_threads(self.n_threads), torch.no_grad():
            out = module(self.standardize(x)) * module.target_std + module.target_mean  # E x n x m
            mean = out.mean(0)
            std = out.std(0, correction=1) if out.shape[0] > 1 else torch.zeros_like(mean)
        mean_np, std_np = mean.double().numpy(), std.double().numpy()
        if single:
            mean_np, std_np = mean_np[0], std_np[0]

        def fmt(a: np.ndarray) -> Any:
            if as_dict:
                return {k: a[..., j] for j, k in enumerate(self.metric_names_)}
            return a

        return (fmt(mean_np), fmt(std_np)) if return_std else fmt(mean_np)

    def score(self, codes: Any, targets: Mapping[str, Any] | Any) -> PredictorScore:
        """MAE per metric (original units) and rank correlations of the main metric.

        ``targets`` must hold every metric the predictor was fitted on (same format as
        ``fit``; extra dict keys are ignored).
        """
        from scipy import stats

        self._check_fitted("score")
        x, _ = as_code_batch(codes, self.n_features_in_)
        y, _ = _targets_to_array(targets, x.shape[0], self.metric_names_)
        pred = np.atleast_2d(self.predict(x))
        mae = {
            k: float(np.abs(pred[:, j] - y[:, j]).mean()) for j, k in enumerate(self.metric_names_)
        }
        j = self.metric_index(self.main_metric_)
        tau = float(stats.kendalltau(pred[:, j], y[:, j]).statistic)
        rho = float(stats.spearmanr(pred[:, j], y[:, j]).statistic)
        return PredictorScore(
            mae=mae, metric=self.main_metric_, kendall_tau=tau, spearman_rho=rho, n=len(y)
        )

    # -- save / load ----------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        params = self.get_params()
        for k in ("metric_names", "heads"):
            if params[k] is not None:
                params[k] = json.loads(json.dumps(params[k]))
        return {
            "params": params,
            "metric_names_": self.metric_names_,
            "main_metric_": self.main_metric_,
            "heads_": self.heads_,
            "n_features_in_": self.n_features_in_,
            "seed_": self.seed_,
            "best_epoch_": self.best_epoch_,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and buffers as safetensors with the JSON config in its header.

        The file holds no pickled objects; :meth:`load` never executes code. A SHA-256 of
        the config and the tensors is stored beside them, so corruption of either is
        detected (it is a checksum, not a signature: it does not authenticate the file).

        Returns:
            the path written (``.safetensors`` is appended when it has no suffix).
        """
        from safetensors.torch import save as st_save

        module = self._check_fitted("save")
        out = Path(path)
        if not out.suffix:
            out = out.with_suffix(".safetensors")
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        config = json.dumps(self._config(), sort_keys=True)
        meta = {
            "format": _FORMAT,
            "format_version": str(_FORMAT_VERSION),
            "config": config,
            "sha256": _digest(config, tensors),
        }
        blob = st_save(tensors, metadata=meta)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NeuralPredictor:
        """Read a checkpoint written by :meth:`save`.

        Raises:
            CheckpointError: unreadable file, unknown format, config or tensors that do not
                match (names, shapes, dtypes), non-finite values or a checksum mismatch.
            FileNotFoundError: no such file.
        """
        from safetensors import safe_open
        from safetensors.torch import load as st_load

        p = Path(path)
        blob = p.read_bytes()
        try:
            tensors = st_load(blob)
            with safe_open(str(p), framework="pt") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:
            raise CheckpointError(f"{p} is not a readable safetensors checkpoint: {exc}") from None
        if meta.get("format") != _FORMAT:
            raise CheckpointError(
                f"{p} is not a NeuralPredictor checkpoint (format {meta.get('format')!r})"
            )
        if meta.get("format_version") != str(_FORMAT_VERSION):
            raise CheckpointError(
                f"{p} has checkpoint format version {meta.get('format_version')!r}; "
                f"this ncp_hpo reads version {_FORMAT_VERSION}"
            )
        if meta.get("sha256") != _digest(meta.get("config", ""), tensors):
            raise CheckpointError(
                f"{p}: tensor checksum mismatch; the file is corrupt or was modified"
            )
        try:
            cfg = json.loads(meta["config"])
            params = cfg["params"]
            if not isinstance(params, dict) or set(params) != set(cls._param_names()):
                raise ValueError(f"parameters {sorted(params)} do not match NeuralPredictor's")
            self = cls(**params)
            self._validate_params()
            names = [str(n) for n in cfg["metric_names_"]]
            heads_ = [[str(n) for n in g] for g in cfg["heads_"]]
            d = int(cfg["n_features_in_"])
            main = str(cfg["main_metric_"])
            if main not in names:
                raise ValueError(f"main metric {main!r} not in {names}")
            head_of = {n: i for i, g in enumerate(heads_) for n in g}
            if sorted(head_of) != sorted(names):
                raise ValueError(f"heads {heads_} do not partition metrics {names}")
            module = _EnsembleMLP(
                d,
                [head_of[n] for n in names],
                n_members=int(self.n_members),
                hidden=int(self.hidden),
                head_hidden=int(self.head_hidden),
                dropout=float(self.dropout),
                activation=self.activation,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{p} has an invalid config: {exc}") from None
        expected = module.state_dict()
        if set(tensors) != set(expected):
            raise CheckpointError(
                f"{p}: tensors {sorted(tensors)} do not match the model's {sorted(expected)}"
            )
        for k, ref in expected.items():
            t = tensors[k]
            if t.shape != ref.shape or t.dtype != ref.dtype:
                raise CheckpointError(
                    f"{p}: tensor {k!r} has shape {tuple(t.shape)} and dtype {t.dtype}; "
                    f"expected {tuple(ref.shape)} and {ref.dtype}"
                )
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise CheckpointError(f"{p}: tensor {k!r} holds non-finite values")
        if tensors["head_of_metric"].tolist() != module.head_of_metric.tolist():
            raise CheckpointError(f"{p}: head_of_metric does not match the config's heads")
        if (tensors["input_std"] <= 0).any() or (tensors["target_std"] <= 0).any():
            raise CheckpointError(f"{p}: standardisation std must be positive")
        module.load_state_dict(tensors)
        module.eval()
        module._frozen.clear()
        self.module_ = module
        self.metric_names_ = names
        self.main_metric_ = main
        self.heads_ = heads_
        self.n_features_in_ = d
        self.seed_ = cfg.get("seed_")
        self.best_epoch_ = cfg.get("best_epoch_")
        self.history_ = {"train_loss": [], "val_mae": []}
        return self


def _fresh_seed() -> int:
    """A seed from OS entropy, for ``seed=None`` (recorded in ``seed_``)."""
    return int(np.random.default_rng().integers(0, 2**63 - 1))


def _digest(config: str, tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 of the JSON config and every tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256(config.encode())
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# Convenience for benchmark settings
# ---------------------------------------------------------------------------------------
def fit_setting_predictor(
    table: Any,
    *,
    n_train: int = 2000,
    n_val: int = 500,
    seed: int = 0,
    metrics: Sequence[str] | Literal["all"] | None = None,
    **predictor_params: Any,
) -> tuple[NeuralPredictor, dict[str, Any]]:
    """Fit the paper's predictor on a benchmark table (2,000 train / 500 validation codes).

    Args:
        table: a benchmark table (``ncp_hpo.benchmarks.load_benchmark``) with ``.codes``
            (``N x d``), ``.metrics`` (name -> ``N``) and ``.main_metric``.
        n_train, n_val: split sizes; the rest of the table is the test split.
        seed: seeds both the split (``table.split(n_train, n_val, seed)``, a numpy
            permutation) and the predictor.
        metrics: metrics to learn. Default: the main metric and ``flops`` (the learned
            FLOPs head of the paper's propagation); ``"all"``: every metric of the table.
        **predictor_params: passed to :class:`NeuralPredictor`.

    Returns:
        ``(predictor, info)`` with ``info`` = ``{"train", "val", "test"}`` index arrays and
        ``"val_score"`` / ``"test_score"`` (:class:`PredictorScore`, ``None`` if empty).
    """
    codes = np.asarray(table.codes)
    all_metrics: Mapping[str, Any] = table.metrics
    main = table.main_metric
    if metrics is None:
        names = [main] + (["flops"] if "flops" in all_metrics and main != "flops" else [])
    elif metrics == "all":
        names = [main] + [k for k in all_metrics if k != main]
    else:
        names = list(metrics)
    n = len(codes)
    if n_train + n_val > n:
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the table's {n} codes")
    split = getattr(table, "split", None)
    if callable(split):  # BenchmarkTable.split: the project's one definition of the split
        tr, va, te = split(n_train, n_val, seed)
    else:
        perm = np.random.default_rng(seed).permutation(n)
        tr, va, te = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    y = {k: np.asarray(all_metrics[k], dtype=np.float64) for k in names}
    predictor_params.setdefault("seed", seed)
    predictor_params.setdefault("main_metric", main)
    p = NeuralPredictor(**predictor_params)
    p.fit(
        codes[tr],
        {k: v[tr] for k, v in y.items()},
        val_codes=codes[va] if n_val else None,
        val_targets={k: v[va] for k, v in y.items()} if n_val else None,
    )
    info: dict[str, Any] = {"train": tr, "val": va, "test": te}
    info["val_score"] = p.score(codes[va], {k: v[va] for k, v in y.items()}) if n_val else None
    info["test_score"] = p.score(codes[te], {k: v[te] for k, v in y.items()}) if len(te) else None
    return p, info
