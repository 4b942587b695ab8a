"""Every third-party module that ``ncp_hpo`` imports is declared in ``pyproject.toml``.

A fresh install gets only what the project declares; a module pulled in by chance (installed
by hand, or only as a dependency of a dependency) works here and fails for a user. This test
reads every ``import`` in the package (also the ones inside functions), maps each top-level
module to the distributions that provide it, and checks that one of them is a declared
requirement (``dependencies`` or an extra).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ncp_hpo"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"unparsable requirement {spec!r}"
    return _canonical(match.group(1))


def declared() -> dict[str, str]:
    """Declared distribution (canonical name) -> where: 'dependencies' or 'extra NAME'."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {_requirement_name(s): "dependencies" for s in project["dependencies"]}
    for extra, specs in project.get("optional-dependencies", {}).items():
        for s in specs:
            out.setdefault(_requirement_name(s), f"extra {extra}")
    return out


def imported_modules() -> dict[str, str]:
    """Top-level third-party module -> the first file (relative) that imports it."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "ncp_hpo" or top in sys.stdlib_module_names:
                    continue
                found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_the_scan_sees_the_core_imports() -> None:
    mods = imported_modules()
    assert {"torch", "optuna", "numpy", "safetensors"} <= set(mods)
    assert "os" not in mods and "ncp_hpo" not in mods


def test_every_third_party_import_is_declared() -> None:
    provided = md.packages_distributions()
    decl = declared()
    missing = []
    for module, where in sorted(imported_modules().items()):
        dists = {_canonical(d) for d in provided.get(module, [])}
        if not dists:
            # An optional extra need not be installed (the README's test command installs
            # only `.[dev]`): a module named like a declared extra's distribution is fine.
            if decl.get(_canonical(module), "").startswith("extra "):
                continue
            missing.append(f"{module} (imported in {where}) is not installed here: declare it")
        elif not dists & set(decl):
            missing.append(
                f"{module} (imported in {where}; distribution {', '.join(sorted(dists))}) "
                "is not declared in pyproject.toml"
            )
    assert not missing, "\n".join(missing)


def test_optional_extras_name_their_extra_in_errors() -> None:
    """An optional dependency's error message tells the user which extra to install."""
    decl = declared()
    extras = {d: w.split(" ", 1)[1] for d, w in decl.items() if w.startswith("extra ")}
    assert extras.get("psycopg") == "postgres"
    assert extras.get("cmaes") == "cmaes"
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    for extra in ("postgres", "cmaes"):
        assert f"ncp-hpo[{extra}]" in sources, f"no error message names the '{extra}' extra"
