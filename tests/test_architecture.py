"""The package's import graph: no import circles, and no stage importing a stage it must not (docs/architecture.md).

Every ``import autounet...`` and ``from autounet... import`` in the package is read with :mod:`ast`, at module
level and inside functions alike (a function-level import is still a dependency, only a hidden one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import autounet

PACKAGE = Path(autounet.__file__).parent

BASE = {"errors", "paths", "hardware", "utils", "__init__"}
"""Modules and packages every stage may use; they import no stage."""

MAY_IMPORT: dict[str, set[str]] = {
    "io": set(),
    "dataset": {"io"},
    "fingerprint": {"io", "dataset"},
    "network": set(),
    "measure": {"network"},
    "planning": {"io", "dataset", "fingerprint", "network", "measure"},
    "preprocessing": {"io", "dataset", "fingerprint", "planning"},
    "inference": {"io", "dataset", "fingerprint", "network", "planning", "preprocessing"},
    "evaluation": {"io", "dataset", "inference"},
    "training": {"io", "dataset", "fingerprint", "network", "measure", "planning", "preprocessing", "inference",
                 "evaluation"},
    "report": {"io", "dataset", "fingerprint", "network", "measure", "planning", "preprocessing", "inference",
               "evaluation", "training"},
}
"""Which stages each stage may import besides :data:`BASE` and itself. ``cli`` and ``pipeline`` (the application
layer) may import anything and nothing may import them. Training sits above inference and evaluation because a
fold ends by predicting and scoring its validation cases; inference and evaluation never import training."""

APPLICATION = {"cli", "pipeline", "run_budget", "model_loading", "__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """The autounet modules ``path`` imports anywhere in its body (relative imports resolved)."""
    name = module_name(path)
    return imports_in(path.read_text(encoding="utf-8"), name + ".__init__" if path.name == "__init__.py" else name)


def imports_in(source: str, module: str) -> set[str]:
    """The autounet modules ``source`` (the text of ``module``) imports, in functions too."""
    tree = ast.parse(source)
    package = module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from autounet.io import sitk_io`` imports the submodule, not the package's own names
            submodules = {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(base)
    return {name for name in found if name == "autounet" or name.startswith("autounet.")}


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Module -> the autounet modules it imports (only those that exist as files)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in modules and m != name} for name, path in modules.items()}


def stage(module: str) -> str:
    """The stage (sub-package or top-level module) a module belongs to: ``autounet.training.loss`` -> training."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import from one stage to a stage :data:`MAY_IMPORT` does not allow it."""
    found = []
    for module, targets in sorted(graph.items()):
        source = stage(module)
        for target in sorted(targets):
            goal = stage(target)
            if source == goal or goal in BASE or source in APPLICATION:
                continue
            allowed = MAY_IMPORT.get(source, set()) if source not in BASE else set()
            if goal not in allowed:
                found.append(f"{module} -> {target}")
    return found


def package_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    stages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        stages.setdefault(stage(module), set()).update(stage(t) for t in targets if stage(t) != stage(module))
    return find_cycle(stages)


def test_every_stage_is_placed():
    stages = {stage(m) for m in import_graph()}
    unplaced = stages - set(MAY_IMPORT) - BASE - APPLICATION
    assert not unplaced, f"new stage(s) {sorted(unplaced)}: add them to MAY_IMPORT and docs/architecture.md"


def test_no_module_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_stage_import_circle():
    cycle = package_cycle(import_graph())
    assert cycle is None, "stages import each other in a circle: " + " -> ".join(cycle)


def test_no_stage_imports_a_stage_it_must_not():
    found = forbidden_imports(import_graph())
    assert not found, "imports against docs/architecture.md's stage rules:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for():
    graph = {"autounet.planning.a": {"autounet.training.b"}, "autounet.training.b": {"autounet.planning.a"},
             "autounet.network.c": {"autounet.inference.d"}, "autounet.inference.d": set()}
    assert find_cycle(graph) == ["autounet.planning.a", "autounet.training.b", "autounet.planning.a"]
    assert forbidden_imports(graph) == ["autounet.network.c -> autounet.inference.d",
                                        "autounet.planning.a -> autounet.training.b"]


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from autounet.training.budget_clock import x\n", {"autounet.training.budget_clock"}),
    ("import autounet.inference.predictor  # noqa\n", {"autounet.inference.predictor"}),
    ("from ..network import cost\n", {"autounet.network.cost"}),
    ("from autounet.network import cost, build_network\n", {"autounet.network", "autounet.network.cost"}),
])
def test_function_level_and_relative_imports_count(source, expected):
    assert imports_in(source, "autounet.planning.probe") == expected
