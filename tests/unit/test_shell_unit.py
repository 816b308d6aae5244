"""labkit.sh on ordinary programs: exit codes, streaming, labels, timeouts."""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from pathlib import Path

import pytest

from labkit.core import engine
from labkit.core.errors import (
    CommandFailed,
    CommandNotFound,
    Interrupted,
    NameConflict,
    NeedsTerminal,
    NoSuchContainer,
    WaitTimeout,
)
from labkit.core.shell import _argv, labelled, learner_mistake, sh


def test_output_is_streamed_and_returned(capsys: pytest.CaptureFixture[str]) -> None:
    result = sh("printf 'one\\ntwo\\n'")
    assert result.output == "one\ntwo\n"
    assert result.exit_code == 0 and result.ok
    assert capsys.readouterr().out == "one\ntwo\n"


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert sh("echo hidden", quiet=True).output == "hidden\n"
    assert capsys.readouterr().out == ""


def test_unexpected_exit_code_fails_with_the_command_and_its_tail() -> None:
    with pytest.raises(CommandFailed) as info:
        sh("echo boom >&2; exit 3", quiet=True)
    err = info.value
    assert err.returncode == 3 and err.exit_code == 2 and err.expected == (0,)
    assert "exited with 3 (expected 0)" in str(err) and "boom" in str(err)
    assert "\n" not in str(err)


def test_declared_exit_code_is_accepted() -> None:
    assert sh("exit 125", expect=125, quiet=True).exit_code == 125
    assert sh("exit 1", expect=(0, 1), quiet=True).exit_code == 1
    assert sh("exit 7", expect=None, quiet=True).exit_code == 7
    with pytest.raises(CommandFailed):
        sh("exit 0", expect=1, quiet=True)


def test_pipelines_fail_when_any_stage_fails() -> None:
    with pytest.raises(CommandFailed):
        sh("false | cat", quiet=True)
    assert sh("echo -n my-secret | base64", quiet=True).output == "bXktc2VjcmV0\n"


def test_missing_program_is_named() -> None:
    with pytest.raises(CommandNotFound) as info:
        sh("definitely-not-a-program --flag", quiet=True)
    assert "definitely-not-a-program" in str(info.value)


def test_timeout_stops_the_command_quickly() -> None:
    with pytest.raises(WaitTimeout) as info:
        sh("sleep 30", timeout=0.5, quiet=True)
    assert "sleep 30" in str(info.value)


def test_input_reaches_stdin() -> None:
    assert sh("cat", input="fed\n", quiet=True).output == "fed\n"


def test_stderr_is_interleaved_like_a_terminal() -> None:
    assert sh("echo out; echo err >&2; echo out2", quiet=True).output == "out\nerr\nout2\n"


@pytest.mark.parametrize(
    "command",
    [
        "docker run --rm busybox true",
        "docker container run -d -p 8080:80 labkit/hello-dock",
        "  docker create --name x busybox",
        "docker container create busybox",
        "DOCKER_HOST=unix:///tmp/x.sock docker run --rm hello-world",
    ],
)
def test_run_and_create_get_labkit_labels(command: str) -> None:
    words = shlex.split(labelled(command, "05"))
    assert "labkit.lesson=05" in words
    assert f"{engine.LABEL_SESSION}={engine.session_id()}" in words
    # The labels go right after the subcommand, before the learner's own options.
    start = 1 if words[0].startswith("DOCKER_HOST=") else 0
    assert words.index("--label") == start + (3 if words[start + 1] == "container" else 2)


@pytest.mark.parametrize(
    "command", ["docker ps -a", "docker runner", "echo docker run", "docker container ls", "docker image rm run"]
)
def test_other_commands_are_left_alone(command: str) -> None:
    assert labelled(command, "05") == command


def test_commands_run_in_a_shell_like_a_terminal() -> None:
    assert sh("cd / && pwd", quiet=True).output == "/\n"
    assert sh('x="b c"; echo "$x"', quiet=True).output == "b c\n"
    assert "pipefail" in _argv("echo a | base64")


# --- what a learner sees when a command fails or is stopped ----------------------------------

CONFLICT = (
    'docker: Error response from daemon: Conflict. The container name "/web" is already in use by container '
    '"446a85a5e2cd". You have to remove (or rename) that container to be able to reuse that name.\n'
    "See 'docker run --help'.\n"
)


def test_a_plain_failure_speaks_to_the_learner_not_the_author() -> None:
    err = CommandFailed("docker run nosuch", 125, "Unable to find image 'nosuch:latest' locally\n")
    assert "expect=" not in str(err) and "lesson meant" not in str(err)
    assert err.fix.startswith("the command's own message above says why")
    assert "\n" not in str(err)


def test_a_name_conflict_names_the_container_and_the_way_back() -> None:
    err = learner_mistake("docker run -d --name web nginx", 125, CONFLICT, (0,), "05")
    assert isinstance(err, NameConflict) and isinstance(err, CommandFailed)
    assert err.name == "web" and err.returncode == 125
    assert "a container named web already exists" in err.message
    assert "`docker rm -f web`" in err.fix and 'labkit.begin("05")' in err.fix
    # outside a lesson there is no begin() to name
    other = learner_mistake("docker rename a web", 1, CONFLICT, (0,), "notebook")
    assert other is not None and "begin" not in other.fix and "first cell" in other.fix


@pytest.mark.parametrize(
    "output",
    ["Error response from daemon: No such container: web\n", "Error: No such container: web\n"],
)
def test_no_such_container_points_to_the_cells_above(output: str) -> None:
    err = learner_mistake("docker logs web", 1, output, (0,), "05")
    assert isinstance(err, NoSuchContainer) and err.name == "web"
    assert err.fix.startswith("run the cells above first (or the cell that creates web)")


def test_it_in_a_cell_points_to_labkit_interactive() -> None:
    err = learner_mistake("docker run -it busybox sh", 1, "the input device is not a TTY\n", (0,), "00")
    assert isinstance(err, NeedsTerminal)
    assert 'labkit.interactive("docker run -it busybox sh")' in err.fix
    assert "\n" not in str(err)


def test_other_failures_are_not_guessed_at() -> None:
    assert learner_mistake("docker run nosuch", 125, "pull access denied for nosuch\n", (0,), "05") is None
    assert learner_mistake("docker inspect x", 1, "Error: No such object: x\n", (0,), "05") is None


def _interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_stop_ends_the_command_and_says_so_in_one_line(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    _interrupt_after(0.5)
    t0 = time.monotonic()
    with pytest.raises(Interrupted) as info:
        sh(f"echo $$ > {pidfile}; exec sleep 30", quiet=True)
    assert time.monotonic() - t0 < 5
    err = info.value
    assert (
        str(err)
        == f"stopped `echo $$ > {pidfile}; exec sleep 30` before it finished — run the cell again when you are ready"
    )
    assert err.exit_code == 130 and not err.runs_a_container
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)  # ended and reaped, not left behind


def test_a_command_that_ignores_ctrl_c_is_killed(tmp_path: Path) -> None:
    _interrupt_after(0.5)
    t0 = time.monotonic()
    with pytest.raises(Interrupted):
        sh("trap '' INT; sleep 30", quiet=True)
    assert time.monotonic() - t0 < 5


def test_a_stopped_docker_run_advises_detach() -> None:
    err = Interrupted("docker run busybox sleep 30", True)
    assert "stopped waiting for `docker run busybox sleep 30`" in err.message
    assert "`docker ps`" in err.message and "--detach" in err.fix
