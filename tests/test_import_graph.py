"""No import cycles among densegui's modules, counting imports inside functions too.

A function-level import hides a cycle only until someone moves it to the top of the file,
so every ``import``/``from`` statement counts, wherever it is; only the bodies of
``if TYPE_CHECKING:`` (never executed) are left out. An edge goes to the module named by the
statement (``from a.b import c`` to ``a.b.c`` when that is a module, else to ``a.b``), not
to its parent packages, whose partial initialisation Python handles.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool, modules: set[str]) -> None:
        self.package = name if is_package else name.rpartition(".")[0]
        self.modules = modules
        self.found: dict[str, int] = {}  # imported module -> first line

    def _add(self, target: str, line: int) -> None:
        if target in self.modules:
            self.found.setdefault(target, line)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            base_name = ".".join(base + ([node.module] if node.module else []))
        else:
            base_name = node.module or ""
        for alias in node.names:
            sub = f"{base_name}.{alias.name}"
            self._add(sub if sub in self.modules else base_name, node.lineno)


@functools.lru_cache(maxsize=None)  # (parsed once for the tests below; callers only read it)
def import_graph(package: str = "densegui", root: pathlib.Path = ROOT) -> dict[str, dict[str, int]]:
    """{module: {imported module of the package: line}} for every module under ``package``."""
    paths = sorted(root.joinpath(*package.split(".")).rglob("*.py"))
    modules = {_module_name(p, root) for p in paths}
    graph = {}
    for path in paths:
        name = _module_name(path, root)
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = visitor.found
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
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
            if len(component) > 1 or v in graph.get(v, {}):
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        members, start = set(component), component[0]
        # Shortest path back to the start inside the component (breadth-first).
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in previous:
                        previous[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(previous[path[-1]])
        cycles.append(path[::-1])
    return cycles


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


@pytest.mark.parametrize("package", ["densegui.core", "densegui"])
def test_no_import_cycles(package):
    graph = import_graph(package)
    assert len(graph) > 5  # the walk found the modules
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_describe(c, graph) for c in cycles)


def test_the_cycle_finder_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n")
    (pkg / "d.py").write_text("from . import c\n")
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.a"] == {"pkg.b": 1} and graph["pkg.b"] == {"pkg.a": 2}
    assert graph["pkg.c"] == {} and graph["pkg.d"] == {"pkg.c": 1}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def floors(graph: dict[str, dict[str, int]]) -> dict[str, list[str]]:
    """Each module's longest import chain inside the graph (a module importing nothing of it is
    floor 1: a chain of one). The graph has no cycles (checked above)."""
    chains: dict[str, list[str]] = {}

    def chain(v: str) -> list[str]:
        if v not in chains:
            below = [chain(w) for w in graph[v] if w != v]
            chains[v] = [v] + max(below, key=len, default=[])
        return chains[v]

    for v in graph:
        chain(v)
    return chains


MAX_FLOORS = 6


def test_core_is_at_most_six_import_floors_deep():
    chains = floors(import_graph("densegui.core"))
    deepest = max(chains.values(), key=len)
    assert len(deepest) <= MAX_FLOORS, " -> ".join(deepest)


def test_floors_count_the_longest_chain():
    graph = {"a": {"b": 1, "c": 1}, "b": {"c": 1}, "c": {}, "d": {}}
    assert {k: len(v) for k, v in floors(graph).items()} == {"a": 3, "b": 2, "c": 1, "d": 1}


MAX_LINES = 400


def test_no_core_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "densegui" / "core").rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
