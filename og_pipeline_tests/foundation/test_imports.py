"""The package's imports run one way: no import cycle between og_pipeline's modules (imports
inside functions included), and no folder imports one downstream of it in the data flow
(ordergroove -> webhooks -> contacts -> ometria). Read from the source with ast: nothing runs."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "og_pipeline"
FLOW = {"ordergroove": 0, "webhooks": 1, "contacts": 2, "ometria": 3}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from pkg import module` imports the module; `from pkg import name`, the package.
                submodules = [f"{target}.{a.name}" for a in node.names]
                named = [m for m in submodules if m in modules]
                targets = named if len(named) == len(node.names) else [target, *named]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 1:
                found.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, path)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return found


def test_no_import_cycle_between_the_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_folder_imports_one_downstream_of_it() -> None:
    def folder(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 and parts[1] in FLOW else None

    upstream_importing_downstream = [
        (module, other)
        for module, others in _graph().items()
        for other in others
        if (a := folder(module)) and (b := folder(other)) and FLOW[b] > FLOW[a]
    ]
    assert upstream_importing_downstream == []


def test_the_cycle_check_finds_a_cycle_where_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
