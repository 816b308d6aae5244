"""labkit.sh on ordinary programs: exit codes, streaming, labels, timeouts."""

from __future__ import annotations

import shlex

import pytest

from labkit.core import engine
from labkit.core.errors import CommandFailed, CommandNotFound, WaitTimeout
from labkit.core.shell import _argv, labelled, sh


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
