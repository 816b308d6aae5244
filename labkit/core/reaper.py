"""The reaper: when a labkit process dies without a word, what it started goes.

A notebook kernel killed with ``kill -9`` (by a learner, the OOM killer, or a Jupyter server
that gave up waiting) leaves behind the containers it started and the ``docker`` client
processes it ran: :func:`labkit.sh` starts each command in a session of its own, so a
``docker run`` in the foreground outlives its kernel, parented to pid 1. The first time a
process runs a docker command or sets up an exercise, :mod:`labkit.core.owner` starts one
watcher for it: this module, run as a script in a new session (out of reach of the signals
sent to the kernel's process group), stdin and stdout on ``/dev/null``.

The watcher polls once a second whether its owner (pid and start time) still runs, and reads
a pipe whose other end only the owner holds. When the owner is gone:

- if it said goodbye first (an atexit handler writes ``release`` down the pipe), its
  containers stay: ``labkit exercise setup`` leaves the state a learner then works on, and
  what a kernel that ended normally made is cleared by ``labkit.begin``/``labkit reset`` as before;
- otherwise it removes the containers labelled both ``labkit.session=<session>`` and
  ``labkit.owner=<owner>``: that process's own, never another session's, and never those of
  another live process sharing the session (the test suite's notebook kernels share one);
- either way it kills the owner's ``docker`` client processes that still run: the docker CLI
  (or one of its plugins) with ``LABKIT_OWNER=<owner>`` in its environment, which labkit sets
  for every command it runs;

then it exits. It imports nothing from labkit, only the standard library and psutil, so it
starts in about 30 ms and stays near 13 MB; it talks to the daemon through the docker CLI,
as the commands it cleans up after did.

Usage (what :mod:`labkit.core.owner` runs)::

    python -P reaper.py --pid PID --start START --session SESSION --owner OWNER --fd FD
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

#: The label on each container a labkit process creates: which process made it (``PID-START``).
LABEL_OWNER = "labkit.owner"
#: The session label (the same as :data:`labkit.core.engine.LABEL_SESSION`).
LABEL_SESSION = "labkit.session"
#: The environment variable labkit sets for the commands it runs: the owner they belong to.
ENV_OWNER = "LABKIT_OWNER"
#: What the owner writes down the pipe when it exits normally.
RELEASE = b"release\n"
#: Seconds between two looks at the owner.
POLL = 1.0
#: Seconds the watcher spends removing containers, at most.
REAP_SECONDS = 10.0
#: Seconds two readings of a start time may differ by (as :data:`labkit.core.procs.START_TOLERANCE`).
START_TOLERANCE = 2.0


class Action(enum.Enum):
    """What the watcher does after a look at its owner."""

    #: The owner runs: keep watching.
    WAIT = "wait"
    #: The owner exited normally: kill its leftover docker clients, keep its containers.
    CLIENTS = "clients"
    #: The owner died: kill its docker clients and remove its containers.
    REAP = "reap"


def decide(owner_alive: bool, released: bool) -> Action:
    """What to do, from whether the owner runs and whether it said goodbye.

    Example:
        >>> decide(True, False), decide(False, True), decide(False, False)
        (<Action.WAIT: 'wait'>, <Action.CLIENTS: 'clients'>, <Action.REAP: 'reap'>)
    """
    if owner_alive:
        return Action.WAIT
    return Action.CLIENTS if released else Action.REAP


@dataclass(frozen=True)
class Proc:
    """A process as the watcher sees it: enough to tell one of the owner's docker clients."""

    pid: int
    name: str
    exe: str
    #: ``LABKIT_OWNER`` in its environment; ``None`` when absent or unreadable (another user's).
    owner: str | None


def is_docker_client(name: str, exe: str) -> bool:
    """The docker CLI, or one of its plugins (``docker build`` runs ``docker-buildx``); never ``dockerd``.

    Example:
        >>> is_docker_client("docker", "/usr/bin/docker"), is_docker_client("dockerd", "/usr/sbin/dockerd")
        (True, False)
        >>> is_docker_client("docker-buildx", "/usr/libexec/docker/cli-plugins/docker-buildx")
        True
        >>> is_docker_client("docker-registry", "/usr/bin/docker-registry")
        False
    """
    return name == "docker" or (name.startswith("docker-") and Path(exe).parent.name == "cli-plugins")


