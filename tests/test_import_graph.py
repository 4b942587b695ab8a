"""The import graph among ncp_hpo's packages is acyclic (issue 23 item 4).

Every ``import`` counts, at module level and inside functions; only those under
``if TYPE_CHECKING:`` do not (they never run). A string naming an ncp_hpo module (a lazy
table's entry, an ``importlib.import_module`` argument) counts as an import too: it is
one, made later. The nodes are ncp_hpo's packages (``ncp_hpo.search``) and top-level
modules (``ncp_hpo.exceptions``); the root ``ncp_hpo/__init__.py`` re-exports lazily for
users and is no source node.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

PACKAGE = Path(__file__).resolve().parents[1] / "ncp_hpo"
ROOT = "ncp_hpo"


class Edge(NamedTuple):
    source: str  # node importing
    target: str  # node imported
    where: str  # file:line
    module: str  # the module imported


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    base = PACKAGE.parent / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _node(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node``, except the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield sub
                yield from _walk(sub)
            continue
        yield child
        yield from _walk(child)


def _imported(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for every ncp_hpo module that ``source`` (a module of ``package``)
    imports."""
    for node in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from ncp_hpo import exceptions` imports a module
                sub = f"{module}.{alias.name}"
                yield node.lineno, sub if _exists(sub) else module
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(f"{ROOT}.")
            and node.value.replace(".", "").replace("_", "").isalnum()
            and _exists(node.value)
        ):  # a lazy table's entry or an import_module argument
            yield node.lineno, node.value


def package_edges() -> list[Edge]:
    """Every import from one ncp_hpo node into another (file:line each)."""
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        this = _module_name(path)
        source = _node(this)
        if source == ROOT:  # the root's lazy re-exports for users
            continue
        package = this if _is_package(path) else this.rpartition(".")[0]
        for line, module in _imported(path.read_text(encoding="utf-8"), package):
            if module.split(".")[0] != ROOT:
                continue
            target = _node(module)
            if target not in (source, ROOT):
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                edges.add(Edge(source, target, where, module))
    return sorted(edges)


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | {t for ts in graph.values() for t in ts}):
        if v not in index:
            visit(v)
    return found


def describe(edges: list[Edge]) -> str:
    lines = []
    for component in cycles(edges):
        lines.append(f"cycle among {', '.join(component)}:")
        members = set(component)
        for e in sorted(edges):
            if e.source in members and e.target in members:
                lines.append(f"  {e.source} -> {e.target}  {e.where}  ({e.module})")
    return "\n".join(lines)


def test_the_checker_counts_function_level_relative_and_lazy_imports() -> None:
    source = """
from typing import TYPE_CHECKING
from . import _engine
from ..exceptions import NCPError
if TYPE_CHECKING:
    from ncp_hpo.samplers import NCPSampler
else:
    import ncp_hpo.zerocost
_LAZY = {"make": "ncp_hpo.benchmarks._table"}
def f():
    from ncp_hpo import runtime
    import os
"""
    found = {module for _, module in _imported(source, "ncp_hpo.search")}
    assert found == {
        "ncp_hpo.search._engine",
        "ncp_hpo.exceptions",
        "ncp_hpo.zerocost",
        "ncp_hpo.benchmarks._table",
        "ncp_hpo.runtime",
        "os",
        "typing",
    }
    edges = [Edge("a", "b", "a.py:1", "b"), Edge("b", "c", "b.py:1", "c")]
    assert not cycles(edges)
    assert cycles([*edges, Edge("c", "a", "c.py:1", "a")]) == [["a", "b", "c"]]
    assert all(e.source != ROOT for e in package_edges())


def test_the_package_graph_is_acyclic() -> None:
    edges = package_edges()
    assert not cycles(edges), "\n" + describe(edges)


if __name__ == "__main__":  # python tests/test_import_graph.py: the cycles, if any
    print(describe(package_edges()) or "acyclic")
