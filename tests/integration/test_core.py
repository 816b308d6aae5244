"""labkit's core against the real daemon: sh, labels, reset, waits, doctor."""

from __future__ import annotations

import subprocess
import sys

import docker.errors
import pytest

from labkit.core import engine, wait
from labkit.core.cleanup import remove_labelled
from labkit.core.errors import CommandFailed, ImageMissing, PortInUse, WaitTimeout
from labkit.core.shell import sh
from labkit.exercises.machinery.reset import reset

pytestmark = pytest.mark.docker


def test_sh_runs_the_real_cli_and_labels_what_it_creates(docker_client: object) -> None:
    name = "lk-test-sh-labels"
    try:
        sh(f"docker run --name {name} busybox echo from-a-container", quiet=True, lesson="test")
        container = docker_client.containers.get(name)  # type: ignore[attr-defined]
        assert container.labels[engine.LABEL_SESSION] == engine.session_id()
        assert container.labels[engine.LABEL_LESSON] == "test"
        assert container.logs() == b"from-a-container\n"
    finally:
        sh(f"docker rm -f {name}", quiet=True, expect=None)


def test_sh_fails_on_a_docker_error_and_accepts_a_declared_one(docker_client: object) -> None:
    with pytest.raises(CommandFailed) as info:
        sh("docker run --rm busybox sh -c 'echo bad >&2; exit 3'", quiet=True)
    assert info.value.returncode == 3 and info.value.exit_code == 2 and "bad" in str(info.value)
    assert sh("docker run --rm busybox sh -c 'exit 3'", expect=3, quiet=True).exit_code == 3
    assert sh("docker run --rm no-such-image-labkit-test", expect=125, quiet=True).exit_code == 125


def test_an_image_that_cannot_be_pulled_says_how_to_get_it(docker_client: object) -> None:
    with pytest.raises(ImageMissing) as info:
        sh("docker run --rm no-such-image-labkit-test", quiet=True)
    assert "no-such-image-labkit-test" in str(info.value) and "labkit images ensure" in str(info.value)


def test_a_taken_port_names_its_holder(docker_client: object) -> None:
    name = "lk-test-port-holder"
    sh(f"docker run -d --name {name} -p 127.0.0.1:18089:80 busybox sleep 60", quiet=True, lesson="test")
    try:
        with pytest.raises(PortInUse) as info:
            sh("docker run --rm -p 127.0.0.1:18089:80 busybox true", quiet=True, lesson="test")
        assert info.value.port == 18089 and name in str(info.value)
    finally:
        sh(f"docker rm -f {name}", quiet=True)


def test_reset_removes_labelled_containers_networks_and_volumes(docker_client: object) -> None:
    session = f"{engine.session_id()}-reset"
    mine = {**engine.labels("test"), engine.LABEL_SESSION: session}
    c = docker_client.containers.create("busybox", "true", labels=mine)  # type: ignore[attr-defined]
    n = docker_client.networks.create("lk-test-net", labels=mine)  # type: ignore[attr-defined]
    v = docker_client.volumes.create("lk-test-vol", labels=mine)  # type: ignore[attr-defined]
    report = remove_labelled(session=session)
    assert (report.containers, report.networks, report.volumes) == (1, 1, 1)
    for getter, ident in (
        (docker_client.containers, c.id),
        (docker_client.networks, n.id),
        (docker_client.volumes, v.id),
    ):  # type: ignore[attr-defined]
        with pytest.raises(docker.errors.NotFound):
            getter.get(ident)
    assert str(remove_labelled(session=session)) == "nothing to remove: the lab is clean"


def test_reset_by_lesson_leaves_other_lessons_alone(docker_client: object) -> None:
    keep = docker_client.containers.create("busybox", "true", labels=engine.labels("test-keep"))  # type: ignore[attr-defined]
    try:
        docker_client.containers.create("busybox", "true", labels=engine.labels("test-drop"))  # type: ignore[attr-defined]
        assert reset(lesson="test-drop").containers == 1
        keep.reload()
    finally:
        keep.remove(force=True)


def test_waits_have_deadlines_and_say_what_they_saw(docker_client: object, tracked: list[object]) -> None:
    c = docker_client.containers.run(  # type: ignore[attr-defined]
        "busybox", ["sh", "-c", "echo booting; echo ready; exec sleep 60"], detach=True, labels=engine.labels("test")
    )
    tracked.append(c)
    wait.container_running(c, timeout=10)
    wait.log_line(c, "ready", timeout=10)
    with pytest.raises(WaitTimeout) as info:
        wait.log_line(c, "never printed", timeout=0.3)
    assert "never printed" in str(info.value)
    stopped = docker_client.containers.run("busybox", "true", detach=True, labels=engine.labels("test"))  # type: ignore[attr-defined]
    tracked.append(stopped)
    stopped.wait(timeout=10)
    with pytest.raises(WaitTimeout) as info:
        wait.container_running(stopped, timeout=0.3)
    assert "status exited" in str(info.value)


def test_doctor_says_ready(docker_client: object) -> None:
    proc = subprocess.run([sys.executable, "-m", "labkit", "doctor"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ready for the lab" in proc.stdout
    assert "Docker daemon" in proc.stdout and "Lesson images" in proc.stdout