def clients_to_kill(processes: Iterable[Proc], owner: str, me: int) -> list[int]:
    """The pids of the owner's docker clients among ``processes``: its marker in their environment.

    Example:
        >>> procs = [Proc(10, "docker", "/usr/bin/docker", "42-1.0"), Proc(11, "docker", "/usr/bin/docker", "7-1.0"),
        ...          Proc(12, "bash", "/usr/bin/bash", "42-1.0"), Proc(13, "docker", "/usr/bin/docker", None)]
        >>> clients_to_kill(procs, "42-1.0", me=99)
        [10]
    """
    return [p.pid for p in processes if p.owner == owner and p.pid != me and is_docker_client(p.name, p.exe)]


def container_filters(session: str, owner: str) -> list[str]:
    """``docker ps`` filters for the owner's containers: both labels, so nothing of another session or process.

    Example:
        >>> container_filters("s1", "42-1.0")
        ['--filter', 'label=labkit.session=s1', '--filter', 'label=labkit.owner=42-1.0']
    """
    return ["--filter", f"label={LABEL_SESSION}={session}", "--filter", f"label={LABEL_OWNER}={owner}"]


def owner_alive(pid: int, start: float) -> bool:
    """The owner still runs: same pid, same start time, not a zombie."""
    try:
        process = psutil.Process(pid)
        same = abs(float(process.create_time()) - start) <= START_TOLERANCE
        return same and bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; which owner it is cannot be told, so keep watching


def watch(pid: int, start: float, fd: int | None, poll: float = POLL) -> Action:
    """Wait until the owner is gone; return whether it said goodbye (:attr:`Action.CLIENTS`) or not."""
    released = False
    with selectors.DefaultSelector() as selector:  # epoll where there is one: any fd number works
        if fd is not None:
            selector.register(fd, selectors.EVENT_READ)
        while True:
            if fd is not None and selector.select(poll):
                data = os.read(fd, 64)
                if not data:  # every copy of the owner's end closed: it exits, look now
                    selector.unregister(fd)
                    os.close(fd)
                    fd = None
                released = released or RELEASE.strip() in data
            elif fd is None:
                time.sleep(poll)  # the polling interval: nothing else to wait on
            action = decide(owner_alive(pid, start), released)
            if action is not Action.WAIT:
                return action


def _processes() -> list[Proc]:
    found = []
    for process in psutil.process_iter():
        try:
            name = process.name()
            if not name.startswith("docker"):
                continue
            found.append(Proc(process.pid, name, process.exe(), process.environ().get(ENV_OWNER)))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def kill_clients(owner: str, processes: Callable[[], list[Proc]] = _processes) -> int:
    """SIGKILL the owner's docker clients and wait (2 s at most) until they are gone; how many there were."""
    pids = clients_to_kill(processes(), owner, os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not all(map(_ended, pids)):
        time.sleep(0.05)  # the interval between two looks at the killed processes
    return len(pids)


def _ended(pid: int) -> bool:
    """Gone, or a zombie: dead, and waiting for whoever adopted it (pid 1) to collect it."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _docker(*args: str) -> str:
    """Run the docker CLI; its output, or "" when it failed or is missing (nothing better to do)."""
    docker = shutil.which("docker")
    if docker is None:
        return ""
    try:
        done = subprocess.run(
            [docker, *args], capture_output=True, text=True, timeout=REAP_SECONDS, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def remove_containers(session: str, owner: str, docker: Callable[..., str] = _docker) -> int:
    """Remove the owner's containers; list again until two looks half a second apart find none.

    The second look catches a container the daemon finished creating for a client killed mid-request.
    """
    removed = 0
    empty_looks = 0
    deadline = time.monotonic() + REAP_SECONDS
    while empty_looks < 2 and time.monotonic() < deadline:
        ids = docker("ps", "--all", "--quiet", "--no-trunc", *container_filters(session, owner)).split()
        if ids:
            docker("rm", "--force", "--volumes", *ids)
            removed += len(ids)
            empty_looks = 0
        else:
            empty_looks += 1
        if empty_looks < 2:
            time.sleep(0.5)  # the interval between two looks at the daemon
    return removed


def main(argv: list[str] | None = None) -> int:
    """Watch one owner, act once it is gone, exit."""
    parser = argparse.ArgumentParser(prog="labkit-reaper", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--fd", type=int, default=None, help="the read end of the owner's pipe")
    args = parser.parse_args(argv)
    for stray in (signal.SIGINT, signal.SIGHUP):  # a Ctrl-C or a closed terminal is for the owner, not for us
        signal.signal(stray, signal.SIG_IGN)
    action = watch(args.pid, args.start, args.fd)
    kill_clients(args.owner)
    if action is Action.REAP:
        remove_containers(args.session, args.owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
