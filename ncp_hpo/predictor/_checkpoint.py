"""Predictor checkpoints: safetensors with the JSON config and a SHA-256 in the header.

The file holds no pickled objects, so reading one never executes code. The checksum covers
the config and every tensor; it detects corruption, it does not authenticate the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ncp_hpo.exceptions import CheckpointError

__all__ = ["check_tensors", "digest", "read_checkpoint", "write_checkpoint"]

FORMAT = "ncp_hpo.NeuralPredictor"
FORMAT_VERSION = 2  # 1: draft whose checksum covered the tensors only


def digest(config: str, tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 of the JSON config and every tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256(config.encode())
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_checkpoint(
    path: str | os.PathLike[str], module: nn.Module, config: Mapping[str, Any]
) -> Path:
    """Write ``module``'s state dict and ``config`` atomically; returns the path written
    (``.safetensors`` appended when ``path`` has no suffix)."""
    from safetensors.torch import save as st_save

    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    text = json.dumps(config, sort_keys=True)
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": text,
        "sha256": digest(text, tensors),
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


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The config and tensors of a checkpoint, after checking format, version and checksum.

    Raises:
        CheckpointError: unreadable file, unknown format or version, checksum mismatch or a
            config that is not a JSON object.
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
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{p} is not a NeuralPredictor checkpoint (format {meta.get('format')!r})"
        )
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{p} has checkpoint format version {meta.get('format_version')!r}; "
            f"this ncp_hpo reads version {FORMAT_VERSION}"
        )
    if meta.get("sha256") != digest(meta.get("config", ""), tensors):
        raise CheckpointError(f"{p}: tensor checksum mismatch; the file is corrupt or was modified")
    try:
        cfg = json.loads(meta["config"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{p} has an invalid config: {exc}") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{p} has an invalid config: not a JSON object")
    return cfg, tensors


def check_tensors(p: Path, tensors: Mapping[str, Tensor], module: nn.Module) -> None:
    """Raise :class:`CheckpointError` unless ``tensors`` fit ``module``'s state dict (names,
    shapes, dtypes), are finite, and match its head layout and positive std buffers."""
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
    if tensors["head_of_metric"].tolist() != expected["head_of_metric"].tolist():
        raise CheckpointError(f"{p}: head_of_metric does not match the config's heads")
    if (tensors["input_std"] <= 0).any() or (tensors["target_std"] <= 0).any():
        raise CheckpointError(f"{p}: standardisation std must be positive")
