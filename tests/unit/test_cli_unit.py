"""The labkit command's exit codes and error lines, without a daemon: 0 done, 1 not yet, 2 could not (one line)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.cli import GROUPS, build_parser, exit_status, main
from labkit.core.errors import CommandFailed, DamagedState, ExitCode, LabkitError, UsageError

NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent.sock"}


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every command here keeps its state (answers, progress, classroom) in a throwaway folder."""
    folder = tmp_path / "state"
    monkeypatch.setenv("LABKIT_STATE_DIR", str(folder))
    monkeypatch.setenv("LABKIT_LEARNER", "ada")
    return folder


def _labkit(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30, module: str = "labkit"
) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- the one mapping -------------------------------------------------------------------------


def test_every_labkit_error_is_exit_2_and_one_line() -> None:
    failed = CommandFailed("docker run x", 127, "docker: not found\n")
    assert failed.returncode == 127 and failed.exit_code == 2
    line = "labkit: `docker run x` exited with 127 (expected 0): docker: not found — the command's own message above says why: correct the command and run the cell again"
    assert exit_status(failed) == (2, line)
    assert exit_status(UsageError("labkit images", "images load needs a FILE"), "labkit bench")[0] == 2
    assert exit_status(DamagedState("/s/exercises.json", "empty", "/s/x"))[0] == ExitCode.COULD_NOT
    assert exit_status(KeyboardInterrupt()) == (130, "labkit: interrupted")
    assert exit_status(BrokenPipeError()) == (0, None)


def test_a_bug_is_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        exit_status(ZeroDivisionError("a bug in labkit"))


def test_every_sub_command_is_registered_in_help_order() -> None:
    parser = build_parser()
    (subcommands,) = [a for a in parser._actions if a.dest == "command"]
    assert list(subcommands.choices) == [  # type: ignore[arg-type]
        "doctor", "reset", "images", "registry", "vm", "engine", "trace", "exercise", "check", "hint",
        "solution", "release", "progress", "grade", "classroom", "hub",
    ]  # fmt: skip
    assert len(GROUPS) == 11


@pytest.mark.parametrize("module", ["labkit", "labkit.cli"])
def test_python_dash_m_runs_the_same_command(module: str) -> None:
    code, out, err, _ = _labkit("--help", module=module)
    assert code == 0 and out.startswith("usage: labkit [-h] COMMAND ...") and "classroom" in out and not err


def test_each_sub_command_help_exits_0() -> None:
    for command in ("doctor", "reset", "images", "registry", "vm", "engine", "trace", "exercise", "check", "hint",
                    "solution", "release", "progress", "grade", "classroom", "hub"):  # fmt: skip
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0, command


def test_trace_serve_stays_out_of_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["trace", "--help"])
    out = capsys.readouterr().out
    assert "{start,stop,show,host,env}" in out and "serve" not in out and "--listen" not in out and "--tls" not in out


# --- usage errors: 2, one line ---------------------------------------------------------------

USAGE = {
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "exercise setup without an id": (["exercise", "setup"], "exercise setup needs an exercise ID"),
    "exercise solve without an id": (["exercise", "solve"], "exercise solve needs an exercise ID"),
    "images bundle without a file": (["images", "bundle"], "images bundle needs a FILE"),
    "images load without a file": (["images", "load"], "images load needs a FILE"),
    "check without an id": (["check"], "the following arguments are required: id"),
    "hint level not a number": (["hint", "welcome.first-container", "--level", "two"], "invalid int value: 'two'"),
    "classroom join without a token": (["classroom", "join", "http://x"], "join needs URL TOKEN --name NAME"),
    "classroom forget without a name": (["classroom", "forget"], "forget needs the learner's NAME"),
    "classroom status with an argument": (["classroom", "status", "extra"], "status takes no arguments"),
    "trace serve without its options": (["trace", "serve"], "serve needs --listen, --upstream and --log"),
    "an unknown option": (["doctor", "--colour"], "unrecognized arguments: --colour"),
}


