"""Checksum-first, allow-listed unpickling of the upstream benchmark files.

Unpickling runs whatever callables a pickle names, so untrusted bytes can execute code.
:func:`safe_load_pickle` therefore (1) checks the bytes' SHA-256 against the pinned value
*before* anything is unpickled and (2) unpickles with :class:`RestrictedUnpickler`, whose
``find_class`` resolves only the handful of globals the benchmark files use: numpy array
reconstruction (``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``). Plain containers, strings and numbers need no global
at all. Any other global, and any persistent id, raises
:class:`~ncp_hpo.exceptions.UnsafePickleError` before it is called.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ncp_hpo.exceptions import ChecksumError, DataError, UnsafePickleError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "safe_load_pickle", "sha256_hex"]


def _reconstruct() -> Any:
    # numpy >= 2 moved the module to numpy._core; numpy.core still exists as a shim there
    # (and warns on access), so resolve the function without touching ``numpy.core``.
    try:
        from numpy._core.multiarray import _reconstruct as fn  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as fn  # type: ignore[no-redef]
    return fn


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
"""``(module, name) -> object``: the only globals a benchmark pickle may reference."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and refuses everything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}': not in the allow-list "
                "(numpy array reconstruction only); the file may be malicious"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to unpickle a persistent id: not in the allow-list")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check_object_arrays(obj: Any, source: str) -> None:
    """Refuse object-dtype arrays (they would hide arbitrary objects behind an allowed global)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise UnsafePickleError(f"{source}: object-dtype numpy array refused")
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def safe_load_pickle(
    source: str | Path | bytes,
    *,
    sha256: str | None,
    allow_unverified: bool = False,
    name: str | None = None,
) -> Any:
    """Verify then unpickle ``source`` (a path or the raw bytes) with the allow-list.

    Args:
        source: file path, or the file's bytes.
        sha256: the pinned hex digest; checked before unpickling.
        allow_unverified: must be ``True`` to load when ``sha256`` is ``None``.
        name: how to name the file in messages (default: the path).

    Raises:
        ChecksumError: the digest differs (names the file, expected and actual digest).
        UnsafePickleError: the pickle references a global outside the allow-list.
        DataError: no checksum and no opt-in, or the bytes are not a valid pickle.
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        label = name or "<bytes>"
    else:
        path = Path(source)
        label = name or str(path)
        data = path.read_bytes()
    actual = sha256_hex(data)
    if sha256 is None:
        if not allow_unverified:
            raise DataError(
                f"{label} has no pinned checksum; refusing to unpickle it without "
                "allow_unverified=True (--allow-unverified)"
            )
    elif actual != sha256.lower():
        raise ChecksumError(
            f"checksum mismatch for {label}: expected sha256 {sha256.lower()}, got {actual}"
        )
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or garbled bytes
        raise DataError(f"{label} is not a readable pickle: {type(exc).__name__}: {exc}") from None
    _check_object_arrays(obj, label)
    return obj
