"""Lesson 05 against the real daemon: every variant a learner types passes, every near-miss is named.

Each test types real docker commands (``labkit.sh``, labelled for lesson 05), then
checks. Host port 8080 is this lesson's alone; other ports here are random
(``-P``, ``127.0.0.1::80``), never 8081 (lesson 07) or 8888 (JupyterLab).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator

import docker.errors
import pytest

from labkit import exercises
from labkit.core import engine, wait
from labkit.core.shell import sh
from labkit.exercises import lesson05_running_containers as running

pytestmark = pytest.mark.docker

NAME = running.NAME
RENAMED = running.RENAMED
IMAGE = running.IMAGE
#: Extra containers the tests make carry this prefix and are removed after each test.
EXTRA = "lab05-t-"


def _run(command: str, expect: int | None = 0) -> str:
    return sh(command, expect=expect, quiet=True, lesson=running.LESSON).output


def _remove_mine() -> None:
    """This run's lesson-05 containers only: other sessions' (a notebook, another engineer's tests) stay."""
    client = engine.client()
    labels = [f"{engine.LABEL_SESSION}={engine.session_id()}", f"{engine.LABEL_LESSON}={running.LESSON}"]
    for container in client.containers.list(all=True, filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):  # already going is fine
            container.remove(force=True)


@pytest.fixture(autouse=True)
def clean(docker_client: object) -> Iterator[None]:
    for exercise in (running.PUBLISH_DETACH, running.RENAME):
        exercises.reset_exercise(exercise)
    _remove_mine()
    yield
    for exercise in (running.PUBLISH_DETACH, running.RENAME):
        exercises.reset_exercise(exercise)
    _remove_mine()


def _check(exercise_id: str = "run.publish-detach") -> exercises.CheckResult:
    return exercises.check(exercise_id)


# --- run.publish-detach: what a learner types ------------------------------------------------

PASSING = [
    f"docker run -d -p 8080:80 --name {NAME} {IMAGE}",
    f"docker container run --publish 8080:80 --detach --name {NAME} {IMAGE}",
    f"docker run --publish=8080:80 --name={NAME} --detach {IMAGE}",
    f"docker run -p 127.0.0.1:8080:80 -d --name {NAME} {IMAGE}",
    f"docker run -p 0.0.0.0:8080:80 --detach --name {NAME} {IMAGE}",
    f"docker run -dp 8080:80 --name {NAME} {IMAGE}",
    f"docker run --rm --name {NAME} -d -p 8080:80 {IMAGE}:latest",
    f"docker container run --detach --name {NAME} --publish 8080:80/tcp docker.io/{IMAGE}",
    f"docker container create --publish 8080:80 --name {NAME} {IMAGE} && docker container start {NAME}",
]


@pytest.mark.parametrize("command", PASSING)
def test_publish_detach_accepts(command: str) -> None:
    _run(command)
    result = _check()
    assert result.passed, f"{command}: {result}"
    assert result.evidence["ports"] == "80/tcp → host port 8080" and result.evidence["http"] == 200


def test_nothing_yet_is_not_yet_with_a_hint() -> None:
    result = _check()
    assert not result.passed and f"no container named {NAME} yet" in result.message
    assert "Which option does each?" in (result.hint or "") and "--publish" not in (result.hint or "")


def test_wrong_image() -> None:
    _run(f"docker run -d -p 8080:80 --name {NAME} busybox httpd -f -p 80")
    result = _check()
    assert not result.passed and result.message == f"{NAME} runs busybox, not {IMAGE}."
    assert f"docker rm -f {NAME}" in (result.hint or "")


def test_created_never_started() -> None:
    _run(f"docker create -p 8080:80 --name {NAME} {IMAGE}")
    result = _check()
    assert not result.passed and "created but never started" in result.message
    assert f"docker start {NAME}" in (result.hint or "")


def test_run_in_the_foreground_then_interrupted() -> None:
    """What Ctrl-C does to a foreground `docker run`: the CLI passes the signal on and the server exits."""
    argv = ["docker", "run", *_label_args(), "-p", "8080:80", "--name", NAME, IMAGE]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait.http_ok(running.URL)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = _check()
    assert not result.passed and "has stopped (exited with code 0)" in result.message
    assert "--detach" in (result.hint or "") and f"docker start {NAME}" in (result.hint or "")


def test_stopped_with_wrong_ports_says_run_again() -> None:
    _run(f"docker run -d -p 127.0.0.1::80 --name {NAME} {IMAGE}")
    _run(f"docker stop -t 1 {NAME}")
    result = _check()
    assert not result.passed and "has stopped" in result.message
    assert "ports are wrong too" in (result.hint or "") and f"docker rm {NAME}" in (result.hint or "")
    assert running.RUN_COMMAND not in (result.hint or "")


def test_running_without_a_port() -> None:
    _run(f"docker run -d --name {NAME} {IMAGE}")
    result = _check()
    assert not result.passed and "publishes no port" in result.message
    assert "Without --publish (-p)" in (result.hint or "") and "8080:80" not in (result.hint or "")


def test_published_on_another_host_port() -> None:
    _run(f"docker run -d -p 127.0.0.1::80 --name {NAME} {IMAGE}")
    port = engine.client().containers.get(NAME).ports["80/tcp"][0]["HostPort"]
    result = _check()
    assert (
        not result.passed and result.message == f"{NAME} publishes port 80 on host port {port}, not on host port 8080."
    )
    assert "first number of --publish is the host port" in (result.hint or "")


def test_publish_all_picks_a_random_port() -> None:
    _run(f"docker run -d -P --name {NAME} {IMAGE}")
    result = _check()
    assert not result.passed and "picked at random (--publish-all / -P)" in result.message


def test_host_port_mapped_to_the_wrong_container_port() -> None:
    _run(f"docker run -d -p 8080:8080 --name {NAME} {IMAGE}")
    result = _check()
    assert not result.passed
    assert (
        result.message
        == f"Host port 8080 forwards to port 8080/tcp inside {NAME}, but the web server listens on port 80."
    )
    assert "HOST:CONTAINER" in (result.hint or "")


def test_port_taken_by_another_container_is_named() -> None:
    holder = f"{EXTRA}holder"
    _run(f"docker run -d -p 8080:80 --name {holder} busybox httpd -f -p 80")
    out = _run(f"docker run -d -p 8080:80 --name {NAME} {IMAGE}", expect=125)
    assert "port is already allocated" in out
    result = _check()
    assert not result.passed
    assert f"could not start: host port 8080 is already published by container {holder}" in result.message
    assert f"docker rm -f {holder}" in (result.hint or "") and f"docker start {NAME}" in (result.hint or "")


def test_right_container_without_a_name() -> None:
    _run(f"docker run -d -p 8080:80 {IMAGE}")
    mine = [f"{engine.LABEL_SESSION}={engine.session_id()}", f"{engine.LABEL_LESSON}={running.LESSON}"]
    generated = engine.client().containers.list(filters={"label": mine})[0].name
    result = _check()
    assert not result.passed and f"it is called {generated}, not {NAME}" in result.message
    assert "docker container rename" in (result.hint or "") and generated not in (result.hint or "")


def test_misspelt_name() -> None:
    _run(f"docker run -d -p 8080:80 --name hello-docker-containr {IMAGE}")
    result = _check()
    assert not result.passed and "there is one named hello-docker-containr" in result.message


def test_page_unreachable_on_a_foreign_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running, "PAGE_TIMEOUT", 1.0)  # the wait is the check's; the test needs no more
    _run(f"docker run -d -p 127.0.0.2:8080:80 --name {NAME} {IMAGE}")
    result = _check()
    assert not result.passed and "did not serve the lab's page: no answer" in result.message
    assert "bound to 127.0.0.2 only" in (result.hint or "")


