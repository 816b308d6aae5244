"""Background processes labkit starts (the registry, the trace proxy).

Each is recorded in a pid file with its start time, so labkit only ever signals
the process it started: a pid reused by another program has another start time.
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

from labkit.core import wait
from labkit.core.errors import WaitTimeout

# Children this process started, so that one which exited is reaped instead of lingering as a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


def track(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Remember a child just started; returns the start of its pid-file record."""
    _children[proc.pid] = proc
    return {"pid": proc.pid, "start": start_time(proc.pid)}


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def alive(pid: int) -> bool:
    """True while the process runs (a zombie does not count)."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_record(pid_file: Path) -> dict[str, Any] | None:
    """A pid file's record, or None when there is none or it is damaged."""
    try:
        record = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def is_running(record: dict[str, Any], command_matches: Callable[[list[bytes]], bool]) -> bool:
    """The recorded process still runs, is the same process (start time), and runs the expected command.

    Where ``/proc`` cannot tell, the answer is no: labkit never signals a process it cannot identify.
    """
    pid = int(record["pid"])
    if not alive(pid) or start_time(pid) != record.get("start"):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and command_matches(argv)


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
