"""The house's walls: no import cycles, the lower packages never reach up, the client
library stands alone, and docs/architecture.md lists every module.

Every import counts, including those under `TYPE_CHECKING` and inside functions: a cycle
hidden in a function is still two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "chinwag_client")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
}


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports, wherever in the file the import stands."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports the module a.b when there is one, else names of a.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycles() -> None:
    assert cycles() == []


def reaches(name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


LOWER = ("server.store", "server.models", "server.protocol")
UPPER = ("server.gateway", "server.sessions", "server.http")


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("name", [n for n in MODULES if within(n, LOWER)])
def test_store_models_and_protocol_never_reach_the_edges(name: str) -> None:
    assert not {n for n in reaches(name) if within(n, UPPER)}


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("chinwag_client")])
def test_the_client_library_imports_nothing_from_the_server(name: str) -> None:
    assert not {n for n in reaches(name) if n.startswith("server")}


def test_the_architecture_doc_lists_every_module() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"^\| `((?:server|chinwag_client)/[\w/]+\.py)` \|", doc, re.MULTILINE))
    on_disk = {str(path.relative_to(ROOT)) for path in MODULES.values()}
    assert sorted(on_disk - listed) == [], "modules missing from docs/architecture.md"
    assert sorted(listed - on_disk) == [], "docs/architecture.md lists modules that do not exist"


@pytest.mark.parametrize(("backend", "other"), [("sqlite", "postgres"), ("postgres", "sqlite")])
def test_each_store_backend_stands_alone(backend: str, other: str) -> None:
    """What both backends share lives in `server/store/` itself, never in one of them."""
    mine = [n for n in MODULES if n.startswith(f"server.store.{backend}")]
    assert mine
    for name in mine:
        assert not {n for n in reaches(name) if n.startswith(f"server.store.{other}")}, name
