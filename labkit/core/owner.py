"""This process as the owner of what it starts: its label, its commands' marker, its one watcher.

Every container labkit creates carries ``labkit.owner=<pid>-<start time>`` beside its session
label (:func:`labkit.core.engine.labels`), and every command :func:`labkit.sh` runs has
``LABKIT_OWNER=<pid>-<start time>`` in its environment. The first time this process runs a
docker command or sets up an exercise, :func:`watch` starts one watcher
(:mod:`labkit.core.reaper`) that removes those containers and kills those commands' docker
clients if this process dies without exiting normally (``kill -9``, a crash). A normal exit
says goodbye first (atexit), and then only leftover docker clients go.

Why per process and not per session: a session can span several live processes (the test
suite gives its notebook kernels one ``LABKIT_SESSION``; a learner may export one), and one
kernel's death must not take another's containers. The pid alone could be reused; with its
start time it names one process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from labkit.core import procs, reaper

LABEL_OWNER = reaper.LABEL_OWNER
ENV_OWNER = reaper.ENV_OWNER
#: ``LABKIT_REAPER=off`` starts no watcher. The test suite sets it (conftest.py), so that its leak
#: check sees what a run leaves behind instead of a watcher quietly removing it: nbval ends every
#: notebook's kernel with SIGKILL. The reaper's own tests turn it on for the processes they kill.
ENV_SWITCH = "LABKIT_REAPER"


@dataclass
class _Watcher:
    """The watcher this process started, and the pipe end it says goodbye through."""

    pid: int
    process: subprocess.Popen[bytes]
    pipe: int


_identity: tuple[int, str | None] | None = None
_watcher: _Watcher | None = None


def owner_id() -> str | None:
    """This process as an owner, ``PID-START`` (start time in seconds since the epoch); ``None`` if unknown.

    Computed again in a forked child, which is an owner of its own.

    Example:
        >>> owner_id().startswith(f"{os.getpid()}-")  # doctest: +SKIP
        True
    """
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        start = procs.start_time(pid)
        _identity = (pid, None if start is None else f"{pid}-{start:.2f}")
    return _identity[1]


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``LABKIT_OWNER`` set: for a command labkit runs."""
    env = dict(os.environ if base is None else base)
    me = owner_id()
    if me is not None:
        env[ENV_OWNER] = me
    return env


def watched() -> bool:
    """Whether this process has its watcher (started by this very process, still running)."""
    return _watcher is not None and _watcher.pid == os.getpid() and _watcher.process.poll() is None


def watch(session: str) -> None:
    """Start this process's watcher, once: what it starts goes if it dies (see :mod:`labkit.core.reaper`).

    Best-effort and quiet: when the watcher cannot start, labkit works as without it. Nothing
    starts when ``LABKIT_REAPER=off`` (:data:`ENV_SWITCH`).
    """
    global _watcher
    if watched() or os.environ.get(ENV_SWITCH, "").lower() in ("off", "0", "no", "false"):
        return
    me = owner_id()
    if me is None:
        return  # without a start time the watcher could not tell this process from a reused pid
    pid, start = me.split("-", 1)
    argv = [sys.executable, "-P", reaper.__file__, "--pid", pid, "--start", start]
    argv += ["--session", session, "--owner", me]
    if _watcher is not None and _watcher.pid == os.getpid():
        with contextlib.suppress(OSError):  # the last watcher ended early: its pipe goes with it
            os.close(_watcher.pipe)
    read_end, write_end = os.pipe()  # both non-inheritable: only the watcher gets the read end, by pass_fds
    try:
        process = subprocess.Popen(
            [*argv, "--fd", str(read_end)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(read_end,),
            start_new_session=True,  # out of the kernel's process group: Jupyter kills that group
        )
    except OSError:
        os.close(write_end)
        return
    finally:
        os.close(read_end)
    if _watcher is None:
        atexit.register(_release)
    _watcher = _Watcher(os.getpid(), process, write_end)


def _release() -> None:
    """At a normal exit: tell the watcher to leave the containers (it still ends leftover docker clients)."""
    if _watcher is None or _watcher.pid != os.getpid():
        return  # a forked child exiting: the watcher is its parent's
    with contextlib.suppress(OSError):
        os.write(_watcher.pipe, reaper.RELEASE)
        os.close(_watcher.pipe)
