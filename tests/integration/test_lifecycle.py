"""Lessons 06 and 07 against the real daemon: every variant a learner would type passes, every near-miss is named.

stop.graceful is lesson 06's; create.only, rm.stopped and run.auto-remove are lesson 07's
(kill.now, start.again, restart.web and ls.all are in test_practice.py). Each test types
real commands (``sh(..., lesson=...)`` labels what they create with the exercise's lesson)
and checks the live state. Host port 8081 is lesson 07's alone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from labkit import exercises
from labkit.core import engine, wait
from labkit.core.shell import _argv, labelled, sh

pytestmark = pytest.mark.docker

IDS = ("stop.graceful", "create.only", "rm.stopped", "run.auto-remove")


def _sh(command: str, lesson: str = "07") -> str:
    return sh(command, quiet=True, lesson=lesson).output


def _reset() -> None:
    for exercise_id in IDS:
        exercises.reset_exercise(exercises.get(exercise_id))


@pytest.fixture(autouse=True)
def clean(docker_client: object) -> Iterator[None]:
    _reset()
    yield
    _reset()
    for lesson in ("06", "07"):
        left = docker_client.containers.list(all=True, filters={"label": f"labkit.lesson={lesson}"})  # type: ignore[attr-defined]
        assert not [c.name for c in left if c.labels.get(engine.LABEL_SESSION) == engine.session_id()]


def _check(exercise_id: str) -> exercises.CheckResult:
    return exercises.check(exercise_id)


def _not_yet(exercise_id: str, in_message: str, in_hint: str = "") -> exercises.CheckResult:
    result = _check(exercise_id)
    assert not result.passed, result
    assert in_message in result.message, result
    assert result.hint and in_hint in result.hint, result
    return result


# --- stop.graceful --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "docker stop graceful",
        "docker container stop graceful",
        "docker stop --time 30 graceful",
        "docker stop -t 5 $(docker ps -q --filter name=^graceful$)",
        "docker kill --signal TERM graceful",  # SIGTERM by another road: the handler runs all the same
    ],
)
def test_graceful_passes_for_every_way_of_sending_sigterm(command: str) -> None:
    exercises.setup("stop.graceful")
    _not_yet("stop.graceful", "still running", "SIGTERM")
    _sh(command, "06")
    # `kill --signal TERM` returns as soon as the signal is sent; the handler then needs a
    # moment to exit. Until it has, "still running" is the truth, so wait as a learner would.
    _sh("docker wait graceful", "06")
    result = _check("stop.graceful")
    assert result.passed, result
    assert result.evidence["exit_code"] == 143


def test_graceful_kill_gets_its_own_hint() -> None:
    exercises.setup("stop.graceful")
    _sh("docker kill graceful", "06")
    result = _not_yet("stop.graceful", "`docker kill` sent SIGKILL at once", "ask it to stop")
    assert result.evidence["exit_code"] == 137 and result.evidence["signals"] == "9"


def test_graceful_stop_with_no_grace_is_judged_by_what_happened() -> None:
    """`docker stop -t 0` sends SIGTERM and SIGKILL back to back: whichever won decides, honestly."""
    exercises.setup("stop.graceful")
    _sh("docker stop -t 0 graceful", "06")
    container = engine.find_container("graceful")
    result = _check("stop.graceful")
    if container.attrs["State"]["ExitCode"] == 143:  # the handler finished before SIGKILL landed
        assert result.passed and "graceful: got SIGTERM" in container.logs().decode()
    else:
        assert not result.passed and "-t 0" in result.message + (result.hint or ""), result


def test_graceful_restarted_or_removed_or_paused_or_replaced() -> None:
    exercises.setup("stop.graceful")
    _sh("docker restart -t 5 graceful", "06")
    _not_yet("stop.graceful", "started again", "leave it stopped")

    _sh("docker pause graceful", "06")
    _not_yet("stop.graceful", "paused", "docker unpause graceful")

    _sh("docker rm -f graceful", "06")
    _not_yet("stop.graceful", "no container named graceful", 'labkit.setup("stop.graceful")')

    _sh("docker run -d --name graceful busybox sleep 60", "06")
    _not_yet("stop.graceful", "not the one setup started")


# --- create.only ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "docker create --name created-only -p 8081:80 labkit/hello-dock",
        "docker container create --publish 8081:80 --name created-only labkit/hello-dock",
        "docker create -p 127.0.0.1:8081:80/tcp --name=created-only labkit/hello-dock:latest",
    ],
)
def test_create_only_accepts_every_spelling(command: str) -> None:
    _not_yet("create.only", "no container named created-only", "without starting it?")
    _sh(command)
    result = _check("create.only")
    assert result.passed, result


@pytest.mark.parametrize(
    ("command", "message", "hint"),
    [
        ("docker run -d --name created-only -p 8081:80 labkit/hello-dock", "it is running", "create + start"),
        (
            (
                "docker create --name created-only -p 8081:80 labkit/hello-dock && docker start created-only"
                " && docker stop created-only"
            ),
            "has run and is now exited",
            "without starting it",
        ),
        ("docker create --name created-only -p 8082:80 labkit/hello-dock", "host port 8082", "host port comes first"),
        (
            "docker create --name created-only -p 80:8081 labkit/hello-dock",
            "container port 8081/tcp",
            "container port comes second",
        ),
        ("docker create --name created-only labkit/hello-dock", "publishes no port", "publishing its port 80"),
        ("docker create --name created-only -P labkit/hello-dock", "random host ports", "wants host port 8081"),
        ("docker create --name created-only -p 8081:80 busybox", "created from busybox", "labkit/hello-dock"),
        (
            "docker create --name created_only -p 8081:80 labkit/hello-dock",
            "but there is created_only",
            "docker rename",
        ),
    ],
)
def test_create_only_names_each_near_miss(command: str, message: str, hint: str) -> None:
    _sh(command)
    try:
        _not_yet("create.only", message, hint)
    finally:
        _sh("docker rm -f created_only 2>/dev/null || true")


# --- rm.stopped -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "docker rm stale-1 stale-2 stale-3",
        "docker container rm stale-3 && docker container rm stale-1 stale-2",
        (
            "docker rm $(docker ps -aq --filter label=labkit.exercise=rm.stopped --filter status=exited"
            " --filter status=created)"
        ),
        "docker container prune --force --filter label=labkit.exercise=rm.stopped",
    ],
)
def test_rm_stopped_accepts_names_ids_and_a_filtered_prune(command: str) -> None:
    info = exercises.setup("rm.stopped")
    assert info["stopped"] == "stale-1 stale-2 stale-3" and info["running"] == "still-running"
    _not_yet("rm.stopped", "3 of the 3 stopped containers still exist", "several names at once")
    _sh(command)
    result = _check("rm.stopped")
    assert result.passed, result


def test_rm_stopped_near_misses() -> None:
    _not_yet("rm.stopped", "have not been made yet", 'labkit.setup("rm.stopped")')
    exercises.setup("rm.stopped")
    _sh("docker rm stale-2")
    _not_yet("rm.stopped", "2 of the 3 stopped containers still exist: stale-1, stale-3", "several names at once")
    _sh("docker stop -t 5 still-running")
    _not_yet("rm.stopped", "still-running is exited", "docker start still-running")
    _sh("docker start still-running")
    _sh("docker rm -f stale-1 stale-3 still-running")
    _not_yet("rm.stopped", "still-running is gone too", "remove only the stopped ones")


# --- run.auto-remove ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "docker run --rm -d --name ephemeral labkit/hello-dock",
        "docker container run -d --rm --name=ephemeral busybox sleep 300",
        "docker run --detach --rm -p 127.0.0.1::80 --name ephemeral labkit/hello-dock",
        "docker run --rm -dit --name ephemeral busybox sh",
        # create + start never attaches, though its config says "attach": the events tell.
        "docker create --rm --name ephemeral labkit/hello-dock && docker start ephemeral",
    ],
)
def test_auto_remove_accepts_every_spelling(command: str) -> None:
    _not_yet("run.auto-remove", "ephemeral", "removes the container once it stops")
    _sh(command)
    result = _check("run.auto-remove")
    assert result.passed, result
    _sh("docker stop -t 1 ephemeral")  # busybox sleep as PID 1 ignores SIGTERM
    wait.until(lambda: engine.find_container("ephemeral") is None, "ephemeral to remove itself", 20)


def test_auto_remove_near_misses() -> None:
    _sh("docker run -d --name ephemeral labkit/hello-dock")
    _not_yet("run.auto-remove", "without --rm", "docker rm -f ephemeral")
    _sh("docker rm -f ephemeral")

    _sh("docker create --rm --name ephemeral labkit/hello-dock")
    _not_yet("run.auto-remove", "only created", "docker start ephemeral")
    _sh("docker rm -f ephemeral")

    _sh("docker run --rm -d --name ephemral labkit/hello-dock")
    try:
        _not_yet("run.auto-remove", "but there is ephemral", "docker rename")
    finally:
        _sh("docker rm -f ephemral")


def test_auto_remove_command_that_ends_at_once() -> None:
    _sh("docker run --rm -d --name ephemeral busybox true")
    wait.until(lambda: engine.find_container("ephemeral") is None, "ephemeral to remove itself", 20)
    _not_yet("run.auto-remove", "removed itself: its command finished at once", "keeps")
    # A reset starts a new attempt: what ended before it is not reported again (a notebook
    # run after this test starts from the plain message).
    exercises.reset_exercise(exercises.get("run.auto-remove"))
    _not_yet("run.auto-remove", "There is no container named ephemeral.")


def test_auto_remove_attached_to_a_terminal() -> None:
    command = labelled("docker run --rm --name ephemeral busybox sleep 300", "07")
    proc = subprocess.Popen(_argv(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait.until(
            lambda: (c := engine.find_container("ephemeral")) is not None and c.status == "running",
            "ephemeral to run",
            20,
        )
        result = _not_yet("run.auto-remove", "attached to a terminal", "in the background")
        assert result.evidence["attached"] is True
    finally:
        proc.kill()
        proc.wait(timeout=10)
