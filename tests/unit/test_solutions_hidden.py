"""``labkit solution`` in a student workspace refuses unless the instructor enabled it (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import lab
from labkit.core.errors import SolutionsHidden
from labkit.core.paths import RELEASE_MARKER, REPO_DIR, solutions_hidden
from labkit.course.release import release
from labkit.exercises import solution


@pytest.fixture(autouse=True)
def _own_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("LABKIT_WORKSPACE", str(workspace))
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    monkeypatch.chdir(tmp_path)
    return workspace


def test_release_marks_its_folder_as_a_student_release(tmp_path: Path) -> None:
    release(tmp_path / "out")
    assert json.loads((tmp_path / "out" / RELEASE_MARKER).read_text()) == {"solutions": False, "student": True}
    release(tmp_path / "open", allow_solutions=True)
    assert json.loads((tmp_path / "open" / RELEASE_MARKER).read_text())["solutions"] is True


def test_the_labs_student_workspace_is_marked_and_the_solutions_one_is_not(_own_workspace: Path) -> None:
    lab.sync_student_workspace(REPO_DIR / "notebooks", _own_workspace)
    assert solutions_hidden() == _own_workspace / RELEASE_MARKER
    lab.sync_solution_workspace(REPO_DIR / "notebooks", _own_workspace)
    assert solutions_hidden() is None


def test_no_marker_shows_solutions() -> None:
    assert solutions_hidden() is None
    assert solution("welcome.first-container") == "docker run hello-world"


def test_a_marker_in_the_workspace_or_above_the_current_folder_hides_them(
    tmp_path: Path, _own_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (_own_workspace / RELEASE_MARKER).write_text('{"student": true, "solutions": false}')
    with pytest.raises(SolutionsHidden) as hidden:
        solution("welcome.first-container")
    text = str(hidden.value)
    assert "\n" not in text and "LABKIT_SOLUTIONS=1" in text and "labkit hint welcome.first-container" in text
    (_own_workspace / RELEASE_MARKER).unlink()
    elsewhere = tmp_path / "copy" / "mounts"
    elsewhere.mkdir(parents=True)
    (tmp_path / "copy" / RELEASE_MARKER).write_text("damaged{")  # a damaged marker still marks the folder
    monkeypatch.chdir(elsewhere)
    assert solutions_hidden() == tmp_path / "copy" / RELEASE_MARKER


def test_the_instructor_enables_them(_own_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (_own_workspace / RELEASE_MARKER).write_text('{"student": true, "solutions": true}')
    assert solutions_hidden() is None
    (_own_workspace / RELEASE_MARKER).write_text('{"student": true, "solutions": false}')
    monkeypatch.setenv("LABKIT_SOLUTIONS", "1")
    assert solution("welcome.first-container") == "docker run hello-world"


def test_the_command_refuses_in_one_line(_own_workspace: Path, tmp_path: Path) -> None:
    (_own_workspace / RELEASE_MARKER).write_text('{"student": true, "solutions": false}')
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR), "LABKIT_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "solution", "welcome.first-container"],
        capture_output=True,
        text=True,
        env=env,
        cwd=_own_workspace,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "student workspace" in lines[0], done.stderr
    allowed = subprocess.run(
        [sys.executable, "-m", "labkit", "solution", "welcome.first-container"],
        capture_output=True,
        text=True,
        env={**env, "LABKIT_SOLUTIONS": "1"},
        cwd=_own_workspace,
        timeout=60,
    )
    assert allowed.returncode == 0 and allowed.stdout == "docker run hello-world\n", allowed.stderr
