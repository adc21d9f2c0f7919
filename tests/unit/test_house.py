"""The house plan holds: layers point down only, no import cycles, the domain is pure, every
import deferred into a function says why, and the linters and type checker are clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("skutui", "skutui_lab")
FORBIDDEN_IN_DOMAIN = ("textual", "asyncssh", "pyroute2", "rich")
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_the_layers_point_down_only():
    """import-linter's contracts in pyproject.toml: ui | cli above cluster | agent above peer
    above system above domain, and the domain imports no UI, SSH or netlink library."""
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components of more than one node, or of one node that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.fixture(scope="module")
def imports() -> grimp.ImportGraph:
    """The imports that run: those under ``if TYPE_CHECKING:`` are for the type checker only
    (a screen names the console's App type, whose module imports the screens)."""
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def test_no_import_cycles_between_packages(imports):
    """Squashed to skutui's packages (skutui.cli, skutui.domain, …), the imports form no cycle."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2]) if module.startswith("skutui.") else module.split(".")[0]

    graph: dict[str, set[str]] = {}
    for module in imports.modules:
        for imported in imports.find_modules_directly_imported_by(module):
            if package(imported) != package(module):
                graph.setdefault(package(module), set()).add(package(imported))
    assert strongly_connected(graph) == []


def test_no_import_cycles_between_modules(imports):
    graph = {module: set(imports.find_modules_directly_imported_by(module)) for module in imports.modules}
    assert strongly_connected(graph) == []


def test_the_domain_imports_no_ui_ssh_or_netlink_library():
    """Imported alone, in a fresh interpreter, each domain module pulls in none of them."""
    modules = sorted(f"skutui.domain.{path.stem}" for path in (ROOT / "skutui/domain").glob("*.py"))
    probe = (f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(FORBIDDEN_IN_DOMAIN)!r}))")
    result = run(sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def deferred_imports_without_a_reason(source: str) -> list[int]:
    """Lines of imports inside a function that no comment explains: a comment on the line
    above the block of imports, or on the import's own line."""
    lines = source.split("\n")
    bare = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                continue
            above = inner.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                above -= 1
            explained = above >= 0 and lines[above].strip().startswith("#")
            if not explained and "#" not in lines[inner.lineno - 1]:
                bare.append(inner.lineno)
    return bare


def test_the_deferred_import_check_tells_explained_from_bare():
    source = ("def a():\n    # slow to import\n    import json\n    import os\n\n"
              "def b():\n    import json\n")
    assert deferred_imports_without_a_reason(source) == [7]


def test_every_deferred_import_says_why():
    """An import inside a function buys start-up time (or keeps an optional part apart) and
    says which; any other import belongs at the top of its module."""
    bare = [f"{path.relative_to(ROOT)}:{line}"
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
            for line in deferred_imports_without_a_reason(path.read_text())]
    assert bare == []


def test_ruff_finds_nothing():
    result = run(str(BIN / "ruff"), "check", "--no-cache", *PACKAGES, "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    """Strict on the domain, the defaults elsewhere (pyproject.toml)."""
    result = run(sys.executable, "-m", "mypy", *(f"--package={p}" for p in PACKAGES))
    assert result.returncode == 0, result.stdout + result.stderr
