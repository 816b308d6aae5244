"""Lesson 06's containers as they are now: whose they are, their status, exit code, ports and image.

Also the script its long-running containers run as PID 1 (it logs its start and
handles SIGTERM). Lesson 07's checks (create, remove, list) read their containers here
too. What happened to a container before, and when the learner last reset an exercise,
is read by :mod:`labkit.exercises._lesson06_history`.
"""

from __future__ import annotations

from docker.models.containers import Container

from labkit.core import engine


def signal_script(name: str) -> str:
    """A busybox shell script for PID 1 that logs its start and handles SIGTERM.

    PID 1 in a container ignores every signal it has no handler for, so without the
    trap ``docker stop`` would wait out its whole grace period. The handler exits with
    143 (128 + 15), the code a process killed by SIGTERM reports. Sleeping in the
    background and waiting lets the shell run its trap at once, instead of after the sleep.
    """
    return (
        f"trap 'echo \"{name}: got SIGTERM, cleaning up\"; exit 143' TERM; "
        f"echo '{name}: ready'; "
        "while :; do sleep 3600 & wait $!; done"
    )


def own(name: str, exercise_id: str) -> Container | None:
    """The container called ``name`` when setup of ``exercise_id`` made it, else ``None``."""
    container = engine.find_container(name)
    if container is None or container.name != name:
        return None
    if container.labels.get("labkit.exercise") != exercise_id:
        return None
    return container


def status(container: Container) -> str:
    return str(container.attrs.get("State", {}).get("Status", ""))


def exit_code(container: Container) -> int:
    return int(container.attrs.get("State", {}).get("ExitCode") or 0)


def host_ports(container: Container) -> dict[str, list[str]]:
    """``{"80/tcp": ["8081"]}``: the host ports each container port is published on."""
    bindings = container.attrs.get("HostConfig", {}).get("PortBindings") or {}
    return {port: [str(b.get("HostPort") or "") for b in (found or [])] for port, found in bindings.items()}
