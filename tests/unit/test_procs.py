"""labkit.core.procs with real processes: a pid is only ours when pid, start time and command line all match."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labkit.core import procs, wait

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "labkit-test-sleeper"]


def _is_sleeper(argv: list[bytes]) -> bool:
    return b"labkit-test-sleeper" in argv


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(SLEEPER)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        procs._children.pop(proc.pid, None)


def test_a_child_we_started_is_recognised(sleeper: subprocess.Popen[bytes]) -> None:
    record = procs.track(sleeper)
    assert record["pid"] == sleeper.pid and isinstance(record["start"], float)
    assert abs(record["start"] - time.time()) < 60
    assert procs.alive(sleeper.pid)
    assert procs.is_running(record, _is_sleeper)


def test_a_record_read_back_from_its_pid_file_is_recognised(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(json.dumps({**procs.track(sleeper), "program": "sleeper"}))
    record = procs.read_record(pid_file)
    assert record is not None and procs.is_running(record, _is_sleeper)


def test_a_reused_pid_is_not_ours(sleeper: subprocess.Popen[bytes]) -> None:
    record = procs.track(sleeper)
    # the same pid, but the process recorded started at another time: the pid was reused
    assert not procs.is_running({**record, "start": record["start"] - 3600}, _is_sleeper)
    assert not procs.is_running({**record, "start": record["start"] + 10}, _is_sleeper)
    assert not procs.is_running({"pid": sleeper.pid}, _is_sleeper)  # no start time: cannot tell
    assert not procs.is_running({**record, "start": "soon"}, _is_sleeper)
    # the same pid and start time, another command line
    assert not procs.is_running(record, lambda argv: b"docker-registry" in argv)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux wrote start times as clock ticks")
def test_a_record_written_before_psutil_is_still_recognised(sleeper: subprocess.Popen[bytes]) -> None:
    ticks = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    assert procs.is_running({"pid": sleeper.pid, "start": ticks}, _is_sleeper)
    assert not procs.is_running({"pid": sleeper.pid, "start": str(int(ticks) + 1000)}, _is_sleeper)


def test_a_zombie_is_not_running() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # not tracked: nobody reaps it yet
    try:
        wait.until(
            lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE,
            "the child to become a zombie",
            timeout=10,
        )
        assert not procs.alive(proc.pid)
        assert not procs.is_running({"pid": proc.pid, "start": procs.start_time(proc.pid)}, lambda argv: True)
    finally:
        proc.wait()


def test_a_tracked_child_that_exited_is_reaped(sleeper: subprocess.Popen[bytes]) -> None:
    procs.track(sleeper)
    sleeper.kill()
    wait.until(lambda: not procs.alive(sleeper.pid), "the child to be gone", timeout=10)
    assert sleeper.pid not in procs._children
    assert procs.start_time(sleeper.pid) is None  # reaped: nothing left to read


def test_gone_and_impossible_pids() -> None:
    assert not procs.alive(0) and not procs.alive(-1)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not procs.alive(proc.pid) and procs.start_time(proc.pid) is None
    assert not procs.is_running({"pid": proc.pid, "start": 0.0}, lambda argv: True)


def test_damaged_pid_files(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert procs.read_record(pid_file) is None
    for text in ("", "{", "[]", "null", '{"pid": "12"}', '{"start": 1.0}'):
        pid_file.write_text(text)
        assert procs.read_record(pid_file) is None, text


def test_terminate_kills_a_process_that_ignores_sigterm() -> None:
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        procs.track(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        procs.terminate(proc.pid, "test sleeper", timeout=0.5)
        assert not procs.alive(proc.pid) and proc.returncode == -9
    finally:
        proc.kill()
        proc.wait()
