"""The layering of ARCHITECTURE.md, read from the source: which layer may import which, no import cycles, no
private names used across modules, and the target-side scripts self-contained."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qatdoctor"

# The data model and its helpers, importable from everywhere.
BASE = {"qatdoctor", "qatdoctor.records", "qatdoctor.errors", "qatdoctor.exitcodes", "qatdoctor.atomic",
        "qatdoctor.jsonio", "qatdoctor.bounded", "qatdoctor.text"}
# layer -> the layers it may import (besides BASE and itself); `transform` (the data transforms: redaction,
# terminal control) sits on the data model and every layer but the standalone scripts may import it
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "transform": set(),
    "knowledge": {"transform"},
    "environment": {"knowledge", "transform"},
    "diagnose": {"knowledge", "transform"},
    "recommend": {"knowledge", "diagnose", "transform"},
    "core": {"knowledge", "environment", "diagnose", "recommend", "transform"},
    "explain": {"knowledge", "environment", "diagnose", "core", "transform"},
    "lab": {"knowledge", "environment", "diagnose", "recommend", "core", "transform"},
    "authoring": {"knowledge", "diagnose", "recommend", "lab", "environment", "transform"},
    "render": {"knowledge", "diagnose", "recommend", "authoring", "lab", "core", "transform"},
    "cli": {"knowledge", "environment", "diagnose", "recommend", "core", "explain", "lab", "authoring", "render",
            "transform"},
    "standalone": set(),  # the scripts that run in the target interpreter, and qatdoctor.fixes
}
STANDALONE = {"qatdoctor.environment._collector", "qatdoctor.environment._probe", "qatdoctor.environment._zoo",
              "qatdoctor.fixes"}
TOP = {"qatdoctor.cli", "qatdoctor.cli_matrix", "qatdoctor.console", "qatdoctor.__main__"}


def layer_of(module: str) -> str:
    if module in STANDALONE:
        return "standalone"
    if module in BASE:
        return "base"
    if module in TOP:
        return "cli"
    if module == "qatdoctor.core":
        return "core"
    return module.split(".")[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """Every qatdoctor module `module` imports, at module level or inside a function."""
    known = modules()
    found: set[str] = set()
    for node in ast.walk(known[module]):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "qatdoctor"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qatdoctor":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found - {module}


def test_the_layers_are_the_packages_described() -> None:
    layers = {layer_of(name) for name in modules()}
    assert layers == set(ALLOWED), "a module outside the documented layers: add it to ARCHITECTURE.md and here"


@pytest.mark.parametrize("module", sorted(modules()))
def test_a_module_imports_only_the_layers_below_it(module: str) -> None:
    mine = layer_of(module)
    allowed = ALLOWED[mine] | ({"base", mine} if mine != "standalone" else set())
    wrong = sorted(imported for imported in imports_of(module) if layer_of(imported) not in allowed)
    assert not wrong, f"{module} ({mine}) imports {wrong}"


def test_there_are_no_import_cycles() -> None:
    graph = {name: imports_of(name) for name in modules()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join((*path[path.index(name):], name)))
        if name in done:
            return
        for child in sorted(graph.get(name, ())):
            visit(child, (*path, name))
        done.add(name)

    for name in sorted(graph):
        if name != "qatdoctor":  # the package root is imported by every submodule and imports none of them
            visit(name, ())


def _private_uses(module: str) -> list[str]:
    known = modules()
    tree = known[module]
    bound: dict[str, str] = {}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qatdoctor":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    bound[alias.asname or alias.name] = sub
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    uses.append(f"{node.module}.{alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            uses.append(f"{bound[node.value.id]}.{node.attr}")
    return uses


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_private_name_is_used_across_modules(module: str) -> None:
    assert not _private_uses(module)


@pytest.mark.parametrize("script", sorted(STANDALONE))
def test_the_target_side_scripts_import_nothing_of_qatdoctor(script: str) -> None:
    assert imports_of(script) == set()


@pytest.mark.parametrize("package", sorted({name for name in modules() if (PACKAGE.parent / name.replace(".", "/")).is_dir()}))
def test_every_package_says_what_lives_there(package: str) -> None:
    doc = ast.get_docstring(modules()[package]) or ""
    assert len(doc) > 80, f"{package}/__init__.py needs a docstring: what lives there and what it may import"


# Folder names that common global gitignores (GitHub's templates for Rust, Java, Node, Python, C) exclude: a
# tracked folder of that name is hidden from `git status` and skipped by ruff for anyone who has one.
IGNORED_ELSEWHERE = {"target", "build", "dist", "out", "bin", "obj", "node_modules", "venv", "env", "lib", "vendor",
                     "coverage", "logs", "tmp"}  # fmt: skip


def test_no_tracked_folder_has_a_name_global_gitignores_hide() -> None:
    root = PACKAGE.parent
    folders = {p.name for top in ("qatdoctor", "tests", "scripts", "bench", "examples", "docs", "evidence")
               for p in (root / top).rglob("*") if p.is_dir() and "__pycache__" not in p.parts}  # fmt: skip
    assert not folders & IGNORED_ELSEWHERE, folders & IGNORED_ELSEWHERE
