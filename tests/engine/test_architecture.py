"""The engine's shape, held: imports go one way (no cycle, even through imports inside
functions), only `cli` reaches the commands, each registry tag name and each path under
.mlops is spelled by its one owner, command modules stay small, and the evidence package's
functions short."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from ..conftest import ROOT

ENGINE = ROOT / "scripts" / "mlops_gitops"


def modules() -> dict[str, Path]:
    found = {}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).with_suffix("").parts
        found[".".join(p for p in parts if p != "__init__")] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The package's modules `name` imports, at the top or inside functions."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            if node.module:
                found.add(".".join([*base, node.module]).strip("."))
            else:
                found.update(".".join([*base, alias.name]).strip(".") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlops_gitops"):
            found.add(node.module.removeprefix("mlops_gitops").strip("."))  # type: ignore[union-attr]
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_imports_go_one_way() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    mods = modules()
    for name, path in mods.items():
        for target in imports(name, path):
            if top(target) and top(target) != top(name) and any(top(m) == top(target) for m in mods):
                edges[top(name)].add(top(target))
    seen: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif not seen.get(nxt):
                visit(nxt, [*trail, nxt])
        seen[node] = 2

    for node in sorted(edges):
        if not seen.get(node):
            visit(node, [node])
    assert cycles == []
    assert {n for n, targets in edges.items() if "commands" in targets} == {"cli"}


def spelled(pattern: str, owners: set[str]) -> list[str]:
    found = []
    for name, path in modules().items():
        if name in owners:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line.split("#", 1)[0]):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_each_tag_name_and_state_path_has_one_owner() -> None:
    # registry tags (`mlops.<family>...`) and artifact folders (`mlops/report`, `mlops/decisions`)
    assert spelled(r"[\"']mlops[./](?!yaml\b|gitops)\w", {"tags"}) == []
    # paths under .mlops (help texts may name them to users; code builds them through state)
    assert (
        spelled(
            r"[\"']\.mlops[\"']|/ *[\"']\.mlops|MLOPS_STATE_DIR",
            {"state"},
        )
        == []
    )


def test_commands_are_small_and_evidence_functions_short() -> None:
    for path in (ENGINE / "commands").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path.name
    for path in (ENGINE / "evidence").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}: {node.name}"  # type: ignore[operator]
