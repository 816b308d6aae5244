"""The dashboard's model: one :class:`Row` per container, kept by container events, no daemon needed.

Everything here is pure: it turns what the daemon says (``docker inspect``, ``docker
events``) into rows, and rows into what a table's cells say.

Example:
    >>> rows = {}
    >>> apply_event(rows, {"Type": "container", "Action": "start", "id": "c1"})
    'c1'
    >>> rows["c1"].state
    'running'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from labkit.core import engine, fmt
from labkit.core.i18n import N_, _

#: The lifecycle the diagram draws, in order.
STATES = ("created", "running", "paused", "exited", "removed")
#: Container events that change what a row shows; the rest (exec, attach, resize…) are filtered out by the daemon.
WATCHED = (
    "create",
    "start",
    "restart",
    "pause",
    "unpause",
    "die",
    "stop",
    "kill",
    "oom",
    "destroy",
    "rename",
    "update",
)
#: Seconds between uptime refreshes of the table (no daemon call: only the "up 12 s" text changes).
UPTIME_TICK = 5.0
#: Lessons whose containers are labkit's own infrastructure: listed, never acted on here.
PROTECTED_LESSONS = ("registry",)
SCOPES = (N_("all containers"), N_("this lesson"))
#: The words the dashboard shows for a container's state (the state itself stays Docker's word, as data).
STATE_WORDS = {
    "created": N_("created"),
    "running": N_("running"),
    "paused": N_("paused"),
    "restarting": N_("restarting"),
    "removing": N_("removing"),
    "exited": N_("exited"),
    "dead": N_("dead"),
    "removed": N_("removed"),
}

_EVENT_STATE = {
    "create": "created",
    "start": "running",
    "restart": "running",
    "unpause": "running",
    "pause": "paused",
    "die": "exited",
    "stop": "exited",
}


@dataclass(frozen=True)
class Row:
    """One container as the dashboard shows it."""

    id: str
    name: str
    image: str
    state: str
    ports: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def lesson(self) -> str | None:
        return self.labels.get(engine.LABEL_LESSON)

    @property
    def protected(self) -> bool:
        """labkit infrastructure (the fallback registry container): shown, never stopped or removed here."""
        return self.lesson in PROTECTED_LESSONS


def format_ports(ports: Mapping[str, Any] | None) -> str:
    """Published ports as ``docker ps`` writes them: an IPv6 address in brackets, after the IPv4 ones.

    Example:
        >>> format_ports({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None})
        '127.0.0.1:8080->80/tcp, 443/tcp'
        >>> format_ports({"80/tcp": [{"HostIp": "::", "HostPort": "8080"}, {"HostIp": "0.0.0.0", "HostPort": "8080"}]})
        '0.0.0.0:8080->80/tcp, [::]:8080->80/tcp'
    """
    parts = []

    def number(item: tuple[str, Any]) -> tuple[int, str]:
        head = item[0].split("/")[0]
        return (int(head) if head.isdigit() else 0, item[0])

    for port, bindings in sorted((ports or {}).items(), key=number):
        if not bindings:
            parts.append(port)
            continue
        hosts = [(b.get("HostIp") or "0.0.0.0", b.get("HostPort")) for b in bindings]
        hosts.sort(key=lambda h: ":" in h[0])  # IPv4 first, as the CLI lists them
        parts.extend(f"{f'[{ip}]' if ':' in ip else ip}:{host_port}->{port}" for ip, host_port in hosts)
    return ", ".join(parts)


def row_from_inspect(attrs: Mapping[str, Any]) -> Row:
    """A row from ``docker inspect`` (the low-level API's dict)."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    return Row(
        id=attrs["Id"],
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=config.get("Image") or str(attrs.get("Image", ""))[:19],
        state=diagram_state(state.get("Status", "")),
        ports=format_ports((attrs.get("NetworkSettings") or {}).get("Ports")),
        started_at=fmt.parse_time(state.get("StartedAt")),
        finished_at=fmt.parse_time(state.get("FinishedAt")),
        exit_code=state.get("ExitCode"),
        labels=dict(config.get("Labels") or {}),
    )


