"""Shapes of the predictor's inputs: one code (``d``) or a batch (``n x d``), and targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncp_hpo.exceptions import InvalidCodeError

__all__ = ["as_code_batch", "codes_array", "fit_data", "targets_to_array"]


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


def targets_to_array(
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


def codes_array(codes: Any, name: str) -> np.ndarray:
    """Training codes (array-like or tensor, ``n x d``) -> ``n x d`` float64, checked."""
    if isinstance(codes, Tensor):
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidCodeError(f"{name} must be a numeric n x d array; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidCodeError(f"expected {name} of shape (n, d); got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidCodeError(f"{name} contains NaN or inf")
    return arr


def fit_data(
    codes: Any,
    targets: Any,
    val_codes: Any,
    val_targets: Any,
    metric_names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, list[str], tuple[np.ndarray, np.ndarray] | None]:
    """Checked ``n x d`` codes, ``n x m`` targets, metric names and validation pair."""
    if (val_codes is None) != (val_targets is None):
        raise ValueError("pass both val_codes and val_targets, or neither")
    x_np = codes_array(codes, "codes")
    n, d = x_np.shape
    if n < 2:
        raise ValueError(f"fit needs at least 2 codes, got {n}")
    y_np, names = targets_to_array(targets, n, metric_names)
    if val_codes is None:
        return x_np, y_np, names, None
    xv_np = codes_array(val_codes, "val_codes")
    if xv_np.shape[1] != d:
        raise InvalidCodeError(
            f"expected val_codes of shape (n_val, {d}) like codes; got {xv_np.shape}"
        )
    yv_np, _ = targets_to_array(val_targets, len(xv_np), names, name="val_targets")
    return x_np, y_np, names, (xv_np, yv_np)


def resolve_heads(
    heads: Sequence[Sequence[str]] | None, names: list[str]
) -> tuple[list[list[str]], list[int]]:
    """The metric groups (one head each) and each metric's head index.

    ``None`` gives one head per metric; otherwise ``heads`` must partition ``names``.

    Raises:
        ValueError: ``heads`` is not a partition of ``names`` into non-empty groups.
    """
    if heads is None:
        return [[n] for n in names], list(range(len(names)))
    groups = [list(g) for g in heads]
    flat = [n for g in groups for n in g]
    if sorted(flat) != sorted(names) or len(flat) != len(set(flat)) or any(not g for g in groups):
        raise ValueError(
            f"heads must partition the metrics {names} into non-empty groups; got {groups}"
        )
    head_of = {n: i for i, g in enumerate(groups) for n in g}
    return groups, [head_of[n] for n in names]
