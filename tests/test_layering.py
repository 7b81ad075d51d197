"""Arrows point down: `core` imports no domain, domains import only lower layers, wiring is on top.

Every `from app... import` (including function-local and TYPE_CHECKING ones) is read with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Lowest first. A module may import its own package and any package of a lower layer.
LAYERS = [
    {"app.core", "app.models"},
    {"app.redis"},
    {"app.usage"},
    {"app.accounts"},
    {"app.gate"},
    {
        "app.catalog",
        "app.health",
        "app.admin",
        "app.billing",
        "app.metering",
        "app.notices",
        "app.webhooks",
        "app.inventory",
    },
    {"app.portal"},  # pages over the domains: accounts, usage, billing, webhooks
    {"app.services", "app.deps", "app.cron", "app.mcp"},
    {"app.main", "app.aws_lambda"},
]
TOP = len(LAYERS) - 1


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    package = _package(module)
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"{module} is in no layer; add its package to LAYERS")


def _modules() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imports: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                imports.add(node.module)
                imports.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imports.update(a.name for a in node.names if a.name.startswith("app"))
        graph[name] = imports
    graph.pop("app", None)  # the package itself
    return {name: {i for i in deps if i in graph and i != "app"} for name, deps in graph.items()}


def _is_router(module: str) -> bool:
    return module.endswith(".router")


def test_every_import_points_down() -> None:
    wrong = []
    for module, imports in _modules().items():
        layer = TOP - 1 if _is_router(module) else _layer(module)  # routers sit under the wiring
        for target in imports:
            if _package(target) != _package(module) and _layer(target) > layer:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "upward imports:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = _modules()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