def diagram_state(status: str) -> str:
    """Docker's seven statuses mapped onto the five states the diagram draws.

    Example:
        >>> [diagram_state(s) for s in ("restarting", "dead", "removing", "paused")]
        ['running', 'exited', 'removed', 'paused']
    """
    return {"restarting": "running", "dead": "exited", "removing": "removed"}.get(status, status)


def apply_event(rows: dict[str, Row], event: Mapping[str, Any]) -> str | None:
    """Update ``rows`` (id → row) from one container event, at once and without the daemon.

    Returns:
        The id whose row should be re-read from the daemon for the details an event
        does not carry (ports, start time), or ``None`` (the row is gone, or the event
        is not about a container's state).

    Example:
        >>> rows = {}
        >>> apply_event(rows, {"Type": "container", "Action": "create", "id": "c1",
        ...                    "Actor": {"Attributes": {"name": "web", "image": "nginx"}}})
        'c1'
        >>> rows["c1"].state, apply_event(rows, {"Type": "container", "Action": "destroy", "id": "c1"}), rows
        ('created', None, {})
    """
    if event.get("Type", "container") != "container":
        return None
    action = str(event.get("Action") or event.get("status") or "").split(":")[0]
    ident = str(event.get("id") or (event.get("Actor") or {}).get("ID") or "")
    if not ident:
        return None
    attributes: Mapping[str, str] = (event.get("Actor") or {}).get("Attributes") or {}
    if action == "destroy":
        rows.pop(ident, None)
        return None
    if action not in WATCHED:
        return None
    row = rows.get(ident) or Row(
        id=ident,
        name=attributes.get("name", ident[:12]),
        image=attributes.get("image", ""),
        state="created",
        labels={k: v for k, v in attributes.items() if k not in ("name", "image", "exitCode")},
    )
    new_state = _EVENT_STATE.get(action, row.state)
    changes: dict[str, Any] = {"state": new_state}
    if "name" in attributes:
        changes["name"] = attributes["name"]
    if action == "die" and "exitCode" in attributes:
        with contextlib.suppress(ValueError):
            changes["exit_code"] = int(attributes["exitCode"])
    rows[ident] = replace(row, **changes)
    return ident


def status_text(row: Row, now: datetime) -> str:
    """What ``docker ps`` puts in its STATUS column, shorter.

    Example:
        >>> t = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
        >>> status_text(Row("c", "web", "nginx", "running", started_at=t), t.replace(second=42))
        'up 42 s'
    """
    if row.state == "running" and row.started_at:
        return _("up {age}").format(age=fmt.duration((now - row.started_at).total_seconds(), "age"))
    if row.state == "exited":
        age = fmt.duration((now - row.finished_at).total_seconds(), "age") if row.finished_at else None
        if row.exit_code is None:
            return _("exited {age} ago").format(age=age) if age else _("exited")
        if age:
            return _("exited ({code}) {age} ago").format(code=row.exit_code, age=age)
        return _("exited ({code})").format(code=row.exit_code)
    return state_word(row.state)


def state_word(state: str) -> str:
    """A container state as the dashboard says it (``running`` → 运行中 in Chinese); unknown states as they are."""
    word = STATE_WORDS.get(state)
    return _(word) if word else state


def in_scope(row: Row, scope: str, lesson: str) -> bool:
    """Whether a row belongs in the table for ``scope`` (one of :data:`SCOPES`)."""
    return scope != "this lesson" or row.lesson == lesson


def ordered(rows: Iterable[Row]) -> list[Row]:
    """Running first, then paused, created, exited; by name within each."""
    rank = {"running": 0, "paused": 1, "created": 2, "exited": 3}
    return sorted(rows, key=lambda r: (rank.get(r.state, 4), r.name))


def needs_confirmation(row: Row, session: str) -> bool:
    """Removing asks twice unless labkit made the container in this session (it can make it again)."""
    return row.labels.get(engine.LABEL_SESSION) != session
