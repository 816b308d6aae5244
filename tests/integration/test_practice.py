"""kill.now, start.again, restart.web (06), ls.all (07), attach.detach (08) and load.back (10) on the real daemon.

Each named near-miss, typed as the real commands a learner would type (the full cycle
through the CLI, for every exercise, is tests/integration/test_exercises.py). Only these exercises are reset, never a whole lesson: other runs share the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit import exercises
from labkit.core import engine
from labkit.core.interactive import interactive
from labkit.core.shell import sh

pytestmark = pytest.mark.docker

IDS = ("kill.now", "start.again", "restart.web", "ls.all", "attach.detach", "load.back")


def _sh(command: str, lesson: str = "06") -> str:
    return sh(command, quiet=True, lesson=lesson).output


def _reset() -> None:
    for exercise_id in IDS:
        exercises.reset_exercise(exercises.get(exercise_id))


@pytest.fixture(autouse=True)
def clean(docker_client: object) -> Iterator[None]:
    _reset()
    yield
    _reset()
    for lesson in ("06", "07", "08", "10"):
        left = docker_client.containers.list(all=True, filters={"label": f"labkit.lesson={lesson}"})  # type: ignore[attr-defined]
        mine = [c for c in left if c.labels.get(engine.LABEL_SESSION) == engine.session_id()]
        for container in mine:
            container.remove(force=True)
        assert not [c.name for c in mine], f"lesson {lesson} left containers behind"


def _not_yet(exercise_id: str, in_message: str, in_hint: str = "", answer: str | None = None) -> exercises.CheckResult:
    result = exercises.check(exercise_id, answer=answer)
    assert not result.passed, result
    assert in_message in result.message, result
    assert result.hint and in_hint in result.hint, result
    return result


def _passes(exercise_id: str, in_message: str = "", answer: str | None = None) -> None:
    result = exercises.check(exercise_id, answer=answer)
    assert result.passed, result
    assert in_message in result.message, result


# --- kill.now ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["docker kill holdout", "docker container kill -s KILL holdout", "docker kill --signal 9 holdout"]
)
def test_kill_accepts_every_spelling(command: str) -> None:
    exercises.setup("kill.now")
    _sh(command)
    _passes("kill.now", "killed")


def test_kill_near_miss_docker_stop_is_named_with_its_wait() -> None:
    exercises.setup("kill.now")
    _sh("docker stop holdout")  # SIGTERM is ignored: the whole 10 s grace period, then SIGKILL
    result = _not_yet("kill.now", "`docker stop` sent SIGTERM, which it ignores, waited 10 s")
    assert result.evidence["exit_code"] == 137


def test_kill_near_miss_sigterm_and_rm_f() -> None:
    exercises.setup("kill.now")
    _sh("docker kill -s TERM holdout")
    _not_yet("kill.now", "still running: it was sent signal 15")
    _sh("docker rm -f holdout")
    _not_yet("kill.now", "killed and removed (that is `docker rm -f`)")


# --- start.again ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["docker start napper", "docker container start napper", "docker restart napper"])
def test_start_accepts_start_and_restart(command: str) -> None:
    exercises.setup("start.again")
    _sh(command)
    _passes("start.again", "the same container")


def test_start_near_miss_a_new_container_from_the_same_image() -> None:
    exercises.setup("start.again")
    try:
        _sh("docker run -d --name napper-2 busybox sleep 600")
        _not_yet("start.again", "You made napper-2 from the same image instead")
    finally:
        _sh("docker rm -f napper-2")


def test_start_near_miss_removed_and_run_again() -> None:
    exercises.setup("start.again")
    _sh("docker rm napper")
    _sh("docker run -d --name napper busybox sleep 600")
    _not_yet("start.again", "napper is a new container, not the one setup stopped")


# --- restart.web ------------------------------------------------------------------------


def test_restart_accepts_stop_then_start() -> None:
    exercises.setup("restart.web")
    _sh("docker stop webby")
    _not_yet("restart.web", "first half of a restart")
    _sh("docker start webby")
    _passes("restart.web", "That is exactly what `docker restart` does")


def test_restart_near_misses_kill_and_pause() -> None:
    exercises.setup("restart.web")
    _sh("docker pause webby")
    _sh("docker unpause webby")
    _not_yet("restart.web", "paused and unpaused")
    _sh("docker kill webby")
    _sh("docker start webby")
    _not_yet("restart.web", "killed (SIGKILL, no SIGTERM first)")


def test_restart_near_miss_a_new_webby() -> None:
    exercises.setup("restart.web")
    _sh("docker rm -f webby")
    _sh("docker run -d --name webby labkit/hello-dock")
    _not_yet("restart.web", "new container, not the one setup started")


# --- ls.all -----------------------------------------------------------------------------


def test_ls_answer_read_from_ls_a_passes_and_a_running_name_is_named() -> None:
    exercises.setup("ls.all")
    running = _sh("docker container ls --filter name=shelf- --format '{{.Names}}'", "07").split()
    assert len(running) == 3
    _not_yet("ls.all", f"{running[0]} is running: `docker container ls` already lists it", answer=running[0])
    every = _sh("docker container ls -a --filter name=shelf- --format '{{.Names}}'", "07").split()
    (hidden,) = set(every) - set(running)
    _passes("ls.all", hidden, answer=hidden)


# --- attach.detach ----------------------------------------------------------------------


def test_attach_near_miss_exit_stops_it() -> None:
    exercises.setup("attach.detach")
    with interactive("docker attach hangout", lesson="08", show=False, timeout=20) as term:
        term.exit()
    _not_yet("attach.detach", "its main shell ended")


def test_attach_near_miss_exec_is_not_attach() -> None:
    exercises.setup("attach.detach")
    with interactive("docker exec -it hangout sh", lesson="08", show=False, timeout=20) as term:
        term.exit()
    _not_yet("attach.detach", "You ran `docker exec`")


def test_attach_then_detach_keys_pass_and_it_runs() -> None:
    exercises.setup("attach.detach")
    with interactive("docker attach hangout", lesson="08", show=False, timeout=20) as term:
        assert term.run("echo here") == "here\n"
        term.detach()
    container = engine.find_container("hangout")
    assert container is not None and container.status == "running"
    _passes("attach.detach", "still runs")


# --- load.back --------------------------------------------------------------------------


def _archive() -> str:
    path = str(exercises.setup("load.back")["path"])
    assert Path(path).is_file()
    return path


def test_load_back_with_a_redirect_passes() -> None:
    path = _archive()
    _sh("docker image rm lab/cargo", "10")
    _not_yet("load.back", "first step is done")
    _sh(f"sh -c 'docker load < {path}'", "10")
    _passes("load.back", "same id")


def test_load_near_miss_docker_import_is_a_different_one_layer_image() -> None:
    path = _archive()
    _sh("docker rmi lab/cargo", "10")
    _sh(f"docker import {path} lab/cargo", "10")
    result = _not_yet("load.back", "`docker import` read the save archive as a plain filesystem")
    assert result.evidence["layers"] == 1 and result.evidence["found"] != result.evidence["wanted"]


def test_load_near_miss_loaded_while_still_there() -> None:
    path = _archive()
    _sh(f"docker load -i {path}", "10")
    _not_yet("load.back", "while lab/cargo was still here")
