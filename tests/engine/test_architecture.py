"""The engine's shape, held: its folders name its concerns and each imports only what its
docstring allows (no cycle, even through imports inside functions); only `cli` reaches the
commands and only `commands/` the model server; each registry tag name and each path under
.mlops is spelled by its one owner; command modules stay small and no function is long."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

from ..conftest import ROOT

ENGINE = ROOT / "scripts" / "mlops_gitops"


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).with_suffix("").parts
        found[".".join(p for p in parts if p != "__init__")] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The package's modules (or packages) `name` imports, at the top or inside functions: both
    `from .x import y` and `from . import x` (x a module) count as importing x, and
    `from ..serving import server` as importing serving.server."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])]).strip(".")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlops_gitops"):
            module = node.module.removeprefix("mlops_gitops").strip(".")  # type: ignore[union-attr]
        else:
            continue
        names = {f"{module}.{alias.name}".strip(".") for alias in node.names}
        found.update(names & set(modules()) or {module})
    return found


def top(name: str) -> str:
    return name.split(".")[0]


# What each package (or top-level entry point) may import beside itself. Each package's own
# docstring says the same in its "May import:" line; this table is what holds it.
ALLOWED = {
    "core": set(),
    "registry": {"core"},
    "gate": {"core", "registry"},
    "deploy": {"core", "registry"},
    "serving": {"core"},
    "monitor": {"core", "registry", "deploy"},
    "evidence": {"core", "registry", "gate", "deploy", "monitor"},
    "commands": {"", "core", "registry", "gate", "deploy", "serving", "monitor", "evidence"},
    "cli": {"commands"},
    "demo": {"core", "registry", "deploy"},
    "ciconfig": set(),
    "": set(),  # the package's __init__ (its version)
}


def edges_between(mods: dict[str, Path], level: str) -> dict[str, set[str]]:
    """Imports between packages (level "package") or between modules ("module"): an import of a
    name from a package (`from ..core import state`) is an import of that module."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for target in imports(name, path):
            if target not in mods:
                continue
            a, b = (top(name), top(target)) if level == "package" else (name, target)
            if a != b:
                edges[a].add(b)
    return edges


def cycles_of(edges: dict[str, set[str]]) -> list[list[str]]:
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
    return cycles


def test_folders_name_the_concerns_and_each_imports_only_what_it_may() -> None:
    mods = modules()
    assert {top(m) for m in mods} == set(ALLOWED)  # a new folder or top-level module is a decision
    wrong = {p: sorted(t - ALLOWED[p]) for p, t in edges_between(mods, "package").items() if t - ALLOWED[p]}
    assert wrong == {}
    for package, allowed in ALLOWED.items():
        init = ENGINE / package / "__init__.py"
        if package and init.is_file():
            said = re.search(r"May import: ([^.]*)\.", init.read_text())
            assert said, f"{package}/__init__.py: no 'May import:' line"
            named = {w for w in re.split(r"[, ]+", said.group(1)) if w in ALLOWED and w}
            assert named == allowed - {""}, f"{package}/__init__.py says {sorted(named)}"


def test_imports_go_one_way_and_the_server_is_a_process_to_all_but_its_command() -> None:
    mods = modules()
    edges = edges_between(mods, "module")
    assert cycles_of(edges_between(mods, "package")) == []
    assert cycles_of(edges) == []
    assert {n for n, targets in edges.items() if any(top(t) == "commands" for t in targets)} - set(
        m for m in mods if top(m) == "commands"
    ) == {"cli"}
    assert {n for n, targets in edges.items() if "serving.server" in targets} == {"commands.serving"}
    for folder in (ROOT / "pipelines",):  # its own tests and benchmarks/ may: they measure it
        for path in folder.rglob("*.py"):
            assert "mlops_gitops.serving.server import" not in path.read_text(), path


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
    assert spelled(r"[\"']mlops[./](?!yaml\b|gitops)\w", {"core.tags"}) == []
    # paths under .mlops (help texts may name them to users; code builds them through state)
    assert (
        spelled(
            r"[\"']\.mlops[\"']|/ *[\"']\.mlops|MLOPS_STATE_DIR",
            {"core.state"},
        )
        == []
    )


def test_commands_are_small_and_functions_short() -> None:
    for path in (ENGINE / "commands").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, path.name
    long = []
    for path in ENGINE.rglob("*.py"):
        limit = 60 if path.parent.name == "evidence" else 80
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > limit:
                    long.append(f"{path.relative_to(ENGINE)}: {node.name} ({lines} lines)")
    assert long == []
