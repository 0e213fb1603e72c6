"""The package layout's rules, read from the source: which package may import which, and no import circles
(deferred imports inside functions and TYPE_CHECKING blocks count too)."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

from tts_api.processes import ROOT

PACKAGE = ROOT / "tts_api"
# Shared by every process; they may import each other, never a process role's package.
SHARED = {"settings", "errors", "schemas", "voices", "formats", "encoders", "logs", "terminal"}
FORBIDDEN: Mapping[str, set[str]] = {
    "text": {"front", "worker", "synth", "model", "ipc"},
    "model": {"front", "worker", "synth", "ipc"},
    "synth": {"front", "worker", "ipc"},
    "front": {"worker", "synth", "model"},
    "worker": {"front"},
    "ipc": {"front", "worker", "synth", "model"},
    **{name: {"front", "worker", "synth", "model", "ipc"} for name in SHARED},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every tts_api module `path` imports, wherever the import statement is."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("tts_api")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("tts_api"):
                continue
            for alias in node.names:  # `from . import x` may name a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return {name for name in found if name != module}


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _unit(module: str) -> str:
    """The layout unit of a module: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import circle in `graph`, as the path around it; None if there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_a_package_its_role_forbids() -> None:
    broken = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _unit(target) in FORBIDDEN.get(_unit(module), set())
    ]
    assert broken == []


def test_no_import_circle_between_modules() -> None:
    assert find_cycle(_graph()) is None


def test_no_import_circle_between_packages() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    assert find_cycle(units) is None


@pytest.mark.parametrize(
    ("graph", "circular"),
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True), ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, False)],
)
def test_the_circle_finder_itself(graph: dict[str, set[str]], circular: bool) -> None:
    """Negative control: the same search finds a circle where there is one."""
    assert (find_cycle(graph) is not None) == circular


def test_the_import_reader_sees_deferred_and_relative_imports() -> None:
    """Negative control: model/assets.py imports its siblings inside functions."""
    assert "tts_api.model.kmodel" in _imports(PACKAGE / "model" / "assets.py")
