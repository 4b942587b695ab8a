"""The documentation's code runs: every ```python block of README.md and docs/**/*.md.

Each block runs on its own (fresh globals) in a temporary folder, so nothing lands in the
checkout, with the benchmark tables as ``NCP_HPO_DATA`` when it loads one. A block that
cannot run here (a GPU, a PostgreSQL server) is preceded by ``<!-- skip-test: reason -->``,
and the reason is required. A block that another test already runs verbatim is listed in
``RUN_ELSEWHERE`` with that test, which is checked to still read it.

Also: the API reference pages (docs/_hooks/api_pages.py) cover every public package, and
the benchmark records the docs name exist.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SKIP = re.compile(r"<!--\s*skip-test:(.*?)-->")
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# README blocks run as documented except for their trial budget (README's quickstart runs
# 100 trials; the docs' own blocks must run as written, so they keep theirs small)
MAX_TRIALS = 20

# (file, heading of the block's section) -> the test that runs that block verbatim
RUN_ELSEWHERE = {
    ("README.md", "NCP in Ax"): "tests/samplers/test_ax_public.py",
    ("docs/scaling-out.md", "5. Checking a study"): "tests/runtime/test_fail_reasons.py",
}


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int
    heading: str  # the nearest heading above the block, without its '#'s
    code: str
    skip: str | None  # the reason of a skip-test marker right above the block

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(REPO).as_posix()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        headings = re.findall(r"^#{1,6} +(.+?) *$", before, re.M)
        previous = before.rstrip("\n").rsplit("\n", 1)[-1]
        marker = SKIP.fullmatch(previous.strip())
        blocks.append(
            Block(
                path=rel,
                line=before.count("\n") + 1,
                heading=headings[-1] if headings else "",
                code=match.group(1),
                skip=marker.group(1).strip() if marker else None,
            )
        )
    return blocks


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


ALL_BLOCKS = [b for doc in _documents() for b in _blocks(doc)]
TO_RUN = [b for b in ALL_BLOCKS if b.skip is None and (b.path, b.heading) not in RUN_ELSEWHERE]


def test_the_docs_have_python_blocks() -> None:
    paths = {b.path for b in ALL_BLOCKS}
    assert "README.md" in paths and "docs/how-to/custom-space.md" in paths
    assert len(TO_RUN) >= 5


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_skip_marker_gives_a_reason_and_precedes_a_python_block(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    markers = [m for m in re.finditer(r"<!--\s*skip-test\b[^>]*-->", text)]
    skipped = [b for b in _blocks(doc) if b.skip is not None]
    for marker in markers:
        line = text[: marker.start()].count("\n") + 1
        reason = SKIP.fullmatch(marker.group(0))
        assert reason and reason.group(1).strip(), (
            f"{doc.name}:{line}: skip-test needs a reason (<!-- skip-test: why -->)"
        )
        after = text[marker.end() :].lstrip(" \t")
        assert after.startswith("\n```python"), (
            f"{doc.name}:{line}: a skip-test marker must be the line right above a ```python block"
        )
    assert len(skipped) == len(markers)


@pytest.mark.parametrize(("key", "test_file"), sorted(RUN_ELSEWHERE.items()))
def test_blocks_run_elsewhere_are_still_read_by_their_test(
    key: tuple[str, str], test_file: str
) -> None:
    path, heading = key
    assert any(b.path == path and b.heading == heading for b in ALL_BLOCKS), (
        f"no python block under '{heading}' in {path} any more: update RUN_ELSEWHERE"
    )
    source = (REPO / test_file).read_text(encoding="utf-8")
    assert heading in source and Path(path).name in source, (
        f"{test_file} no longer runs the block under '{heading}' of {path}"
    )


@pytest.mark.parametrize("block", TO_RUN, ids=lambda b: b.id)
def test_python_block_runs(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    code = block.code
    trials = [int(n) for n in re.findall(r"n_trials=(\d+)", code)]
    if block.path.startswith("docs/"):
        assert all(n <= MAX_TRIALS for n in trials), (
            f"{block.id}: keep the docs' studies small (n_trials <= {MAX_TRIALS})"
        )
    else:
        code = re.sub(r"n_trials=(\d+)", lambda m: f"n_trials={min(int(m[1]), MAX_TRIALS)}", code)
    if "load_benchmark(" in code:
        data: Path = request.getfixturevalue("shared_data_dir")  # skips without the data
        monkeypatch.setenv("NCP_HPO_DATA", str(data))
    if "optunahub" in code:
        pytest.importorskip("optunahub", reason='the ".[hub]" extra is not installed')
    if 'registry_root="package"' in code:  # README's OptunaHub block runs from a checkout
        (tmp_path / "package").symlink_to(REPO / "package", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    # in this process (a subprocess would import torch again), so leave the global RNGs
    # as they were for the tests that run after this one
    import random

    import numpy as np
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=[]):
            exec(compile(code, str(REPO / block.path), "exec"), namespace)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


def _api_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_pages", DOCS / "_hooks" / "api_pages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_has_a_page_per_public_package_covering_its_all() -> None:
    hook = _api_hook()
    mkdocs_yml = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `(ncp_hpo[\w.]*)`", readme, re.M))
    assert documented <= set(hook.PUBLIC), "README's Public API lists a package the site lacks"
    for package in hook.PUBLIC:
        page = "ncp_hpo.md" if package == "ncp_hpo" else f"{package.split('.', 1)[1]}.md"
        assert f"<!-- api: {package} -->" in (DOCS / "reference" / page).read_text()
        assert f"reference/{page}" in mkdocs_yml
        text = hook.api_markdown(package)
        module = importlib.import_module(package)
        for name in module.__all__:
            assert f"`{name}`" in text or f".{name}\n" in text, f"{package}.{name} is missing"


def test_benchmark_records_named_in_the_docs_exist() -> None:
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    paths = re.findall(r"`(benchmarks/results/[^`]*)`", text)
    assert len(paths) >= 10
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/benchmarks.md names records that do not exist: {missing}"
