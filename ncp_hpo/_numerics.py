"""Reproducible numerics: the one home for what makes a result depend only on the code, the
seeds and the declared versions.

Predictor-based samplers take many discrete decisions (which code to propose) from floating
point scores, so a last-bit difference in a matrix product can change a whole study. Three
things of the machine change those bits, and this module pins each of them:

* **CPU math paths.** PyTorch picks its vector kernels by CPU (``AVX512`` here, ``AVX2``
  elsewhere) and MKL picks its own code path by CPU vendor and ISA. On x86-64 with AVX2,
  :func:`pin_cpu_math` sets ``ATEN_CPU_CAPABILITY=avx2`` and ``MKL_CBWR=AVX2`` (MKL's
  conditional numerical reproducibility) so every such CPU runs the same kernels. Both are
  read when torch loads, so it must run before ``import torch``; the ``ncp-hpo`` command does
  it first thing. Values the user set are kept.
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

PINNED_ENV: dict[str, str] = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
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
    """Pin torch's and MKL's CPU code paths (see the module docstring).

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
    if "torch" in sys.modules:
        import torch

        env["torch cpu capability"] = torch.backends.cpu.get_cpu_capability()
    env["MKL_CBWR"] = os.environ.get("MKL_CBWR", "unset")
    env["cpus"] = str(os.cpu_count())
    return env


def environment_line() -> str:
    """:func:`environment` as one comma-separated line for a report header."""
    return ", ".join(f"{k} {v}" for k, v in environment().items())
