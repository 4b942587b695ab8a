"""The CPU math pins: every x86-64 CPU with AVX2 runs the same ATen, MKL and oneDNN kernels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ncp_hpo._numerics import PINNED_ENV, _cpu_has_avx2

needs_avx2 = pytest.mark.skipif(not _cpu_has_avx2(), reason="pins apply to x86-64 with AVX2")

_PROBE = """
import os
from ncp_hpo._numerics import pin_cpu_math
pin_cpu_math()
import torch
x = torch.randn(2, 8, 16, 16)
torch.nn.functional.conv2d(x, torch.randn(16, 8, 3, 3), padding=1)
print("capability", torch.backends.cpu.get_cpu_capability())
"""


def _probe(env: dict[str, str]) -> str:
    """Run a convolution in a fresh interpreter with oneDNN's verbose log on; its output."""
    clean = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**clean, "ONEDNN_VERBOSE": "1", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout


@needs_avx2
def test_pinned_process_runs_avx2_kernels_only() -> None:
    out = _probe({})
    assert "capability AVX2" in out
    conv_lines = [ln for ln in out.splitlines() if ln.startswith("onednn_verbose") and "conv" in ln]
    assert conv_lines, out  # torch ran the convolution in oneDNN
    assert all("avx512" not in ln for ln in conv_lines), conv_lines
    assert any("avx2" in ln for ln in conv_lines), conv_lines


@needs_avx2
def test_a_users_setting_is_kept() -> None:
    """A value the user set wins (the check can fail: it sees the ISA the user chose)."""
    out = _probe({"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"})
    assert "capability DEFAULT" in out
    conv_lines = [ln for ln in out.splitlines() if ln.startswith("onednn_verbose") and "conv" in ln]
    assert all("avx2" not in ln and "avx512" not in ln for ln in conv_lines), conv_lines


def test_lock_status_names_what_differs(tmp_path: Path) -> None:
    from importlib import metadata

    from ncp_hpo._numerics import LOCK_FILE, lock_status

    assert lock_status(tmp_path) == "no lock file"
    lock = tmp_path / LOCK_FILE
    lock.parent.mkdir(parents=True)
    numpy_version = metadata.version("numpy")
    lock.write_text(f"# header\nnumpy=={numpy_version}\nnot-installed-dist==1.0\n")
    assert lock_status(tmp_path) == LOCK_FILE
    lock.write_text("numpy==0.0.1  # pinned\n")
    assert lock_status(tmp_path) == (
        f"differs from {LOCK_FILE}: numpy {numpy_version} (locked 0.0.1)"
    )


def test_the_checkouts_lock_pins_the_record_versions() -> None:
    """The lock names the versions the records name (optuna 5.0.0, torch 2.13.0)."""
    from ncp_hpo._numerics import LOCK_FILE

    text = (Path(__file__).resolve().parents[1] / LOCK_FILE).read_text()
    pins = dict(ln.split("==") for ln in text.splitlines() if "==" in ln and not ln.startswith("#"))
    assert pins["optuna"] == "5.0.0"
    assert pins["torch"] == "2.13.0"
