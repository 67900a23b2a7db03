"""Every third-party module that ``autounet/`` imports is declared in pyproject.toml.

A module that some other dependency happens to bring along today is not enough: a fresh install tomorrow may
resolve without it (typer 0.29 stopped depending on click, and ``import click`` broke every command).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imported_modules(package: Path) -> dict[str, str]:
    """Top-level names of the absolute imports under ``package`` -> the first ``file:line`` importing each,
    function-level imports included."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], f"{path.relative_to(package.parent)}:{node.lineno}")
    return found


def _distribution_name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip()).lower()


def declared_distributions(pyproject: Path, extras: bool) -> set[str]:
    """Normalised names of the distributions pyproject.toml declares (with ``extras``: the optional ones too)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    if extras:
        requirements += [r for group in project.get("optional-dependencies", {}).values() for r in group]
    return {_distribution_name(r) for r in requirements}


def undeclared_imports(package: Path, declared: set[str], optional: dict[str, str] | None = None,
                       own: tuple[str, ...] = ("autounet",)) -> list[str]:
    """One line per third-party module imported under ``package`` that no declared distribution provides.

    ``own``: the project's own top-level packages, which are not third-party.

    ``optional`` maps modules that may be missing (an extra not installed) to the distribution that provides
    them; they count as declared when that distribution is.
    """
    owners = packages_distributions()
    problems = []
    for module, where in sorted(imported_modules(package).items()):
        if module in sys.stdlib_module_names or module in ("__future__", package.name, *own):
            continue
        providers = {_distribution_name(d) for d in owners.get(module, [])}
        if not providers and optional and module in optional:
            providers = {_distribution_name(optional[module])}
        if not providers:
            problems.append(f"{module} ({where}) is imported but no installed distribution provides it")
        elif not providers & declared:
            problems.append(f"{module} ({where}) comes from {', '.join(sorted(providers))}, "
                            "which pyproject.toml does not declare")
    return problems


# Modules of optional features that a core install need not have (imported only inside the feature's functions),
# and the distribution providing each, which an extra must declare.
OPTIONAL_MODULES: dict[str, str] = {"onnx": "onnx", "onnxruntime": "onnxruntime"}


def test_every_core_import_is_a_declared_core_dependency():
    """The core package needs only `dependencies`; the optional features' modules are declared by an extra."""
    core = REPO / "autounet"
    pyproject = REPO / "pyproject.toml"
    optional = {_distribution_name(d) for d in OPTIONAL_MODULES.values()}
    assert optional <= declared_distributions(pyproject, extras=True)
    declared = declared_distributions(pyproject, extras=False) | optional
    assert undeclared_imports(core, declared, OPTIONAL_MODULES) == []


def test_every_test_import_is_declared_with_the_dev_extra():
    declared = declared_distributions(REPO / "pyproject.toml", extras=True)
    assert undeclared_imports(REPO / "tests", declared, own=("autounet", "bench")) == []  # bench/: this repo's


def test_an_undeclared_import_is_caught(tmp_path):
    """The check itself can fail: a package importing numpy (installed, undeclared) and a missing module."""
    package = tmp_path / "somepkg"
    package.mkdir()
    (package / "__init__.py").write_text("import json\nimport numpy\nfrom somepkg import x\n")
    (package / "late.py").write_text("def f():\n    import no_such_module_here\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "somepkg"\ndependencies = ["scipy>=1"]\n')
    problems = undeclared_imports(package, declared_distributions(tmp_path / "pyproject.toml", extras=False))
    assert len(problems) == 2
    assert problems[0].startswith("no_such_module_here (somepkg/late.py:2)")
    assert problems[1].startswith("numpy (somepkg/__init__.py:2) comes from numpy")


def test_declared_extras_count_as_declared(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["Numpy>=1"]\n'
                                             '[project.optional-dependencies]\ndev = ["pytest>=7"]\n')
    assert declared_distributions(tmp_path / "pyproject.toml", extras=False) == {"numpy"}
    assert declared_distributions(tmp_path / "pyproject.toml", extras=True) == {"numpy", "pytest"}
