"""docs/architecture.md's rooms match the toolkit's real imports (read with ast), so the page
cannot drift: every module has a room, imports only run to the rooms its row allows,
ansible_runner and ansible-core are imported only where the page says, and no module imports
another module's private name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
TOOLKIT = ROOT / "toolkit"


def doc_table(first_header: str) -> list[list[str]]:
    """The rows of the page's table whose first header cell is `first_header`."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def rooms() -> tuple[dict[str, str], dict[str, set[str]]]:
    """pattern -> room, room -> the rooms it may import (itself included)."""
    patterns: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for room, modules, may, _what in doc_table("Room"):
        for pattern in names(modules):
            patterns[pattern] = room
        allowed[room] = {room, *(r.strip() for r in may.split(",") if r.strip())}
    return patterns, allowed


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted(TOOLKIT.rglob("*.py")) if not p.name.startswith("_secret")}


def room_of(module: str, patterns: dict[str, str]) -> str | None:
    if module in patterns:
        return patterns[module]
    for pattern, room in patterns.items():
        package = pattern.removesuffix(".*")
        if pattern.endswith(".*") and (module == package or module.startswith(package + ".")):
            return room
    return None


def imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import, lazy ones included."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def toolkit_target(module: str, taken: list[str], known: set[str]) -> list[str]:
    """The toolkit modules an import reaches (`from toolkit import x` may name module x)."""
    if not module.startswith("toolkit"):
        return []
    subs = [f"{module}.{n}" for n in taken if f"{module}.{n}" in known]
    return subs or [module]


def test_every_module_has_one_room_and_every_listed_module_exists() -> None:
    patterns, _ = rooms()
    found = modules()
    assert [m for m in found if room_of(m, patterns) is None] == []
    listed = [p for p in patterns if not p.endswith(".*")]
    assert [p for p in listed if p not in found] == []


def test_imports_only_run_to_the_rooms_the_page_allows() -> None:
    patterns, allowed = rooms()
    found = modules()
    wrong = []
    for module, tree in found.items():
        room = room_of(module, patterns)
        assert room is not None
        for target, taken in imports(tree):
            for reached in toolkit_target(target, taken, set(found)):
                to = room_of(reached, patterns)
                if to not in allowed[room]:
                    wrong.append(f"{module} ({room}) imports {reached} ({to})")
    assert wrong == []


@pytest.mark.parametrize("package", ["ansible_runner", "ansible"])
def test_ansible_apis_are_imported_only_where_the_page_says(package: str) -> None:
    allowed = {names(row[0])[0]: set(names(row[1])) for row in doc_table("Imports")}[package]
    importers = {module for module, tree in modules().items()
                 for target, _ in imports(tree)
                 if target == package or target.startswith(package + ".")}
    assert importers <= allowed
    assert importers, f"the page names importers of {package} that do not exist"


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [f"{module}: from {target} import {name}"
               for module, tree in modules().items()
               for target, taken in imports(tree) if target.startswith("toolkit")
               for name in taken if name.startswith("_") and name != "__version__"]
    assert private == []


def test_the_rooms_are_in_order_without_circles() -> None:
    _, allowed = rooms()
    order = [row[0] for row in doc_table("Room")]
    for i, room in enumerate(order):
        assert allowed[room] <= set(order[:i + 1]), f"{room} imports a room below it"
