"""labkit.core.interactive against the real Docker daemon: run -it, attach, exec -it, prune, a REPL.

Every container a test makes carries this process's ``labkit.session`` label and a
lesson label unique to the test; the fixture force-removes them by those labels, so
nothing leaks and no other test's containers are touched. Without a daemon these
tests fail (conftest's ``docker_client``), they never skip.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker.errors
import pytest

from labkit.core import engine, wait
from labkit.core.errors import CommandFailed, CommandNotFound, InteractiveError
from labkit.core.interactive import Terminal, interactive
from labkit.core.shell import sh

pytestmark = pytest.mark.docker

IMAGE = "busybox:latest"
DEBIAN = "debian:bookworm"


def need(image: str) -> None:
    """Wait (with a deadline) for an image: the offline images may be being re-imported."""
    client = engine.client()
    wait.until(lambda: client.images.get(image), f"image {image}", timeout=180, retry_on=(docker.errors.ImageNotFound,))


@dataclass
class Lab:
    """What one test may create: names and a lesson label that are its own."""

    lesson: str

    def name(self, what: str) -> str:
        return f"{self.lesson}-{what}"

    @property
    def filters(self) -> dict[str, list[str]]:
        return {"label": [f"{engine.LABEL_SESSION}={engine.session_id()}", f"{engine.LABEL_LESSON}={self.lesson}"]}

    def term(self, command: str, **kwargs) -> Terminal:
        return interactive(command, lesson=self.lesson, show=False, timeout=20, **kwargs)

    def sh(self, command: str) -> str:
        return sh(command, lesson=self.lesson, quiet=True).output

    def state(self, name: str) -> str | None:
        """The container's status (``running``, ``exited``…), or ``None`` when it is gone."""
        container = engine.find_container(name)
        return None if container is None else container.status

    def await_state(self, name: str, state: str | None) -> None:
        wait.until(
            lambda: self.state(name) == state or None,
            f"{name} to be {state or 'removed'}",
            timeout=15,
            detail=lambda: f"it is {self.state(name) or 'gone'}",
        )

    def mine(self) -> list:
        return engine.client().containers.list(all=True, filters=self.filters)


@pytest.fixture
def lab(docker_client: object) -> Iterator[Lab]:  # docker_client fails the test without a daemon
    need(IMAGE)
    lab = Lab(f"it-{secrets.token_hex(3)}")
    yield lab
    for container in lab.mine():
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:  # 409: --rm's own removal is under way
            if e.status_code != 409:
                raise
    wait.until(lambda: not lab.mine(), f"containers of {lab.lesson} to be removed", timeout=15)


def test_run_it_shell_round_trip_and_exit_stops_the_container(lab):
    name = lab.name("run")
    command = f"docker run -it --name {name} {IMAGE.split(':')[0]} sh"
    started = time.monotonic()
    with lab.term(command) as term:
        assert term.run("uname -s") == "Linux\n"
        assert term.run("echo $((6 * 7)) from $(cat /proc/1/comm)") == "42 from sh\n"
        assert term.run("cd /tmp; ls /nonexistent", expect=1).startswith("ls: /nonexistent:")
        container = engine.find_container(name)
        assert container is not None and container.status == "running"
        assert container.labels[engine.LABEL_SESSION] == engine.session_id()
        assert container.labels[engine.LABEL_LESSON] == lab.lesson
        assert container.labels["labkit.interactive"].startswith(f"{engine.session_id()}-")  # in the labkit.* namespace
        assert term.exit("exit 0") == 0
    assert time.monotonic() - started < 10
    lab.await_state(name, "exited")  # `exit` ended PID 1, so the container stopped
    assert term.transcript.startswith(f"$ {command}\n")  # as typed: labels are not shown
    assert "/ # uname -s\nLinux\n" in term.transcript
    assert "/tmp # exit 0\n" in term.transcript
    for leak in ("--label", "lk-", "PS1", "stty", "\x1b", "\r"):
        assert leak not in term.transcript


def test_bash_with_readline_gives_the_same_clean_transcript(lab):
    need(DEBIAN)
    command = f"docker run --rm -it --name {lab.name('bash')} {DEBIAN} bash"
    with lab.term(command) as term:
        assert term.run("echo $((6 * 7)); cd /tmp") == "42\n"
        assert term.run("ls /nope", expect=2) == "ls: cannot access '/nope': No such file or directory\n"
        assert term.run("for i in 1 2; do\n  echo $i\ndone") == "1\n2\n"
        assert term.exit("exit 0") == 0
    assert term.transcript == (
        f"$ {command}\n"
        "/ # echo $((6 * 7)); cd /tmp\n42\n"
        "/tmp # ls /nope\nls: cannot access '/nope': No such file or directory\n"
        "/tmp # for i in 1 2; do\n  echo $i\ndone\n1\n2\n"
        "/tmp # exit 0\nexit\n"  # bash itself prints "exit"
    )


