"""The container half: a busybox container, measured from the host side.

The kernel it sees, its memory cgroup (v1 or v2, or the daemon's stats when the
cgroup files are out of sight), and its main process in the host's own ``/proc``.
"""

from __future__ import annotations

import contextlib
import platform
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.core import engine, fmt, wait
from labkit.core.i18n import _
from labkit.core.shell import sh

LESSON = "01"
#: The container the lesson measures.
CONTAINER_NAME = "lab01-box"
CONTAINER_IMAGE = "busybox"


def parse_proc_cgroup(text: str) -> tuple[int, str] | None:
    """The memory cgroup of a process from ``/proc/<pid>/cgroup``: ``(1, path)`` or ``(2, path)``.

    cgroup v1 lists a ``memory`` controller line; pure v2 has only the ``0::`` line.

    Example:
        >>> parse_proc_cgroup("4:memory:/docker/abc\\n0::/docker/abc\\n")
        (1, '/docker/abc')
        >>> parse_proc_cgroup("0::/system.slice/docker-abc.scope\\n")
        (2, '/system.slice/docker-abc.scope')
    """
    unified = None
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        if "memory" in parts[1].split(","):
            return 1, parts[2]
        if parts[0] == "0" and parts[1] == "":
            unified = parts[2]
    return (2, unified) if unified is not None else None


def memory_files(container_id: str, proc_cgroup: str | None = None, root: Path = Path("/sys/fs/cgroup")) -> list[Path]:
    """Where a container's memory usage may be read, most precise first.

    From the process's own cgroup when known, then the usual places for the
    cgroupfs (``docker/<id>``) and systemd (``docker-<id>.scope``) drivers.
    """
    found = parse_proc_cgroup(proc_cgroup) if proc_cgroup else None
    candidates = []
    if found:
        version, rel = found
        rel = rel.lstrip("/")
        candidates.append(
            root / "memory" / rel / "memory.usage_in_bytes" if version == 1 else root / rel / "memory.current"
        )
    candidates += [
        root / "memory" / "docker" / container_id / "memory.usage_in_bytes",
        root / "memory" / "system.slice" / f"docker-{container_id}.scope" / "memory.usage_in_bytes",
        root / "system.slice" / f"docker-{container_id}.scope" / "memory.current",
        root / "docker" / container_id / "memory.current",
    ]
    return list(dict.fromkeys(candidates))  # the first of each, in order


def parse_cmdline(raw: bytes) -> str:
    """``/proc/<pid>/cmdline`` (NUL-separated) as a command line."""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def parse_status_field(status: str, key: str) -> str | None:
    """One field of ``/proc/<pid>/status``."""
    match = re.search(rf"^{re.escape(key)}:\s*(.*)$", status, re.MULTILINE)
    return match.group(1).strip() if match else None


@dataclass(frozen=True)
class ContainerReport:
    """What the container side measured."""

    name: str
    start_seconds: float
    roundtrip_seconds: float
    kernel_release: str
    daemon_kernel: str
    host_kernel: str
    memory_bytes: int | None
    memory_source: str
    host_pid: int
    host_cmdline: str
    host_parent: str
    top: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        mem = fmt.size(self.memory_bytes, "mib") if self.memory_bytes is not None else _("unknown")
        return "\n".join(
            [
                _("docker run -d → running: {seconds:.2f} s").format(seconds=self.start_seconds),
                _("docker run --rm busybox true, whole round trip: {seconds:.2f} s").format(
                    seconds=self.roundtrip_seconds
                ),
                _("kernel seen inside (uname -r): {release}").format(release=self.kernel_release),
                _("daemon's kernel (docker info): {release}").format(release=self.daemon_kernel),
                _("this computer's kernel (platform.release()): {release}").format(release=self.host_kernel),
                _("container memory from its cgroup: {size} ({source})").format(size=mem, source=self.memory_source),
            ]
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def container_memory(container_id: str, pid: int) -> tuple[int | None, str]:
    """A container's memory usage in bytes, and where it was read.

    Reads the memory cgroup file (v1 or v2) when this process can see it; falls back
    to the daemon's stats (Docker Desktop, a remote daemon).
    """
    try:
        proc_cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        proc_cgroup = None
    for path in memory_files(container_id, proc_cgroup):
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        kind = "cgroup v1" if path.name == "memory.usage_in_bytes" else "cgroup v2"
        return value, f"{kind} {path.name}"
    with engine.converted():
        stats = engine.client().containers.get(container_id).stats(stream=False)
    usage = (stats.get("memory_stats") or {}).get("usage")
    return (int(usage) if usage is not None else None), "docker stats"


def _timed(command: str) -> float:
    started = time.monotonic()
    sh(command, lesson=LESSON, quiet=True, timeout=60)
    return time.monotonic() - started


def start_container(name: str = CONTAINER_NAME) -> ContainerReport:
    """Start a busybox container (labelled lesson 01) and measure it from the host side.

    The container keeps running (``sleep``) so the lesson can look at it; ``labkit.reset(lesson="01")``
    or :func:`remove_container` removes it.

    Raises:
        DaemonUnavailable: the daemon did not answer.
        CommandFailed: docker refused to run the container.
        WaitTimeout: it did not reach ``running``.
    """
    remove_container(name)
    client = engine.client()
    started = time.monotonic()
    sh(f"docker run -d --name {shlex.quote(name)} {CONTAINER_IMAGE} sleep 3600", lesson=LESSON, quiet=True, timeout=60)
    with engine.converted():
        container = client.containers.get(name)
        wait.container_running(container)
        start_seconds = time.monotonic() - started
        roundtrip = _timed(f"docker run --rm {CONTAINER_IMAGE} true")
        kernel = container.exec_run(["uname", "-r"]).output.decode().strip()
        daemon_kernel = str(client.info().get("KernelVersion", "")).strip()
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        top = tuple(" ".join(row) for row in (container.top().get("Processes") or []))
    memory, source = container_memory(container.id, pid)
    cmdline, parent = host_process(pid)
    return ContainerReport(
        name=name,
        start_seconds=start_seconds,
        roundtrip_seconds=roundtrip,
        kernel_release=kernel,
        daemon_kernel=daemon_kernel,
        host_kernel=platform.release(),
        memory_bytes=memory,
        memory_source=source,
        host_pid=pid,
        host_cmdline=cmdline,
        host_parent=parent,
        top=top,
    )


def host_process(pid: int) -> tuple[str, str]:
    """A host process's command line and its parent's name, read from the host's ``/proc``.

    Returns ``("", "")`` when this process cannot see it (the daemon runs in another
    VM, as with Docker Desktop).
    """
    try:
        cmdline = parse_cmdline(Path(f"/proc/{pid}/cmdline").read_bytes())
        ppid = parse_status_field(Path(f"/proc/{pid}/status").read_text(), "PPid") or ""
        parent = parse_status_field(Path(f"/proc/{ppid}/status").read_text(), "Name") or ""
    except OSError:
        return "", ""
    return cmdline, parent


def remove_container(name: str = CONTAINER_NAME) -> bool:
    """Remove the lesson's container if it exists. Returns whether there was one."""
    found = engine.find_container(name)
    if found is None or found.name != name:
        return False
    with engine.converted(), contextlib.suppress(Exception):
        found.remove(force=True)
    return True
