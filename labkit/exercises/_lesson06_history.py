"""Readers of a container's past for lessons 06 and 07: its log, its timestamps, the daemon's events.

A container's state says how it ended (exit code, OOM) but not always who ended it:
``docker kill`` and ``docker stop -t 0`` both leave exit code 137. The daemon's event
log tells them apart (``stop`` sends ``kill`` with signal 15 first), but it is a
bounded buffer, so every reader here returns "don't know" (``None``) rather than guess
when the events have rolled out of it.

A reset of lesson 07's ``run.auto-remove`` starts a new attempt: :func:`forget_earlier_attempts`
notes when, and :func:`reset_at` tells its check to ignore what happened before.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from labkit.core import fmt
from labkit.core.paths import state_dir
from labkit.exercises.machinery.model import Context

#: How far back a search for a container that removed itself looks (seconds).
RECENT = 600


def was_started(container: Container) -> bool:
    """True when the container has been started at least once (whatever its state now)."""
    return fmt.timestamp(container.attrs.get("State", {}).get("StartedAt")) is not None


def log_lines(container: Container) -> list[str] | None:
    """Every line the container has logged, over all its runs; ``None`` when the log cannot be read."""
    try:
        raw = container.logs(stdout=True, stderr=True)
    except docker.errors.APIError:  # a logging driver without read support
        return None
    return bytes(raw).decode(errors="replace").splitlines()


def last_run(lines: Iterable[str], ready: str) -> list[str]:
    """The lines of the latest run: everything after the last ``ready`` line (it prints one per start)."""
    run: list[str] = []
    for line in lines:
        run = [] if ready in line else [*run, line]
    return run


def events(client: docker.DockerClient, container_id: str, since: float) -> list[dict[str, Any]] | None:
    """The daemon's events for one container from ``since`` until now, oldest first; ``None`` if unreadable."""
    until = time.time()
    if until < since:  # a daemon clock ahead of ours: nothing to read yet
        return None
    try:
        found = client.api.events(
            since=f"{since:.9f}", until=f"{until:.9f}", filters={"container": container_id}, decode=True
        )
        return list(found)
    except (docker.errors.APIError, ValueError):
        return None


def _action(event: dict[str, Any]) -> str:
    return str(event.get("Action") or event.get("status") or "")


def kill_signals(client: docker.DockerClient, container: Container) -> list[int] | None:
    """The signals ``kill``/``stop`` sent since the container's last start, in order.

    Returns:
        The signal numbers, or ``None`` when the daemon's event buffer no longer holds
        that start (so the absence of a kill would prove nothing).
    """
    started = fmt.timestamp(container.attrs.get("State", {}).get("StartedAt"))
    if started is None:
        return None
    # A second of slack before StartedAt catches the start event itself, which proves coverage.
    found = events(client, str(container.id), started - 1.0)
    starts = [n for n, event in enumerate(found or []) if _action(event) == "start"]
    if found is None or not starts:
        return None
    signals = []
    for event in found[starts[-1] + 1 :]:
        if _action(event) == "kill":
            value = (event.get("Actor") or {}).get("Attributes", {}).get("signal", "")
            if str(value).isdigit():
                signals.append(int(value))
    return signals


def was_attached(client: docker.DockerClient, container: Container) -> bool | None:
    """Whether a client attached to the container since it was created; ``None`` when the
    daemon's event buffer no longer reaches back to its creation."""
    created = fmt.timestamp(container.attrs.get("Created"))
    if created is None:
        return None
    found = events(client, str(container.id), created - 1.0)
    if found is None or not any(_action(event) == "create" for event in found):
        return None
    return any(_action(event) == "attach" for event in found)


def recent_end(client: docker.DockerClient, name: str, since: float | None = None) -> str | None:
    """How the last container named ``name`` went away within the last ten minutes (and after
    ``since``, when given), from the daemon's events.

    Returns:
        ``"ended"`` when it died without a ``kill`` (its command finished) and was then
        removed, ``"stopped"`` when a ``kill``/``stop``/``rm -f`` came first, or ``None``
        when no container of that name was removed in the buffer's reach.
    """
    until = time.time()
    start = max(until - RECENT, since or 0.0)
    if start >= until:
        return None
    filters = {"type": "container", "event": ["kill", "die", "destroy"]}
    try:
        found = list(client.api.events(since=f"{start:.9f}", until=f"{until:.9f}", filters=filters, decode=True))
    except (docker.errors.APIError, ValueError):
        return None
    mine = [e for e in found if (e.get("Actor") or {}).get("Attributes", {}).get("name") == name]
    destroyed = [e for e in mine if _action(e) == "destroy"]
    if not destroyed:
        return None
    last_id = (destroyed[-1].get("Actor") or {}).get("ID")
    actions = [_action(e) for e in mine if (e.get("Actor") or {}).get("ID") == last_id]
    return "stopped" if "kill" in actions else "ended"


def similar_names(client: docker.DockerClient, name: str) -> list[Container]:
    """Containers whose name looks like a typo of ``name`` (``ephemral``, ``ephemeral-1``), inspected."""
    listed = {
        str((c.attrs.get("Names") or ["/"])[0]).lstrip("/"): c for c in client.containers.list(all=True, sparse=True)
    }
    close = [n for n in difflib.get_close_matches(name, list(listed), n=3, cutoff=0.8) if n != name]
    found = []
    for other in close:
        try:
            found.append(client.containers.get(listed[other].id))
        except docker.errors.NotFound:  # removed between the list and the inspect
            continue
    return found


def _reset_marker() -> Path:
    return state_dir() / "run.auto-remove.reset"


def reset_at() -> float | None:
    """When run.auto-remove was last reset: what happened before belongs to an earlier attempt."""
    try:
        return float(_reset_marker().read_text())
    except (OSError, ValueError):
        return None


def forget_earlier_attempts(ctx: Context) -> int:
    """Teardown: note the time, so an ``ephemeral`` that ended before this reset is not reported."""
    with contextlib.suppress(OSError):
        _reset_marker().write_text(f"{time.time():.6f}")
    return 0
