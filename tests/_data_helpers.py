"""Helpers of the benchmark-data and benchmark-script tests (tests/benchmarks, tests/scripts,
tests/cli/test_data.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"

MR_SETTINGS_LOCAL = ("cls-50-1000", "cls-50-100", "cls-10-1000", "seg", "seg-4x", "video")


def copy_raw(shared: Path, dest: Path, *names: str) -> Path:
    """Copy upstream ``<name>/trainval.pkl`` files from ``shared`` into ``dest``."""
    for name in names:
        (dest / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / name / "trainval.pkl", dest / name / "trainval.pkl")
    return dest


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (relative paths, sorted), hidden temporaries included."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def load_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as module ``name`` (registered in ``sys.modules``, so
    its dataclasses and process pools work; pop it again when done)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
