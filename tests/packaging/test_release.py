"""Release metadata agrees with itself, and install instructions name only what exists.

- The package version (``ncp_hpo.__version__``, which ``pyproject.toml`` reads) is the version
  of the CHANGELOG's top section, and that section says ``Unreleased`` unless the version is
  published (``PUBLISHED`` below); older sections are dated, in descending version order.
- No install instruction a user reads (README, the documentation site, the OptunaHub
  package) installs ncp-hpo from a package index at a version that is not published: while
  nothing is on PyPI, every instruction installs from a checkout (``pip install -e .``) or a
  git URL, and nothing links to a PyPI project page.

The sdist and the wheel themselves (``python -m build`` + ``twine check --strict``) are
checked by ``.ci/run`` and ``benchmarks/release_check.sh``, not here: a build takes seconds
and needs the package index for its isolated build environment.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import ncp_hpo

ROOT = Path(__file__).resolve().parents[2]

# Versions of ncp-hpo uploaded to PyPI. Add one here when it is uploaded (and date its
# CHANGELOG section); until then no instruction may install ncp-hpo from an index.
PUBLISHED: frozenset[str] = frozenset()

HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<when>.+?)\s*$", re.M)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def changelog_sections() -> list[tuple[str, str]]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return [(m["version"], m["when"]) for m in HEADING.finditer(text)]


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "ncp_hpo.__version__"
    assert str(Version(ncp_hpo.__version__)) == ncp_hpo.__version__, "a normalised version"


def test_installed_metadata_has_the_package_version() -> None:
    try:
        installed = md.version("ncp-hpo")
    except md.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        pytest.skip("ncp-hpo is not installed (pip install -e .)")
    assert installed == ncp_hpo.__version__, (
        f"installed metadata says {installed}, ncp_hpo.__version__ {ncp_hpo.__version__}: "
        "reinstall (pip install -e .)"
    )


def test_changelog_top_section_is_the_package_version() -> None:
    sections = changelog_sections()
    assert sections, "CHANGELOG.md has '## [VERSION] - DATE' sections"
    version, when = sections[0]
    assert version == ncp_hpo.__version__, (
        f"CHANGELOG's top section is {version}, the package is {ncp_hpo.__version__}"
    )
    if version in PUBLISHED:
        assert DATE.fullmatch(when), f"{version} is published: its section has a date"
    else:
        assert when == "Unreleased", (
            f"{version} is not published (PUBLISHED in this test): its section says "
            f"'Unreleased', not {when!r}"
        )


def test_changelog_older_sections_are_dated_and_descending() -> None:
    sections = changelog_sections()
    versions = [Version(v) for v, _ in sections]
    assert versions == sorted(versions, reverse=True), "newest first"
    assert len(set(versions)) == len(versions), "each version once"
    for version, when in sections[1:]:
        assert DATE.fullmatch(when), f"section {version}: {when!r} is not a date"


def instruction_files() -> list[Path]:
    """What a user reads to install ncp-hpo (the CHANGELOG is history, not instructions)."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    files += sorted((ROOT / "package").rglob("*.md")) + sorted((ROOT / "package").rglob("*.py"))
    files += sorted((ROOT / "examples").rglob("*.py"))
    return [f for f in files if f.is_file()]


PIP_INSTALL = re.compile(r"pip3? install\s+([^`\n\"]*(?:\"[^\"\n]*\"[^`\n\"]*)*)")
TAKES_VALUE = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "-e",
    "--editable",
}


def index_requirements(command: str) -> list[Requirement]:
    """The requirements that ``pip install COMMAND`` takes from a package index: not paths,
    URLs, editable checkouts or option values."""
    command = re.split(r"\s(?:#|&&|\|\||;|\|)", " " + command, maxsplit=1)[0]
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    out: list[Requirement] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in TAKES_VALUE:
            skip = True
            continue
        if word.startswith("-"):
            continue
        if word.startswith((".", "/", "~")) or "://" in word or "@" in word:
            continue  # a checkout, a path or a URL: not an index release
        try:
            out.append(Requirement(word))
        except InvalidRequirement:
            continue
    return out


def test_the_command_parser_sees_what_it_should() -> None:
    def names(text: str) -> list[str]:
        return [str(r) for m in PIP_INSTALL.finditer(text) for r in index_requirements(m[1])]

    assert names("pip install 'ncp-hpo[postgres]'  # or: pip install x") == ["ncp-hpo[postgres]"]
    assert names("`python3 -m pip install ncp-hpo`") == ["ncp-hpo"]
    assert names('python3 -m pip install -c requirements/lock.txt -e ".[dev]" && pytest') == []
    assert names("pip install -e . && ncp-hpo data fetch") == []
    assert names("pip install torch==2.13.0 --index-url https://x/whl/cpu") == ["torch==2.13.0"]
    assert names("pip install 'ncp-hpo @ git+https://example.org/ncp-hpo'") == []
    assert names("pip install -r https://hub.optuna.org/samplers/ncp/requirements.txt") == []


def _installable(req: Requirement) -> bool:
    spec = req.specifier or SpecifierSet()
    return any(spec.contains(v) for v in PUBLISHED)


def test_install_instructions_name_only_published_releases() -> None:
    found: list[str] = []
    checked = 0
    for path in instruction_files():
        text = path.read_text(encoding="utf-8")
        for match in PIP_INSTALL.finditer(text):
            checked += 1
            if not PUBLISHED and "samplers/ncp/requirements.txt" in match.group(1):
                # the OptunaHub package's requirements name ncp-hpo: from the index, too
                found.append(f"{path.relative_to(ROOT)}: pip install {match.group(1)!r}")
            for req in index_requirements(match.group(1)):
                if _canonical(req.name) == "ncp-hpo" and not _installable(req):
                    found.append(f"{path.relative_to(ROOT)}: pip install {match.group(1)!r}")
        if not PUBLISHED and re.search(r"pypi\.org/project/ncp[-_]hpo", text, re.I):
            found.append(f"{path.relative_to(ROOT)}: links to a PyPI project that does not exist")
    assert checked >= 5, "the scan finds the install commands"
    assert not found, "installs an ncp-hpo release that is not published:\n" + "\n".join(found)


def test_hub_requirements_are_satisfied_by_a_checkout() -> None:
    """The OptunaHub package's requirements.txt names ncp-hpo; until a release is published,
    the editable install of this checkout is what satisfies it, so its version range must
    admit this version."""
    lines = (ROOT / "package" / "samplers" / "ncp" / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    ours = [r for r in reqs if _canonical(r.name) == "ncp-hpo"]
    assert len(ours) == 1
    assert ours[0].specifier.contains(ncp_hpo.__version__), (ours[0], ncp_hpo.__version__)
