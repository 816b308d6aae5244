"""The layering written in pyproject.toml ([tool.importlinter]) holds, and would notice a breach.

ARCHITECTURE.md describes the layers; these tests keep the description true.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "labkit"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the copy of labkit in ``tree`` (found first on sys.path), with its pyproject."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_this_tree(tmp_path: Path) -> None:
    proc = _lint_imports(_copy_tree(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "upward", "broken"),
    [
        # the core reaching up to a widget
        ("core/paths.py", "from labkit.notebook import magics", "labkit.core is not allowed to import labkit.notebook"),
        # a Docker-facing feature reaching up to a lesson, hidden inside a function
        (
            "features/doctor.py",
            "def _f():\n    from labkit.exercises import lesson00_welcome",
            "labkit.features is not allowed to import labkit.exercises",
        ),
        # the exercise machinery reaching up to the classroom
        (
            "exercises/machinery/model.py",
            "import labkit.classroom.store",
            "labkit.exercises is not allowed to import labkit.classroom",
        ),
    ],
)
def test_an_upward_import_breaks_the_layers(tmp_path: Path, module: str, upward: str, broken: str) -> None:
    tree = _copy_tree(tmp_path)
    target = tree / "labkit" / module
    target.write_text(target.read_text() + "\n\n" + upward + "\n")
    proc = _lint_imports(tree)
    assert proc.returncode == 1, proc.stdout
    assert broken in proc.stdout


def test_a_cycle_between_siblings_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    # core.wait already imports core.errors; errors importing wait closes a cycle inside one layer.
    target = tree / "labkit" / "core" / "errors.py"
    target.write_text(target.read_text() + "\n\nfrom labkit.core import wait  # a cycle\n")
    proc = _lint_imports(tree)
    assert proc.returncode == 1
    assert "No cycles are allowed in labkit.core" in proc.stdout


def test_nothing_inside_labkit_imports_the_package_root() -> None:
    """``labkit/__init__.py`` is the notebook API on top of everything: importing it from below is a cycle."""
    graph = grimp.build_graph("labkit", cache_dir=None)
    assert graph.find_modules_that_directly_import("labkit") == set()


def _explained(lines: list[str], index: int) -> bool:
    """A reason on the import's line, or a comment just above its group of import lines."""
    if "#" in lines[index]:
        return True
    while index > 0 and lines[index - 1].strip().startswith(("import ", "from ")):
        index -= 1
    return index > 0 and lines[index - 1].strip().startswith("#")


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom) and not _explained(lines, inner.lineno - 1):
                    found.append((inner.lineno, lines[inner.lineno - 1].strip()))
    return sorted(set(found))


def test_every_import_inside_a_function_says_why() -> None:
    """An import inside a function is for start-up time only, and says so; none dodges a cycle."""
    missing = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _function_level_imports(path)
    ]
    assert not missing, "imports inside functions without a reason:\n" + "\n".join(missing)


def test_the_lesson_modules_keep_their_short_names() -> None:
    """Notebooks write ``from labkit import registry``; every short name resolves to its module in the layers."""
    import importlib

    import labkit

    for name, module in labkit.LESSON_MODULES.items():
        assert getattr(labkit, name) is importlib.import_module(module)
    namespace: dict[str, object] = {}
    exec("from labkit import engine, registry, registry_api, trace, vm, layers, wait, paths", namespace)
    assert namespace["registry"] is importlib.import_module("labkit.features.registry.mirror")


def _modules() -> list[str]:
    """Every module of labkit as a path below labkit/ (``core/engine.py``), packages as ``core/``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            if rel.parent != Path("."):
                found.append(f"{rel.parent.as_posix()}/")
        elif rel.name != "__main__.py":
            found.append(rel.as_posix())
    return found


def test_architecture_md_names_every_module() -> None:
    """ARCHITECTURE.md's module map lists each module by its path, so a new one must be placed in a layer."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = [m for m in _modules() if f"`{m}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not place: {missing}"
    table = text.split("## Module map", 1)[1]
    gone = [name for name in re.findall(r"^\| [a-z]+ \| `([^`]+)`", table, re.M) if not (PACKAGE / name).exists()]
    assert not gone, f"ARCHITECTURE.md names modules that are not in labkit/: {gone}"


def test_readme_layout_names_every_package() -> None:
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    packages = [m for m in _modules() if m.endswith("/")]
    # nested packages are written under their parent: ``machinery/`` below ``exercises/``
    missing = [p for p in packages if p.rstrip("/").rsplit("/", 1)[-1] + "/" not in layout]
    assert not missing, f"README's Layout does not name: {missing}"
    stale = [
        n for n in re.findall(r"\b([a-z_]+\.py)\b", layout) if not list(PACKAGE.rglob(n)) and not (ROOT / n).exists()
    ]
    assert not stale, f"README's Layout names files that are gone: {stale}"
