"""The public API the README documents is importable, and every package's ``__all__`` resolves.

The README's "Public API" section lists, under one ``### `module` `` heading per group, bullets
whose leading backticked names (before the first ``: ``) are the public names of that module.
Each must import from its module and be in its ``__all__`` (the rule the section states:
anything else is private). Every ``__all__`` of every public package and module must name
attributes that exist, and the packages whose modules were made private keep only
underscore-named submodules.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import ncp_hpo

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PRIVATE_MODULE_PACKAGES = (
    "experiments",
    "experiments/compare",
    "experiments/paper",
    "runtime",
    "search",
)


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _public_api() -> dict[tuple[str, ...], list[str]]:
    """``{(module, ...): [name, ...]}`` from the README's Public API section."""
    groups: dict[tuple[str, ...], list[str]] = {}
    modules: tuple[str, ...] = ()
    for line in _section(README.read_text(encoding="utf-8"), "Public API").splitlines():
        if line.startswith("### "):
            modules = tuple(re.findall(r"`([\w.]+)`", line))
            groups.setdefault(modules, [])
        elif line.startswith("- ") and modules:
            head = line[2:].split(": ", 1)[0]
            groups[modules].extend(re.findall(r"`(\w+)`", head))
    return groups


def _public_modules() -> list[str]:
    """Every package and module of ncp_hpo without an underscore in its dotted name."""
    names = ["ncp_hpo"]
    for info in pkgutil.walk_packages(ncp_hpo.__path__, "ncp_hpo."):
        parts = info.name.split(".")[1:]
        if not any(p.startswith("_") for p in parts):
            names.append(info.name)
    return names


def test_the_section_lists_a_few_dozen_names_per_documented_package() -> None:
    groups = _public_api()
    documented = {m for modules in groups for m in modules}
    assert {
        "ncp_hpo",
        "ncp_hpo.spaces",
        "ncp_hpo.samplers",
        "ncp_hpo.search",
        "ncp_hpo.benchmarks",
        "ncp_hpo.trainers",
        "ncp_hpo.tracking",
        "ncp_hpo.runtime",
        "ncp_hpo.experiments",
        "ncp_hpo.exceptions",
    } <= documented
    assert all(groups.values()), "a group without names"
    total = sum(len(v) for v in groups.values())
    assert 30 <= total <= 150, total


@pytest.mark.parametrize(
    ("modules", "name"),
    [(m, n) for m, names in _public_api().items() for n in names],
    ids=lambda v: v if isinstance(v, str) else "|".join(v),
)
def test_every_documented_name_imports_and_is_public(modules: tuple[str, ...], name: str) -> None:
    homes = [importlib.import_module(m) for m in modules]
    found = [mod for mod in homes if hasattr(mod, name)]
    assert found, f"{name} is listed under {' / '.join(modules)} but none of them has it"
    for mod in found:
        public = getattr(mod, "__all__", None)
        if public is not None:
            assert name in public, f"{mod.__name__}.{name} is documented but not in __all__"
        assert not name.startswith("_") or name == "__version__"


@pytest.mark.parametrize("module", _public_modules())
def test_every_all_name_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", [])
    assert len(set(names)) == len(names), f"{module}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names missing attributes: {missing}"


@pytest.mark.parametrize("package", PRIVATE_MODULE_PACKAGES)
def test_internal_modules_are_private_by_name(package: str) -> None:
    folder = ROOT / "ncp_hpo" / package
    public = sorted(
        p.name
        for p in folder.glob("*.py")
        if p.name != "__init__.py" and not p.name.startswith("_")
    )
    assert not public, f"ncp_hpo/{package} has public module names {public}; name them _*.py"
