"""Hints that teach (issue 11), on the real daemon: the first "not yet" does not give the command.

For every exercise `labkit exercise list` shows: reset its lesson, set it up, check it before
doing anything (exit 1). What that check shows (its message and its hint), and the exercise's
first hint tier, must not contain the reference solution's command, with setup's values filled
in (``tests/hint_rules.py`` says what counts).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hint_rules import leaks

from labkit import exercises
from labkit.exercises.machinery.runner import fill

pytestmark = pytest.mark.docker


def _labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=300)


def _listed() -> list[str]:
    listed = _labkit("exercise", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return [row["id"] for row in json.loads(listed.stdout)]


@pytest.mark.parametrize("exercise_id", _listed())
def test_the_first_not_yet_does_not_give_the_command(exercise_id: str, docker_client: object) -> None:
    exercise = exercises.get(exercise_id)
    try:
        assert _labkit("reset", "--lesson", exercise.lesson).returncode == 0
        setup = _labkit("exercise", "setup", exercise_id, "--json")
        assert setup.returncode == 0, setup.stderr
        reported = json.loads(setup.stdout)
        checked = _labkit("check", exercise_id, "--json")
        assert checked.returncode == 1, checked.stdout + checked.stderr
        shown = json.loads(checked.stdout)
        solution = [fill(line, reported) for line in exercise.solution]
        for what, text in (
            ("message", shown["message"]),
            ("hint", shown["hint"]),
            ("hint 1", exercise.hints[0] if exercise.hints else ""),
        ):
            assert not leaks(text, solution), f"{exercise_id}: the first {what} gives the command away: {text}"
    finally:
        exercises.reset_exercise(exercise)
