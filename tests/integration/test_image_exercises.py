"""images.list, images.prune and images.pull-rmi against the real daemon and the course's registry.

Each test sets its exercise up through the CLI, types real docker commands, and checks through
the CLI in a subprocess, as a learner in a terminal would. Only what the exercises make is
touched (images labelled with their id, ``localhost:5000/lab03/pull-me``); the course's images
are compared before and after every test and must not change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from labkit import exercises
from labkit.core.shell import sh
from labkit.features import images

pytestmark = pytest.mark.docker

IDS = ("images.list", "images.prune", "images.pull-rmi")
PULL = "localhost:5000/lab03/pull-me"


def _labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=300)


def _check(exercise_id: str, *answer: str) -> tuple[int, dict[str, object]]:
    ran = _labkit("check", exercise_id, "--json", *(("--answer", answer[0]) if answer else ()))
    assert ran.returncode in (0, 1), ran.stderr
    return ran.returncode, json.loads(ran.stdout)


def _setup(exercise_id: str) -> dict[str, object]:
    ran = _labkit("exercise", "setup", exercise_id, "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    info: dict[str, object] = json.loads(ran.stdout)
    return info


def _course() -> dict[str, str | None]:
    return {state.name: state.image_id for state in images.status()}


@pytest.fixture(autouse=True)
def untouched_course(docker_client: object) -> Iterator[None]:
    """Every test leaves the course's images exactly as it found them, and its exercises reset."""
    before = _course()
    yield
    for exercise_id in IDS:
        exercises.reset_exercise(exercises.get(exercise_id))
    assert _course() == before, "a course image changed"
    leftover = [i.id for e in IDS for i in docker_client.images.list(filters={"label": f"labkit.exercise={e}"})]  # type: ignore[attr-defined]
    assert not leftover, f"the exercises' images were left behind: {leftover}"


@pytest.mark.parametrize("exercise_id", IDS)
def test_setup_is_not_yet_with_a_hint_that_does_not_give_the_command_then_solve_passes(exercise_id: str) -> None:
    _setup(exercise_id)
    code, verdict = _check(exercise_id)
    assert code == 1, verdict
    shown = f"{verdict['message']} {verdict['hint']}"
    assert verdict["hint"]
    for command in exercises.solution(exercise_id).splitlines():
        assert command not in shown, f"the first not yet gives the answer: {shown}"
    solved = _labkit("exercise", "solve", exercise_id)
    assert solved.returncode == 0, solved.stdout + solved.stderr
    code, verdict = _check(exercise_id)
    assert code == 0, verdict


def test_exercise_list_shows_them() -> None:
    listed = _labkit("exercise", "list").stdout
    for exercise_id in IDS:
        assert exercise_id in listed


# --- images.list ------------------------------------------------------------------------------


class TestList:
    @pytest.fixture(autouse=True)
    def _ids(self) -> None:
        _setup("images.list")
        self.v1 = sh("docker image inspect -f '{{.Id}}' lab/inventory:v1", quiet=True).output.strip()
        self.v2 = sh("docker image inspect -f '{{.Id}}' lab/inventory:v2", quiet=True).output.strip()

    def test_the_short_id_as_listed_passes(self) -> None:
        listed = sh("docker image ls --format '{{.Tag}} {{.ID}}' lab/inventory", quiet=True).output.split()
        short = listed[listed.index("v2") + 1]
        assert _check("images.list", short)[0] == 0

    @pytest.mark.parametrize("spelling", ["full", "bare", "upper"])
    def test_every_spelling_of_the_full_id_passes(self, spelling: str) -> None:
        answer = {"full": self.v2, "bare": self.v2.removeprefix("sha256:"), "upper": self.v2.upper()}[spelling]
        assert _check("images.list", answer)[0] == 0

    def test_the_other_tags_id_is_named(self) -> None:
        code, verdict = _check("images.list", self.v1.removeprefix("sha256:")[:12])
        assert code == 1 and "lab/inventory:v1: the right repository, but another tag" in str(verdict["message"])

    def test_the_size_is_named(self) -> None:
        size = sh("docker image ls --format '{{.Size}}' lab/inventory:v2", quiet=True).output.strip()
        code, verdict = _check("images.list", size)
        assert code == 1 and "SIZE column" in str(verdict["message"])

    def test_the_base_images_id_is_named(self) -> None:
        busybox = sh("docker image inspect -f '{{.Id}}' busybox", quiet=True).output.strip()
        code, verdict = _check("images.list", busybox[7:19])
        assert code == 1 and "not of lab/inventory:v2" in str(verdict["message"])

    def test_a_recorded_answer_is_checked_again_without_one(self) -> None:
        _check("images.list", self.v2[7:19])
        assert _check("images.list")[0] == 0


