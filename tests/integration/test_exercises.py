"""Every exercise against the real daemon: not passed after reset and setup, passed after solve."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labkit import exercises
from labkit.exercises import all_exercises

pytestmark = pytest.mark.docker


def _labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("exercise_id", [e.id for e in all_exercises()])
def test_setup_is_not_yet_and_solve_passes(exercise_id: str, docker_client: object) -> None:
    """What an instructor types: reset, setup, check (1, with a hint), solve, check (0)."""
    exercise = exercises.get(exercise_id)
    try:
        assert _labkit("reset", "--lesson", exercise.lesson).returncode == 0
        setup = _labkit("exercise", "setup", exercise_id, "--json")
        assert setup.returncode == 0, setup.stderr
        assert json.loads(setup.stdout)["exercise"] == exercise_id
        before = _labkit("check", exercise_id, "--json")
        verdict = json.loads(before.stdout)
        assert before.returncode == 1, f"{exercise_id} passes with no work: {verdict}"
        assert verdict["hint"], f"{exercise_id} gives no hint when not passed"
        if exercise.solution:  # answer exercises have none to leak
            solution = exercise.solution[0].split("{")[0].strip()
            assert solution not in verdict["message"] + verdict["hint"], verdict  # the first "not yet" teaches
        solved = _labkit("exercise", "solve", exercise_id)
        assert solved.returncode == 0, (
            f"{exercise_id} fails after its reference solution: {solved.stdout}{solved.stderr}"
        )
        again = _labkit("check", exercise_id)
        assert again.returncode == 0, again.stdout  # and stays passed when checked again
    finally:
        exercises.reset_exercise(exercise)


def test_cli_check_exit_codes_follow_reset_and_solve(docker_client: object) -> None:
    # Lesson 00 only: a bare reset would remove what parallel runs on this daemon created.
    assert _labkit("reset", "--lesson", "00").returncode == 0
    not_yet = _labkit("check", "welcome.first-container")
    assert not_yet.returncode == 1, not_yet.stdout + not_yet.stderr
    assert "not yet" in not_yet.stdout
    solved = _labkit("exercise", "solve", "welcome.first-container")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    passed = _labkit("check", "welcome.first-container", "--json")
    assert passed.returncode == 0 and '"passed": true' in passed.stdout
    assert _labkit("reset", "--lesson", "00").returncode == 0
    assert _labkit("check", "welcome.first-container").returncode == 1


class TestFirstContainerNearMisses:
    """welcome.first-container names what it found instead of a container that ran hello-world."""

    @pytest.fixture(autouse=True)
    def _clean(self, docker_client: object) -> object:
        exercises.reset_exercise(exercises.get("welcome.first-container"))
        yield
        exercises.reset_exercise(exercises.get("welcome.first-container"))

    def test_created_but_never_started(self, tracked: list[object], docker_client: object) -> None:
        from labkit.core import engine

        tracked.append(docker_client.containers.create("hello-world", labels=engine.labels("test")))  # type: ignore[attr-defined]
        result = exercises.check("welcome.first-container")
        assert not result.passed
        assert "created but never started" in result.message and "docker start" in (result.hint or "")

    def test_another_image_does_not_count(self, docker_client: object) -> None:
        from labkit.core.shell import sh

        sh("docker run --rm busybox true", quiet=True, lesson="test")
        sh("docker run --name lk-test-not-hello busybox true", quiet=True, lesson="test")
        try:
            result = exercises.check("welcome.first-container")
            assert not result.passed and "No container made from hello-world" in result.message
        finally:
            sh("docker rm -f lk-test-not-hello", quiet=True)

    def test_any_spelling_of_the_image_counts(self, docker_client: object) -> None:
        from labkit.core.shell import sh

        sh("docker container run docker.io/library/hello-world:latest", quiet=True, lesson="test")
        assert exercises.check("welcome.first-container").passed
