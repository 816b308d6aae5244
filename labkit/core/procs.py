"""Background processes labkit starts (the registry, the trace proxy).

Each is recorded in a pid file with its start time, so labkit only ever signals
the process it started: a pid reused by another program has another start time,
or another command line. :mod:`psutil` reads both, on Linux and on macOS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from labkit.core import wait
from labkit.core.errors import WaitTimeout

#: Seconds two readings of one process's start time may differ by. psutil gives it as boot
#: time plus time since boot, and the boot time moves when the wall clock is stepped (NTP);
#: a pid reused within this margin by a process with the same command line is not a real case.
START_TOLERANCE = 2.0

# Children this process started, so that one which exited is reaped instead of lingering as a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Remember a child just started; returns the start of its pid-file record."""
    _children[proc.pid] = proc
    return {"pid": proc.pid, "start": start_time(proc.pid)}


def start_time(pid: int) -> float | None:
    """When the process started, in seconds since the epoch, or None when it is gone or hidden."""
    try:
        return round(float(psutil.Process(pid).create_time()), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while the process runs (a zombie does not count)."""
    if pid <= 0:
        return False  # a damaged record: 0 and below name process groups, never one process
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another user's process: it exists, which is all alive() says


def read_record(pid_file: Path) -> dict[str, Any] | None:
    """A pid file's record, or None when there is none or it is damaged."""
    try:
        record = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _recorded_start(value: object) -> float | None:
    """A record's start time in seconds since the epoch.

    Records written before labkit used psutil hold Linux clock ticks since boot as a
    string of digits; those are converted the way psutil computes a start time.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return int(value) / os.sysconf("SC_CLK_TCK") + float(psutil.boot_time())
    return None


def same_start(recorded: object, actual: float | None) -> bool:
    """Whether a record's start time is the start time of the process running now.

    Example:
        >>> same_start(1700000000.5, 1700000000.51), same_start(1700000000.5, 1700000100.0)
        (True, False)
    """
    expected = _recorded_start(recorded)
    return expected is not None and actual is not None and abs(expected - actual) <= START_TOLERANCE


def is_running(record: dict[str, Any], command_matches: Callable[[list[bytes]], bool]) -> bool:
    """The recorded process still runs, is the same process (start time), and runs the expected command.

    Where the system cannot tell (the process belongs to another user), the answer is no:
    labkit never signals a process it cannot identify.
    """
    pid = int(record["pid"])
    if not alive(pid):
        return False
    try:
        proc = psutil.Process(pid)
        started = proc.create_time()
        argv = [os.fsencode(arg) for arg in proc.cmdline()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return same_start(record.get("start"), started) and bool(argv) and command_matches(argv)


def terminate(pid: int, what: str, timeout: float) -> None:
    """SIGTERM, a deadline, then SIGKILL.

    Raises:
        WaitTimeout: the process survived SIGKILL (it should not).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait.until(lambda: not alive(pid), f"{what} {pid} to stop", timeout=timeout)
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait.until(lambda: not alive(pid), f"{what} {pid} to stop after SIGKILL", timeout=5.0)
