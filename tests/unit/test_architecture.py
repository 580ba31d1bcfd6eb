"""The package's layering, read from its imports (function-level ones included).

No import cycle between modules or subpackages; nothing below the command line
imports it; the engine's numba is never imported by the CLI at start-up.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "kvmgen"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                if target.split(".")[0] != "kvmgen":
                    continue
                found = _resolve(target)
                if found and found != module:
                    edges[module].add(found)
    return edges


EDGES = _imports()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_import_reader_sees_the_package() -> None:
    assert "kvmgen.engine.kernels" in MODULES
    assert "kvmgen.engine.kernels" in EDGES["kvmgen.engine.replay"]
    # A function-level import counts.
    assert "kvmgen.engine.compiled" in EDGES["kvmgen.inputs"]


def test_no_module_import_cycle() -> None:
    assert _cycles(EDGES) == []


def test_no_subpackage_import_cycle() -> None:
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in EDGES.items():
        for target in targets:
            if _package(module) != _package(target) and target != "kvmgen":
                packages[_package(module)].add(_package(target))
    assert _cycles(packages) == []


def test_nothing_below_the_cli_imports_it() -> None:
    offenders = [
        (module, target)
        for module, targets in EDGES.items()
        for target in targets
        if target.startswith("kvmgen.cli")
        and not module.startswith("kvmgen.cli")
        and module != "kvmgen.__main__"
    ]
    assert offenders == []


def test_no_module_imports_the_package_root() -> None:
    """The root re-exports the API; importing it from inside would make a circle."""
    assert [m for m, targets in EDGES.items() if "kvmgen" in targets] == []


def test_numba_is_named_only_by_the_jit_module() -> None:
    users = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "numba" for name in names):
                users.append(module)
    # The compile notice listens for numba's compile events; everything else goes through jit.
    assert sorted(set(users)) == ["kvmgen.jit", "kvmgen.report.console"]


def test_the_package_root_exports_the_api() -> None:
    import kvmgen
    from kvmgen import api

    functions = [name for name in api.__all__ if name[0].islower()]
    assert sorted(set(kvmgen.__all__) - {"__version__"}) == sorted(functions)
    for name in functions:
        assert getattr(kvmgen, name) is getattr(api, name)
