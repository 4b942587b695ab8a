"""The zero-cost proxies: scores of an untrained network.

* :func:`synflow` (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al., ICLR
  2021): data-free. The network is copied to float64, every parameter replaced by its
  absolute value, an all-ones input ``1 x C x H x W`` is passed forward, the sum of the
  output is back-propagated, and the score is ``sum |theta * dR/dtheta|`` over the weights
  of the convolution and linear layers (biases and norm weights are not summed).
  Batch norm: Abdelfattah et al. score synflow on a copy of the network built *without*
  batch norm (their ``synflow`` measure; ``synflow_bn`` keeps it). We do the same: the
  builders are called with ``batch_norm=False`` (NB201) or the batch norms are replaced by
  identities (multi-resolution networks). With batch norm in training mode an all-ones
  input would normalise every channel to zero; in eval mode at initialisation it is the
  identity up to ``1/sqrt(1 + eps)``, so both readings agree up to that factor per layer.
* :func:`naswot` (Mellor et al., ICML 2021, "Neural Architecture Search without
  Training"): data-based. For a minibatch of ``B`` inputs, each ReLU's output is read as a
  binary code (``1`` where the unit is active); the kernel ``K_H[i, j]`` counts the units
  on which inputs ``i`` and ``j`` agree (``N_A - Hamming distance``, summed over all ReLUs),
  and the score is ``log |det K_H|`` (``slogdet``). Batch norm stays, in training mode (the
  published code runs the untrained network as built).

Both are deterministic for a fixed network: one torch thread, and
``torch.use_deterministic_algorithms`` within the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["naswot", "strip_batch_norm", "synflow"]


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """One torch thread and deterministic kernels within the block; restored afterwards."""
    threads = torch.get_num_threads()
    was = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


def strip_batch_norm(net: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm{1,2,3}d`` of ``net`` by ``nn.Identity`` in place; returns
    ``net`` (for networks whose builder has no ``batch_norm=False``)."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(net, name, nn.Identity())
        else:
            strip_batch_norm(child)
    return net


def _output_sum(out: object) -> Tensor:
    """Sum of every tensor in a network output (a tensor, or a tuple/list of them such as
    :class:`~ncp_hpo.models.DetectionOutput`); a scalar."""
    if isinstance(out, Tensor):
        return out.sum()
    if isinstance(out, tuple | list):
        return torch.stack([_output_sum(v) for v in out]).sum()
    raise TypeError(f"cannot sum a network output of type {type(out).__name__}")


def synflow(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Synflow score of ``net`` (modified in place: float64, absolute-valued parameters).

    Args:
        net: the untrained network, already without batch norm (see the module docstring).
        input_shape: one input without the batch dimension, e.g. ``(3, 16, 16)`` or
            ``(3, T, H, W)`` for clips.

    Returns:
        ``sum |theta * grad|`` over conv/linear weights; a non-negative float (unitless).
    """
    with _deterministic():
        net.double()
        net.train()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        net.zero_grad(set_to_none=True)
        x = torch.ones((1, *input_shape), dtype=torch.float64)
        _output_sum(net(x)).backward()
        total = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear) and m.weight.grad is not None:
                    total += (m.weight * m.weight.grad).abs().sum()
    return float(total)


def naswot(net: nn.Module, batch: Tensor) -> float:
    """NASWOT score ``log |det K_H|`` of ``net`` on a minibatch.

    Args:
        net: the untrained network (any module with ``nn.ReLU`` children).
        batch: inputs ``B x ...`` (``B`` >= 2; Mellor et al. use ``B = 128``).

    Returns:
        ``log |det K_H|`` with ``K_H`` the ``B x B`` activation-agreement kernel (float64);
        ``-inf`` when ``K_H`` is singular (e.g. two inputs with identical codes).
    """
    if batch.ndim < 2 or batch.shape[0] < 2:
        raise ValueError(
            f"naswot needs a batch of 2 or more inputs, got shape {tuple(batch.shape)}"
        )
    b = int(batch.shape[0])
    kernel = torch.zeros((b, b), dtype=torch.float64)

    def hook(_m: nn.Module, _inp: object, out: Tensor) -> None:
        codes = (out.detach().reshape(b, -1) > 0).to(torch.float64)
        # agreements = ones*ones + zeros*zeros = N_A - Hamming distance
        kernel.add_(codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T)

    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    with _deterministic():
        handles = [m.register_forward_hook(hook) for m in relus]
        try:
            with torch.no_grad():
                net(batch)
        finally:
            for h in handles:
                h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0.0 else float("-inf")