# --- images.prune -----------------------------------------------------------------------------


def _dangling() -> list[str]:
    return sh(
        "docker image ls -q --no-trunc --filter dangling=true --filter label=labkit.exercise=images.prune", quiet=True
    ).output.split()


class TestPrune:
    @pytest.fixture(autouse=True)
    def _made(self) -> None:
        _setup("images.prune")
        assert len(_dangling()) == 3

    def test_prune_answered_y_passes(self) -> None:
        sh("docker image prune --filter label=labkit.lesson=02", quiet=True, input="y\n")
        assert _check("images.prune")[0] == 0
        assert sh("docker image inspect lab/kept:v1", quiet=True, expect=0).ok

    def test_prune_in_a_cell_without_f_removes_nothing(self) -> None:
        # No terminal to answer y/N: docker reads end of input as "no".
        sh("docker image prune --filter label=labkit.lesson=02", quiet=True, input="")
        code, verdict = _check("images.prune")
        assert code == 1 and "are all still here" in str(verdict["message"])

    def test_rmi_of_each_by_id_passes(self) -> None:
        sh(f"docker rmi {' '.join(_dangling())}", quiet=True)
        assert _check("images.prune")[0] == 0

    def test_some_left_are_named(self) -> None:
        sh(f"docker rmi {_dangling()[0]}", quiet=True)
        code, verdict = _check("images.prune")
        assert code == 1 and "2 of the 3 dangling images setup made are still here" in str(verdict["message"])

    def test_prune_all_takes_the_named_image_too(self) -> None:
        # -a with the exercise's own label: what `prune -a` does, kept to this exercise on a shared daemon.
        sh("docker image prune -a -f --filter label=labkit.exercise=images.prune", quiet=True)
        code, verdict = _check("images.prune")
        assert code == 1 and "lab/kept:v1 is gone too" in str(verdict["message"])
        assert "-a" in str(verdict["hint"])


# --- images.pull-rmi --------------------------------------------------------------------------


class TestPullRmi:
    @pytest.fixture(autouse=True)
    def _pushed(self) -> Iterator[None]:
        _setup("images.pull-rmi")
        yield
        sh("docker rmi lab/spare:v2", quiet=True, expect=None)

    def test_image_rm_and_pull_by_the_other_address_pass(self) -> None:
        sh(f"docker image rm {PULL}:v2", quiet=True)
        sh("docker pull 127.0.0.1:5000/lab03/pull-me:v2", quiet=True)
        assert _check("images.pull-rmi")[0] == 0

    def test_removed_but_not_pulled_back(self) -> None:
        sh(f"docker rmi {PULL}:v2", quiet=True)
        code, verdict = _check("images.pull-rmi")
        assert code == 1 and "gone from this daemon: removed" in str(verdict["message"])

    def test_pulled_without_removing(self) -> None:
        out = sh(f"docker pull {PULL}:v2", quiet=True).output
        assert "Image is up to date" in out
        code, verdict = _check("images.pull-rmi")
        assert code == 1 and "never removed first" in str(verdict["message"])

    def test_wrong_tag(self) -> None:
        sh(f"docker rmi {PULL}:v1", quiet=True)
        sh(f"docker pull {PULL}:v1", quiet=True)
        code, verdict = _check("images.pull-rmi")
        assert code == 1 and "You worked on :v1" in str(verdict["message"])

    def test_a_pull_without_a_tag_fails_and_the_check_says_it_is_still_gone(self) -> None:
        sh(f"docker rmi {PULL}:v2", quiet=True)
        failed = sh(f"docker pull {PULL}", quiet=True, expect=None)
        assert failed.exit_code != 0 and "latest" in failed.output
        code, verdict = _check("images.pull-rmi")
        assert code == 1 and "gone from this daemon" in str(verdict["message"])

    def test_rmi_that_only_untags(self) -> None:
        sh(f"docker tag {PULL}:v2 lab/spare:v2", quiet=True)
        sh(f"docker rmi {PULL}:v2", quiet=True)
        sh(f"docker pull {PULL}:v2", quiet=True)
        code, verdict = _check("images.pull-rmi")
        assert code == 1 and "only took a name away" in str(verdict["message"])
        assert "lab/spare:v2" in str(verdict["message"])