def test_a_non_root_shell_gets_a_dollar_prompt(lab):
    with lab.term(f"docker run --rm -it -u 1000 --name {lab.name('user')} busybox sh") as term:
        assert term.run("id -u") == "1000\n"
        term.exit()
    assert term.transcript.endswith("/ $ id -u\n1000\n/ $ exit\n")


def test_rm_container_is_removed_after_exit(lab):
    name = lab.name("rm")
    with lab.term(f"docker run --rm -it --name {name} busybox sh") as term:
        assert term.run("hostname") == f"{engine.find_container(name).id[:12]}\n"
        term.exit()
    lab.await_state(name, None)


def test_attach_exit_stops_but_exec_exit_keeps_it_running(lab):
    name = lab.name("both")
    lab.sh(f"docker run -dit --name {name} busybox sh")
    with lab.term(f"docker exec -it {name} sh") as term:
        assert term.run("echo in exec") == "in exec\n"
        assert term.exit() == 0
    assert lab.state(name) == "running"  # exec started a second shell; PID 1 lives on
    with lab.term(f"docker attach {name}") as term:
        assert term.run("cat /proc/self/stat | cut -d' ' -f4") == "1\n"  # its parent is PID 1: we are in it
        assert term.exit() == 0
    lab.await_state(name, "exited")  # attach typed into PID 1: exit stopped the container
    assert term.transcript == f"$ docker attach {name}\n/ # cat /proc/self/stat | cut -d' ' -f4\n1\n/ # exit\n"


def test_detach_keys_leave_it_running_and_attach_again_works(lab):
    name = lab.name("detach")
    lab.sh(f"docker run -dit --name {name} busybox sh")
    with lab.term(f"docker attach {name}") as term:
        term.run("touch /detached")
        term.detach()
    assert "read escape sequence" in term.transcript
    assert lab.state(name) == "running"
    with lab.term(f"docker attach {name}") as term:
        assert term.run("ls /detached") == "/detached\n"
        term.exit()
    lab.await_state(name, "exited")


def test_prune_is_answered_through_its_prompt(lab):
    ids = [lab.sh(f"docker create --name {lab.name(str(i))} busybox true").strip() for i in range(2)]
    keep = lab.name("running")
    lab.sh(f"docker run -d --name {keep} busybox sleep 300")
    # only this test's containers: prune removes every stopped container it matches
    labels = " ".join(f"--filter label={value}" for value in lab.filters["label"])
    with lab.term(f"docker container prune {labels}") as term:
        term.expect(r"\[y/N\] ")
        term.sendline("y")
        assert term.wait_exit() == 0
    assert "Are you sure you want to continue? [y/N] y\n" in term.transcript
    assert "Deleted Containers:" in term.transcript
    assert all(container_id in term.transcript for container_id in ids)
    assert [c.name for c in lab.mine()] == [keep]


def test_prune_answered_no_removes_nothing(lab):
    lab.sh(f"docker create --name {lab.name('kept')} busybox true")
    labels = " ".join(f"--filter label={value}" for value in lab.filters["label"])
    with lab.term(f"docker container prune {labels}") as term:
        term.expect(r"\[y/N\] ")
        term.sendline("N")
        term.wait_exit(expect=None)
    assert len(lab.mine()) == 1


def test_a_repl_in_prompt_mode(lab):
    # busybox has no python: an interactive sh with its own prompt is the REPL
    command = "docker run --rm -it -e 'PS1=repl> ' busybox sh -i"
    with lab.term(command, prompt=r"repl> ") as term:
        assert not term.shell
        assert term.run("echo hello") == "hello\n"
        assert term.run("echo $((1 + 2))") == "3\n"
        assert term.exit() == 0
    text = term.transcript
    assert text.endswith("repl> echo hello\nhello\nrepl> echo $((1 + 2))\n3\nrepl> exit\n")
    assert text.split("\n", 1)[1].count("repl> ") == 3  # a redraw after docker's resize is no second prompt


def test_leaving_without_exit_ends_the_cli_and_the_container_runs_on(lab):
    name = lab.name("left")
    started = time.monotonic()
    with lab.term(f"docker run -it --name {name} busybox sh") as term:
        term.run("true")
        pid = term.pid
    assert time.monotonic() - started < 5  # the CLI ignores SIGHUP: it is killed at once
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert lab.state(name) == "running"  # as after closing a terminal window


def test_a_failing_block_removes_the_container_it_started(lab):
    name = lab.name("fails")
    with (
        pytest.raises(CommandFailed, match="`false` exited with 1"),
        lab.term(f"docker run -it --name {name} busybox sh") as term,
    ):
        term.run("false")
    lab.await_state(name, None)


def test_unknown_container_is_a_readable_error(lab):
    with pytest.raises(InteractiveError, match="No such container"):
        lab.term(f"docker exec -it {lab.name('absent')} sh")


def test_program_missing_in_the_image_is_command_not_found(lab):
    with pytest.raises(CommandNotFound, match="`bash`"):
        lab.term(f"docker run --rm -it --name {lab.name('nobash')} busybox bash")