def test_another_page_is_not_the_lab_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running, "PAGE_TIMEOUT", 1.0)  # the wait is the check's; the test needs no more
    _run(f"docker run -d -p 8080:80 --name {NAME} {IMAGE}")
    wait.http_ok(running.URL)  # up first, so the 1 s the check waits below sees the replaced page, not a slow start
    _run(f"docker exec {NAME} sh -c 'echo not the lab page > /www/index.html'")
    result = _check()
    assert not result.passed and "HTTP 200, but with another page" in result.message


def _label_args() -> list[str]:
    args: list[str] = []
    for key, value in engine.labels(running.LESSON).items():
        args += ["--label", f"{key}={value}"]
    return args


# --- run.rename --------------------------------------------------------------------------------


@pytest.fixture
def started() -> dict[str, str]:
    info = exercises.setup("run.rename")
    return {"name": info["container"], "id": info["id"]}


@pytest.mark.parametrize(
    "command",
    [
        "docker container rename {name} " + RENAMED,
        "docker rename {name} " + RENAMED,
        "docker container rename {short} " + RENAMED,
    ],
)
def test_rename_accepts(command: str, started: dict[str, str]) -> None:
    assert not _check("run.rename").passed
    _run(command.format(name=started["name"], short=started["id"][:12]))
    result = _check("run.rename")
    assert result.passed, str(result)
    assert result.evidence["id"] == started["id"][:12]


def test_rename_setup_names_a_generated_name_and_labels_it(started: dict[str, str]) -> None:
    container = engine.client().containers.get(started["id"])
    assert container.name == started["name"] and "_" in started["name"]
    assert container.labels["labkit.exercise"] == "run.rename" and container.labels[engine.LABEL_LESSON] == "05"


def test_rename_before_setup() -> None:
    result = _check("run.rename")
    assert not result.passed and "setup has not run" in result.message


def test_rename_untouched(started: dict[str, str]) -> None:
    result = _check("run.rename")
    assert not result.passed and result.message.endswith(f"still has its generated name {started['name']}.")
    assert "Which `docker container` command" in (result.hint or "") and RENAMED not in (result.hint or "")


def test_a_new_container_under_the_new_name(started: dict[str, str]) -> None:
    _run(f"docker run -d --name {RENAMED} {IMAGE}")
    result = _check("run.rename")
    assert not result.passed and f"{RENAMED} is a new container, not the one setup started" in result.message
    assert f"docker rm -f {RENAMED}" in (result.hint or "") and "renames the existing one" in (result.hint or "")


def test_renamed_with_a_typo(started: dict[str, str]) -> None:
    _run(f"docker rename {started['name']} hello-docker-containr2")
    result = _check("run.rename")
    assert not result.passed and "but to hello-docker-containr2" in result.message
    _run(f"docker rename hello-docker-containr2 {RENAMED}")  # and fixing it passes
    assert _check("run.rename").passed


def test_setup_container_removed_and_replaced(started: dict[str, str]) -> None:
    _run(f"docker rm -f {started['name']}")
    _run(f"docker run -d --name {RENAMED} {IMAGE}")
    result = _check("run.rename")
    assert not result.passed and "is gone, and" in result.message and "new container" in result.message


def test_reset_removes_what_the_learner_made(started: dict[str, str]) -> None:
    _run(f"docker rename {started['name']} {RENAMED}")
    _run(f"docker run -d -p 8080:80 --name {NAME} {IMAGE}")
    from labkit.exercises.machinery.reset import reset

    reset(lesson="05")
    assert running.named(engine.client(), NAME) is None and running.named(engine.client(), RENAMED) is None
