"""pyproject.toml and environment.yml must name the same packages with the same ranges."""

from __future__ import annotations

import re
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
