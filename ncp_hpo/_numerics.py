"""Reproducible numerics: the one home for what makes a result depend only on the code, the
seeds and the declared versions.

Predictor-based samplers take many discrete decisions (which code to propose) from floating
point scores, so a last-bit difference in a matrix product can change a whole study. Three
things of the machine change those bits, and this module pins each of them:

* **CPU math paths.** Three libraries inside torch pick their kernels by CPU: ATen its vector
  kernels (``AVX512`` or ``AVX2``), MKL its BLAS code path (by vendor and ISA), and oneDNN its
  JIT convolution kernels (``jit:avx512_core`` or ``jit:avx2``: one epoch of the same network
  on the same data ends at another top-1 under each). On x86-64 with AVX2,
  :func:`pin_cpu_math` sets ``ATEN_CPU_CAPABILITY=avx2``, ``MKL_CBWR=AVX2`` (MKL's
  conditional numerical reproducibility) and ``ONEDNN_MAX_CPU_ISA=AVX2`` so every such CPU,
  with AVX-512 or without, runs the same kernels. They are read when torch loads or first
  runs a kernel, so it must run before ``import torch``; the ``ncp-hpo`` command does it
  first thing. Values the user set are kept.
* **Thread counts.** A reduction split over N threads sums in another order.
  :func:`deterministic_threads` runs a block with one torch thread and one BLAS/OpenMP thread.
* **State from the machine or a cache.** Studies never read a cache; the report says which
  versions and math settings produced it (:func:`environment`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

PINNED_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
"""Environment variables :func:`pin_cpu_math` sets (unless already set) on x86-64 + AVX2."""

STUDY_THREADS = 1
"""Threads (torch intra-op, BLAS, OpenMP) inside :func:`deterministic_threads`."""

# distributions named in every report's environment line, in this order
_REPORTED = (
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "optuna",
    "ax-platform",
    "botorch",
    "mlflow",
)


def _cpu_has_avx2() -> bool:
    """True on x86-64 Linux CPUs that list ``avx2`` in /proc/cpuinfo."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return " avx2" in line
    except OSError:
        return False
    return False


def pin_cpu_math() -> dict[str, str]:
    """Pin the CPU code paths of ATen, MKL and oneDNN (see the module docstring).

    Returns:
        the variables this call set (empty when the CPU has no AVX2, the user set them
        already, or torch was already imported, where setting them would be a lie).
    """
    if "torch" in sys.modules or not _cpu_has_avx2():
        return {}
    done = {}
    for key, value in PINNED_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            done[key] = value
    return done


@contextlib.contextmanager
def deterministic_threads(n: int = STUDY_THREADS) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` BLAS/OpenMP threads, then
    restore the previous counts."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


LOCK_FILE = "requirements/lock.txt"
"""The locked test and benchmark environment, relative to a checkout's root."""


def lock_status(root: Path | None = None) -> str:
    """Whether the installed packages are those of the checkout's lock file.

    Returns:
        ``"requirements/lock.txt"`` when every locked package that is installed has its locked
        version; ``"differs from requirements/lock.txt: optuna 5.1.0 (locked 5.0.0), ..."``
        otherwise; ``"no lock file"`` outside a checkout (an installed wheel).
    """
    root = root if root is not None else Path(__file__).resolve().parents[1]
    try:
        text = (root / LOCK_FILE).read_text(encoding="utf-8")
    except OSError:
        return "no lock file"
    differs = []
    for line in text.splitlines():
        name, sep, locked = line.split("#", 1)[0].strip().partition("==")
        if not sep:
            continue
        installed = _version(name)
        if installed is not None and installed.split("+", 1)[0] != locked.strip():
            differs.append(f"{name} {installed} (locked {locked.strip()})")
    return f"differs from {LOCK_FILE}: {', '.join(differs)}" if differs else LOCK_FILE


def environment() -> dict[str, str]:
    """What produced a result: Python, ncp-hpo and library versions, the CPU math settings
    and thread counts. Keys are short names (``torch``, ``sklearn``, ``ax``, ...)."""
    from ncp_hpo import __version__

    env = {"python": platform.python_version(), "ncp_hpo": __version__}
    short = {"scikit-learn": "sklearn", "ax-platform": "ax"}
    for dist in _REPORTED:
        version = _version(dist)
        if version is not None:
            env[short.get(dist, dist)] = version
    env["machine"] = platform.machine()
    env["study threads"] = str(STUDY_THREADS)
    import torch  # loaded by now in any run that reports (after pin_cpu_math)

    env["torch cpu capability"] = torch.backends.cpu.get_cpu_capability()
    env["MKL_CBWR"] = os.environ.get("MKL_CBWR", "unset")
    env["ONEDNN_MAX_CPU_ISA"] = os.environ.get("ONEDNN_MAX_CPU_ISA", "unset")
    env["cpus"] = str(os.cpu_count())
    env["lock"] = lock_status()
    return env


def environment_line() -> str:
    """:func:`environment` as one comma-separated line for a report header."""
    return ", ".join(f"{k} {v}" for k, v in environment().items())