@pytest.mark.parametrize("argv, problem", USAGE.values(), ids=USAGE.keys())
def test_usage_errors_are_exit_2_and_one_line(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith("labkit: ") and problem in line and "--help`" in line and not captured.out


def test_a_usage_error_in_a_subprocess_is_one_line() -> None:
    code, out, err, _ = _labkit("images", "bundle")
    assert code == 2 and not out
    assert _one_line(err) == "labkit: images bundle needs a FILE — see `labkit images --help`"


# --- no daemon: 2, one line, quickly ---------------------------------------------------------

DAEMON_COMMANDS = {
    "doctor": ["doctor"],
    "check": ["check", "welcome.first-container"],
    "reset": ["reset"],
    "reset one lesson": ["reset", "--lesson", "00"],
    "images list": ["images", "list"],
    "exercise setup": ["exercise", "setup", "run.publish-detach"],
    "trace start": ["trace", "start"],
}


@pytest.mark.parametrize("command", DAEMON_COMMANDS.values(), ids=DAEMON_COMMANDS.keys())
def test_absent_daemon_is_one_line_within_five_seconds(command: list[str]) -> None:
    code, out, err, took = _labkit(*command, env=NO_DAEMON)
    assert code == 2, out + err
    assert took < 5
    line = _one_line(err)
    assert (
        "not reachable at unix:///nonexistent.sock" in line and "provision-docker" in line
    ) or "socket not found" in line


def test_a_failing_solution_is_exit_2_not_its_own_exit_code() -> None:
    """The solution's `docker run hello-world` really runs and really fails (no daemon at that address): docker exits
    125, and `labkit exercise solve` must still answer 2 (could not do), never 125, nor 1 ("not yet")."""
    code, _, err, _ = _labkit("exercise", "solve", "welcome.first-container", env=NO_DAEMON, timeout=60)
    line = _one_line(err)
    assert code == 2, (code, err)
    assert line.startswith("labkit: `docker run hello-world` exited with 125 (expected 0)")


def test_a_solution_whose_program_is_missing_is_exit_2(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # PATH without docker: only bash, which runs the solution
    bin_dir.mkdir()
    os.symlink(shutil.which("bash") or "/bin/bash", bin_dir / "bash")
    code, _, err, _ = _labkit("exercise", "solve", "welcome.first-container", env={"PATH": str(bin_dir)}, timeout=60)
    assert code == 2 and "`docker` is not installed or not on PATH" in _one_line(err)


@pytest.fixture
def silent_daemon(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections and never answers: a hung daemon."""
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"unix://{path}"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


def test_hung_daemon_is_one_line_within_five_seconds(silent_daemon: str) -> None:
    code, _, err, took = _labkit("doctor", env={"DOCKER_HOST": silent_daemon})
    assert code == 2 and took < 5, (took, err)
    assert "no answer" in _one_line(err)


# --- commands that need no daemon -------------------------------------------------------------

UNKNOWN_ID = {
    "check": ["check", "welcome.frist-container"],
    "hint": ["hint", "welcome.frist-container"],
    "solution": ["solution", "welcome.frist-container"],
    "exercise show": ["exercise", "show", "welcome.frist-container"],
    "exercise setup": ["exercise", "setup", "welcome.frist-container"],
    "exercise solve": ["exercise", "solve", "welcome.frist-container"],
}


@pytest.mark.parametrize("argv", UNKNOWN_ID.values(), ids=UNKNOWN_ID.keys())
def test_unknown_exercise_is_exit_2_and_one_line_without_a_daemon(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DAEMON["DOCKER_HOST"])
    assert main(argv) == 2
    assert "did you mean 'welcome.first-container'" in _one_line(capsys.readouterr().err)


def test_unknown_exercise_in_a_subprocess() -> None:
    code, out, err, _ = _labkit("exercise", "solve", "no.such-exercise", env=NO_DAEMON)
    assert code == 2 and not out and "no exercise named 'no.such-exercise'" in _one_line(err)


def test_exercise_list_show_hint_and_solution_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", "list"]) == 0
    assert "welcome.first-container" in capsys.readouterr().out
    assert main(["exercise", "show", "welcome.first-container"]) == 0
    assert "welcome.first-container (lesson 00)" in capsys.readouterr().out
    assert main(["hint", "welcome.first-container", "--level", "3"]) == 0
    assert "docker run hello-world" in capsys.readouterr().out
    assert main(["solution", "welcome.first-container"]) == 0
    assert capsys.readouterr().out == "docker run hello-world\n"


def test_answer_check_is_1_when_wrong_and_0_when_right(capsys: pytest.CaptureFixture[str]) -> None:
    """An answer exercise checked with no answer is "not yet" (1) without touching the daemon."""
    from labkit.exercises import all_exercises

    answer = next(e for e in all_exercises() if e.is_answer)
    assert main(["check", answer.id]) == 1
    assert "No answer recorded yet." in capsys.readouterr().out


def test_progress_of_a_new_learner_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["progress"]) == 0
    assert capsys.readouterr().out.startswith("ada: 0/")


def test_classroom_commands_without_a_classroom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classroom", "status"]) == 0
    assert "not in a classroom" in capsys.readouterr().out
    assert main(["classroom", "leave"]) == 0
    assert main(["classroom", "flush"]) == 2
    assert "not in a classroom" in _one_line(capsys.readouterr().err)
    assert main(["classroom", "join", "ftp://x", "token", "--name", "ada"]) == 2
    assert "is not a classroom URL" in _one_line(capsys.readouterr().err)
    assert main(["classroom", "forget", "nobody", "--db", str(tmp_path / "c.db")]) == 1
    assert "no learner named 'nobody' has joined" in capsys.readouterr().out


def test_classroom_status_sets_aside_a_damaged_queue_in_one_line(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state.mkdir(parents=True)
    (state / "classroom-queue.jsonl").write_text('{"id": "00000000000000000000000000000001"}\n{"id": "000')
    assert main(["classroom", "status"]) == 0
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "1 damaged line(s)" in line and "1 queued result(s) kept" in line and "; 1 queued" in captured.out
    assert len(list(state.glob("classroom-queue.jsonl.damaged-*"))) == 1


def test_trace_show_stop_and_host_without_a_proxy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "stop"]) == 0
    assert "no trace proxy started by labkit was running" in capsys.readouterr().out
    assert main(["trace", "show", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert main(["trace", "host"]) == 2
    assert "no trace proxy is running" in _one_line(capsys.readouterr().err)
    assert main(["trace", "env"]) == 2
    assert "no trace proxy is running" in _one_line(capsys.readouterr().err)


# --- damaged exercises.json: 2, one line, moved aside, then clean -------------------------------

DAMAGED = {
    "a list": ("[]", "it holds a list, not an object"),
    "null": ("null", "it holds null, not an object"),
    "answers a list": ('{"answers": []}', '"answers" is a list, not an object'),
    "an answer of the wrong type": ('{"answers": {"welcome.first-container": 1}}', "is a number, not a string"),
    "setup of the wrong type": ('{"answers": {}, "setup": []}', '"setup" is a list, not an object'),
    "truncated": ('{"answers": {"welcome.first-contai', "not JSON"),
}


@pytest.mark.parametrize("text, problem", DAMAGED.values(), ids=DAMAGED.keys())
def test_check_on_a_damaged_exercises_json_is_one_line_then_starts_clean(state: Path, text: str, problem: str) -> None:
    state.mkdir(parents=True)
    (state / "exercises.json").write_text(text)
    code, out, err, _ = _labkit("check", "welcome.first-container", env=NO_DAEMON)
    assert code == 2, out + err
    line = _one_line(err)
    (aside,) = state.glob("exercises.json.damaged-*")
    assert problem in line and str(aside) in line and str(state / "exercises.json") in line
    assert aside.read_text() == text
    code, out, err, _ = _labkit("check", "welcome.first-container", env=NO_DAEMON)
    assert code == 2 and "not reachable" in _one_line(
        err
    )  # the next command starts clean: it gets as far as the daemon


def test_labkit_error_is_the_root_of_what_the_cli_maps() -> None:
    assert issubclass(UsageError, LabkitError) and issubclass(DamagedState, LabkitError)


# --- the "1" answers: decided from what the daemon showed (facts faked here, the mapping is real) -----


def test_images_list_is_1_when_an_image_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit.features import images

    there = images.ImageState("busybox:latest", True, "present")
    missing = images.ImageState("labkit/hello-dock:latest", False, "missing")
    monkeypatch.setattr(images, "status", lambda: [there, missing])
    assert main(["images", "list"]) == 1
    assert capsys.readouterr().out.splitlines()[1].startswith("✗ labkit/hello-dock:latest")
    assert main(["images", "list", "busybox"]) == 0
    assert main(["images", "list", "no-such-image-in-the-course"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("labkit: ")


def test_doctor_is_1_when_not_ready(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.features import cli as features_cli
    from labkit.features.doctor import Report, Row

    monkeypatch.setattr(
        features_cli,
        "run_doctor",
        lambda: Report([Row("Docker daemon", "ok", "answers"), Row("Disk", "fail", "0.2 GB free")]),
    )
    assert main(["doctor"]) == 1
    monkeypatch.setattr(
        features_cli,
        "run_doctor",
        lambda: Report([Row("Docker daemon", "ok", "answers"), Row("Disk", "warn", "2 GB free")]),
    )
    assert main(["doctor", "--json"]) == 0
    assert '"ready": true' in capsys.readouterr().out
