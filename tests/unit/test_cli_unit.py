"""The labkit command's answers to bad input: one readable line, quickly, the right exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.cli import main


def _labkit(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "labkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


@pytest.mark.parametrize("command", [["doctor"], ["check", "welcome.first-container"], ["reset"], ["images", "list"]])
def test_absent_daemon_is_one_line_within_five_seconds(command: list[str]) -> None:
    code, out, err, took = _labkit(*command, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert code == 2
    assert took < 5
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "not reachable at unix:///nonexistent.sock" in lines[0] and "provision-docker" in lines[0]


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
    code, out, err, took = _labkit("doctor", env={"DOCKER_HOST": silent_daemon})
    assert code == 2 and took < 5, (took, err)
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and "no answer" in err


def test_unknown_exercise_needs_no_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "welcome.frist-container"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'welcome.first-container'" in err and err.count("\n") == 1


def test_exercise_list_needs_no_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", "list"]) == 0
    assert "welcome.first-container" in capsys.readouterr().out


def test_hint_levels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hint", "welcome.first-container", "--level", "3"]) == 0
    assert "docker run hello-world" in capsys.readouterr().out


def test_missing_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["exercise", "setup"])
    assert info.value.code == 2
    assert "needs an exercise ID" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["images", "bundle"])
