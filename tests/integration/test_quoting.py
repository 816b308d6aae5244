"""A workspace whose name holds spaces, quotes and ``;`` (issue 12): the exercises work, and nothing extra runs.

Setup puts its paths into the workspace, and the reference solutions put those paths into the
commands ``sh()`` runs: every one is quoted, so ``;touch PWNED;`` stays part of a folder name.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core.paths import REPO_DIR

pytestmark = pytest.mark.docker

#: Folder names a shell would read as several commands, a command substitution, and (the first) an
#: unbalanced quote that makes the whole line unparsable; the second parses, so unquoted it would run `touch`.
NASTY = ("ws with space;touch PWNED;'q\"$(touch PWNED2)", "ws;touch PWNED;$(touch PWNED2)")
#: The exercises whose setup reports a path in the workspace that the solution then uses.
PATH_EXERCISES = ("save.load", "load.back", "mounts.rmbyext")


def _labkit(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def _pwned(tmp_path: Path) -> list[str]:
    """Files a smuggled ``touch`` would make: anywhere under tmp_path (the commands' folder), or here."""
    return [str(p) for p in [*tmp_path.rglob("PWNED*"), *Path.cwd().glob("PWNED*"), *REPO_DIR.glob("PWNED*")]]


@pytest.mark.parametrize("name", NASTY, ids=("quote", "no-quote"))
@pytest.mark.parametrize("exercise_id", PATH_EXERCISES)
def test_setup_solve_check_in_a_nasty_workspace(
    exercise_id: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: object
) -> None:
    workspace = tmp_path / name
    workspace.mkdir()
    monkeypatch.setenv("LABKIT_WORKSPACE", str(workspace))  # the in-process reset below finds the same folders
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    exercise = exercises.get(exercise_id)
    try:
        setup = _labkit(env, tmp_path, "exercise", "setup", exercise_id, "--json")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        path = json.loads(setup.stdout)["path"]
        assert path.startswith(str(workspace)), path
        assert _labkit(env, tmp_path, "check", exercise_id).returncode == 1
        solution = _labkit(env, tmp_path, "solution", exercise_id)
        assert solution.returncode == 0 and any(path in word for word in shlex.split(solution.stdout)), solution.stdout
        solved = _labkit(env, tmp_path, "exercise", "solve", exercise_id)
        assert solved.returncode == 0, solved.stdout + solved.stderr
        again = _labkit(env, tmp_path, "check", exercise_id)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        exercises.reset_exercise(exercise)
    assert _pwned(tmp_path) == []
