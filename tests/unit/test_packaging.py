"""pyproject.toml and environment.yml must name the same packages with the same ranges."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: PyPI name → conda-forge name, where they differ.
CONDA_NAME = {"docker": "docker-py"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = list(data["project"]["dependencies"]) + list(data["project"]["optional-dependencies"]["test"])
    return dict(_split(r) for r in requirements)


def _environment() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    block = text.split("dependencies:", 1)[1]
    deps = {}
    for line in block.splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+[^\s#]*)\s*$", line)
        if match and match.group(1) not in ("pip", "pip:"):
            name, spec = _split(match.group(1))
            deps[name] = spec
    return deps


def test_environment_names_every_dependency_with_the_same_range() -> None:
    env = _environment()
    for name, spec in _pyproject().items():
        conda = CONDA_NAME.get(name, name)
        assert conda in env, f"environment.yml lacks {conda} (pyproject has {name}{spec})"
        assert env[conda] == spec, f"{conda}: environment.yml says {env[conda]!r}, pyproject.toml {spec!r}"


def test_environment_has_nothing_pyproject_lacks() -> None:
    known = {CONDA_NAME.get(n, n) for n in _pyproject()} | {"python"}
    extra = set(_environment()) - known
    assert not extra, f"environment.yml names packages pyproject.toml does not: {sorted(extra)}"


def test_python_floor_matches() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["requires-python"] == _environment()["python"]


def test_the_package_ships_the_progress_event_schema(tmp_path: Path) -> None:
    """What setuptools copies into a wheel (build_py: the packages and their package data) holds the schema.

    Built from a clean copy of the sources: an egg-info left by an editable install would list the file anyway.
    """
    from labkit.exercises.machinery import events

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "labkit", source / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=source, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shipped = tmp_path / "lib" / "labkit" / "exercises" / "machinery" / events.SCHEMA_FILE
    assert shipped.is_file(), "add the schema to [tool.setuptools.package-data] in pyproject.toml"
    assert json.loads(shipped.read_text(encoding="utf-8")) == events.SCHEMA
