"""The live container dashboard: what ``docker ps -a`` shows, kept current by ``docker events``.

One background thread reads the daemon's container events and updates the table
within milliseconds (a second one re-reads the details an event does not carry), whoever changed the container: a notebook cell,
labkit, or ``docker run`` typed in a terminal. Pick a container to light its
state in the lifecycle diagram and to start, stop or remove it.

Scope: by default every container on the daemon, because what a learner types in a
terminal carries no labkit label and the dashboard should match ``docker ps -a``;
"this lesson" narrows it to what carries the current lesson's label.

The thread ends when the widget is closed (``close()``), when a newer dashboard
replaces it, and when the kernel exits (``atexit``); it is a daemon thread, so it
can never keep a kernel alive either.

Example:
    >>> board = labkit.dashboard()  # doctest: +SKIP
    >>> board  # a table that updates by itself  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import html
import itertools
import queue
import sys
import threading
import time
import types
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import ipywidgets as w
import requests.exceptions

from labkit.core import engine
from labkit.core import fmt
from labkit.core.errors import LabkitError

#: The lifecycle the diagram draws, in order.
STATES = ("created", "running", "paused", "exited", "removed")
#: Where each state is drawn (x, y of the box's centre) and the arrows between them.
_POS = {"created": (70, 40), "running": (230, 40), "paused": (390, 40), "exited": (230, 130), "removed": (70, 130)}
_EDGES = (
    ("created", "running", "start"),
    ("running", "paused", "pause"),
    ("paused", "running", "unpause"),
    ("running", "exited", "stop / exits"),
    ("exited", "running", "start"),
    ("exited", "removed", "rm"),
    ("created", "removed", "rm"),
)
#: Container events that change what a row shows; the rest (exec, attach, resize…) are filtered out by the daemon.
WATCHED = ("create", "start", "restart", "pause", "unpause", "die", "stop", "kill", "oom", "destroy", "rename", "update")
#: Seconds between uptime refreshes of the table (no daemon call: only the "up 12 s" text changes).
UPTIME_TICK = 5.0
#: Lessons whose containers are labkit's own infrastructure: listed, never acted on here.
PROTECTED_LESSONS = ("registry",)
SCOPES = ("all containers", "this lesson")

_EVENT_STATE = {
    "create": "created",
    "start": "running",
    "restart": "running",
    "unpause": "running",
    "pause": "paused",
    "die": "exited",
    "stop": "exited",
}
_COLORS = {"created": "#0366d6", "running": "#1e7e34", "paused": "#9a6700", "exited": "#6a737d", "removed": "#c0392b"}


# ---------------------------------------------------------------- pure logic


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
    """Published ports as ``docker ps`` writes them.

    Example:
        >>> format_ports({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None})
        '127.0.0.1:8080->80/tcp, 443/tcp'
    """
    parts = []
    def number(item: tuple[str, Any]) -> tuple[int, str]:
        head = item[0].split("/")[0]
        return (int(head) if head.isdigit() else 0, item[0])

    for port, bindings in sorted((ports or {}).items(), key=number):
        if not bindings:
            parts.append(port)
            continue
        parts.extend(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{port}" for b in bindings)
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
    ident = event.get("id") or (event.get("Actor") or {}).get("ID")
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
        return f"up {fmt.duration((now - row.started_at).total_seconds(), 'age')}"
    if row.state == "exited":
        code = "" if row.exit_code is None else f" ({row.exit_code})"
        when = f" {fmt.duration((now - row.finished_at).total_seconds(), 'age')} ago" if row.finished_at else ""
        return f"exited{code}{when}"
    return row.state


def in_scope(row: Row, scope: str, lesson: str) -> bool:
    """Whether a row belongs in the table for ``scope`` (one of :data:`SCOPES`)."""
    return scope != "this lesson" or row.lesson == lesson


def ordered(rows: Iterable[Row]) -> list[Row]:
    """Running first, then paused, created, exited; by name within each."""
    rank = {"running": 0, "paused": 1, "created": 2, "exited": 3}
    return sorted(rows, key=lambda r: (rank.get(r.state, 4), r.name))


_TABLE = "border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def table_html(rows: list[Row], now: datetime, selected: str | None = None) -> str:
    """The table: name, image, state, ports, status; the selected row in bold."""
    head = "".join(f'<th scope="col" style="{_CELL}">{h}</th>' for h in ("name", "image", "state", "ports", "status"))
    body = []
    for row in rows:
        weight = "font-weight:bold;" if row.id == selected else ""
        color = _COLORS.get(row.state, "#333")
        cells = (
            html.escape(row.name),
            html.escape(row.image),
            f'<span style="color:{color}">● {html.escape(row.state)}</span>',
            html.escape(row.ports),
            html.escape(status_text(row, now)),
        )
        body.append(
            f'<tr data-id="{row.id[:12]}" data-state="{row.state}" style="{weight}">'
            + "".join(f'<td style="{_CELL}">{c}</td>' for c in cells)
            + "</tr>"
        )
    if not body:
        body.append(f'<tr><td colspan="5" style="{_CELL}"><i>no containers</i></td></tr>')
    return f'<table class="labkit-dashboard" style="{_TABLE}"><tr>{head}</tr>{"".join(body)}</table>'


def table_text(rows: list[Row], now: datetime) -> str:
    """The same table as plain text."""
    if not rows:
        return "no containers"
    lines = [(r.name, r.image, r.state, r.ports, status_text(r, now)) for r in rows]
    widths = [max(len(x[i]) for x in [("NAME", "IMAGE", "STATE", "PORTS", "STATUS"), *lines]) for i in range(5)]
    return "\n".join(
        "  ".join(col.ljust(widths[i]) for i, col in enumerate(line)).rstrip()
        for line in [("NAME", "IMAGE", "STATE", "PORTS", "STATUS"), *lines]
    )


def state_diagram_svg(current: str | None, name: str | None = None) -> str:
    """The lifecycle as an SVG, with ``current`` (a state in :data:`STATES`) lit.

    Example:
        >>> svg = state_diagram_svg("running", "web")
        >>> 'data-state="running" data-current="true"' in svg, svg.count('data-current="true"')
        (True, 1)
    """
    current = diagram_state(current) if current else None
    label = f"{name}: {current}" if name and current else "pick a container to see its state"
    parts = [
        (
            f'<svg class="labkit-lifecycle" role="img" aria-label="Container lifecycle. {html.escape(label)}" '
            'width="460" height="170" viewBox="0 0 460 170" xmlns="http://www.w3.org/2000/svg" '
            'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:12px">'
        ),
        f"<title>{html.escape(label)}</title>",
        (
            '<defs><marker id="labkit-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>'
        ),
    ]
    pairs = {(a, b) for a, b, _ in _EDGES}
    for a, b, verb in _EDGES:
        (x1, y1), (x2, y2) = _POS[a], _POS[b]
        # a two-way pair is drawn as two parallel arrows: each shifts to its own left
        dx, dy = (x2 - x1), (y2 - y1)
        length = max((dx * dx + dy * dy) ** 0.5, 1)
        px, py = -dy / length, dx / length  # unit normal, to the arrow's left on screen
        shift = 7 if (b, a) in pairs else 0
        if not shift and (py > 0 or (py == 0 and px > 0)):
            px, py = -px, -py  # a lone arrow keeps its label above it (or to its left)
        sx, sy = x1 + dx / length * 52 + px * shift, y1 + dy / length * 20 + py * shift
        ex, ey = x2 - dx / length * 52 + px * shift, y2 - dy / length * 20 + py * shift
        lx, ly = (sx + ex) / 2 + px * 9, (sy + ey) / 2 + py * 9
        anchor = "end" if px < -0.3 else "start" if px > 0.3 else "middle"
        ly += 4 if anchor != "middle" else (10 if py > 0 else -1)
        parts.append(
            f'<line x1="{sx:.0f}" y1="{sy:.0f}" x2="{ex:.0f}" y2="{ey:.0f}" stroke="#888" marker-end="url(#labkit-arrow)"/>'
            f'<text x="{lx:.0f}" y="{ly:.0f}" text-anchor="{anchor}" fill="#555" font-size="10">{verb}</text>'
        )
    for state in STATES:
        x, y = _POS[state]
        lit = state == current
        fill = _COLORS[state] if lit else "#fff"
        text = "#fff" if lit else "#333"
        parts.append(
            f'<g data-state="{state}" data-current="{"true" if lit else "false"}">'
            f'<rect x="{x - 50}" y="{y - 18}" width="100" height="36" rx="8" fill="{fill}" '
            f'stroke="{_COLORS[state]}" stroke-width="{3 if lit else 1.5}"/>'
            f'<text x="{x}" y="{y + 4}" text-anchor="middle" fill="{text}" font-weight="{"bold" if lit else "normal"}">{state}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def needs_confirmation(row: Row, session: str) -> bool:
    """Removing asks twice unless labkit made the container in this session (it can make it again)."""
    return row.labels.get(engine.LABEL_SESSION) != session


# ---------------------------------------------------------------- the widget

#: What a lost or restarting daemon raises while the dashboard reads it.
_LOST = (LabkitError, docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError)
_counter = itertools.count(1)
_open: weakref.WeakSet[Dashboard] = weakref.WeakSet()


class Dashboard(w.VBox):  # type: ignore[misc]
    """The live table, the lifecycle diagram and the buttons. ``rows`` is a snapshot (id → :class:`Row`)."""

    def __init__(self, scope: str = "all containers") -> None:
        self.client = engine.client()
        self._lock = threading.RLock()
        self._rows: dict[str, Row] = {}
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the event stream is open (tests wait on it)
        self._stream: Any = None
        self._pending_remove: str | None = None
        self._details: queue.Queue[str | None] = queue.Queue()
        self._number = next(_counter)
        self._rendering = False
        self._last_pick: Row | None = None
        self._gone: str | None = None
        #: Seconds from the daemon's event to the table showing it, for the last events.
        self.lags: collections.deque[float] = collections.deque(maxlen=100)

        self.scope = w.ToggleButtons(options=SCOPES, value=scope, tooltip="Which containers to list")
        self.table = w.HTML()
        self.pick = w.Dropdown(options=[("(none)", None)], value=None, description="Container:")
        self.start_button = w.Button(description="Start", icon="play", tooltip="docker start")
        self.stop_button = w.Button(description="Stop", icon="stop", tooltip="docker stop")
        self.remove_button = w.Button(description="Remove", icon="trash", button_style="danger", tooltip="docker rm")
        self.cancel_button = w.Button(description="Cancel", layout=w.Layout(display="none"))
        self.message = w.HTML()
        self.diagram = w.HTML(state_diagram_svg(None))
        self.start_button.on_click(lambda _: self.act("start"))
        self.stop_button.on_click(lambda _: self.act("stop"))
        self.remove_button.on_click(lambda _: self.act("remove"))
        self.cancel_button.on_click(lambda _: self._cancel_remove())
        self.pick.observe(lambda _: self._render(), names="value")
        self.scope.observe(lambda _: self._render(), names="value")
        super().__init__(
            [
                w.HTML("<b>Containers on your Docker daemon</b> <i>(live: updates by itself)</i>"),
                self.scope,
                self.table,
                w.HBox([self.pick, self.start_button, self.stop_button, self.remove_button, self.cancel_button]),
                self.message,
                self.diagram,
            ]
        )
        self.add_class("labkit-dashboard")
        self.resync()
        self._threads = [
            threading.Thread(target=self._follow, name=f"labkit-dashboard-events-{self._number}", daemon=True),
            threading.Thread(target=self._fill_details, name=f"labkit-dashboard-details-{self._number}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        _open.add(self)

    # ---- state
    @property
    def rows(self) -> dict[str, Row]:
        with self._lock:
            return dict(self._rows)

    def visible(self) -> list[Row]:
        """The rows the table shows now, in order."""
        lesson = engine.current_lesson()
        return ordered(r for r in self.rows.values() if in_scope(r, self.scope.value, lesson))

    def selected(self) -> Row | None:
        return self.rows.get(self.pick.value) if self.pick.value else None

    def select(self, name_or_id: str) -> Row:
        """Choose a container by name or id, as the dropdown would.

        Raises:
            LabkitError: no listed container has that name or id.
        """
        for row in self.rows.values():
            if name_or_id in (row.name, row.id) or row.id.startswith(name_or_id):
                if row.id not in [v for _, v in self.pick.options]:
                    self.scope.value = SCOPES[0]
                self.pick.value = row.id
                return row
        raise LabkitError(f"no container {name_or_id!r} in the dashboard", "check the name with `docker ps -a`")

    @property
    def running(self) -> bool:
        """Whether the event thread is still following the daemon."""
        return any(t.is_alive() for t in self._threads)

    # ---- reading the daemon
    def resync(self) -> None:
        """Read every container afresh (at start, and after the event stream was lost)."""
        rows: dict[str, Row] = {}
        with engine.converted():
            for summary in self.client.api.containers(all=True):
                attrs = self._inspect(summary["Id"])
                if attrs is not None:
                    rows[attrs["Id"]] = row_from_inspect(attrs)
        with self._lock:
            self._rows = rows
        self._render()

    def _inspect(self, ident: str) -> dict[str, Any] | None:
        try:
            return self.client.api.inspect_container(ident)
        except docker.errors.NotFound:
            return None  # gone between the event and the read: the destroy event follows

    def _events_client(self) -> docker.DockerClient:
        # Its own connection with no read timeout: the shared client's 300 s timeout would end
        # an idle stream, and closing this stream must not touch the shared connection pool.
        return docker.from_env(version=self.client.api.api_version, timeout=None)

    def _follow(self) -> None:
        """The event thread: apply events as they come; on a lost stream, resync and reopen."""
        backoff = 0.5
        events_client = None
        stream: Any = None
        try:
            while not self._stop.is_set():
                try:
                    if stream is not None:  # the last one ended by itself (daemon restart): free it first
                        with contextlib.suppress(Exception):
                            stream.close()
                    events_client = events_client or self._events_client()
                    stream = events_client.api.events(
                        decode=True, filters={"type": "container", "event": [*WATCHED, "destroy"]}
                    )
                    self._stream = stream  # close() may clear self._stream at any moment: iterate the local
                    if self._stop.is_set():  # close() ran while the stream was opening
                        break
                    self.resync()  # after opening: nothing can fall between the list and the stream
                    self.ready.set()
                    backoff = 0.5
                    for event in stream:
                        if self._stop.is_set():
                            break
                        self._on_event(event)
                except _LOST as e:  # the daemon went away or restarted: say so, retry, never die
                    if self._stop.is_set():
                        break
                    self._say(f"lost contact with the daemon ({type(e).__name__}); reconnecting…")
                    events_client = None
                # a stream that ended by itself (daemon restart) is reopened after a short pause
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 5.0)
        finally:
            self._close_stream()
            if stream is not None:
                with contextlib.suppress(Exception):  # already closed by close(): nothing left to free
                    stream.close()
            if events_client is not None:
                with contextlib.suppress(Exception):
                    events_client.close()

    def _on_event(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            refresh = apply_event(self._rows, event)
        self._render()  # the state from the event shows at once; the details thread adds the rest
        if event.get("timeNano"):
            self.lags.append(time.time() - int(event["timeNano"]) / 1e9)
        if refresh is not None:
            self._details.put(refresh)

    def _fill_details(self) -> None:
        """The details thread: re-read containers the events named (ports, start time), and tick uptimes.

        Reading happens here, not in the event thread, because inspecting a container that
        is being started waits for the start to finish, and the events behind it would wait too.
        """
        while not self._stop.is_set():
            try:
                wanted = {self._details.get(timeout=UPTIME_TICK)}
            except queue.Empty:
                if any(r.state == "running" for r in self.rows.values()):
                    self._render()  # only "up 12 s" changed
                continue
            while not self._details.empty():  # a burst of events for one container: read it once
                wanted.add(self._details.get_nowait())
            wanted.discard(None)  # the wake-up close() sends
            for ident in wanted:
                if self._stop.is_set():
                    return
                try:
                    attrs = self._inspect(ident)
                except _LOST:  # the daemon is going away: the event thread reports it and resyncs
                    attrs = None
                with self._lock:
                    if attrs is not None and ident in self._rows:
                        self._rows[ident] = row_from_inspect(attrs)
            if wanted:
                self._render()

    # ---- drawing
    def _render(self) -> None:
        with self._lock:
            if self._rendering:  # changing the dropdown's options calls back here: once is enough
                return
            self._rendering = True
            try:
                self._draw()
            finally:
                self._rendering = False

    def _draw(self) -> None:
        """Put the rows, the dropdown, the diagram and the buttons in step (called with the lock held)."""
        rows = self.visible()
        options = [(f"{r.name} ({r.state})", r.id) for r in rows]
        picked = self.pick.value
        if picked is not None and picked not in self._rows and self._last_pick is not None and self._last_pick.id == picked:
            self._gone = self._last_pick.name  # the chosen container was removed: light "removed" for it
        elif picked is not None:
            self._gone = None
        chosen = picked if picked in {r.id for r in rows} else None
        self.table.value = table_html(rows, datetime.now(UTC), chosen)
        if [("(none)", None), *options] != list(self.pick.options):
            self.pick.options = [("(none)", None), *options]
            self.pick.value = chosen
        row = self._rows.get(chosen) if chosen else None
        if row is not None:
            self._last_pick = row
            self.diagram.value = state_diagram_svg(row.state, row.name)
        else:
            self.diagram.value = state_diagram_svg("removed" if self._gone else None, self._gone)
        can = row is not None and not row.protected
        self.start_button.disabled = not (can and row is not None and row.state in ("created", "exited"))
        self.stop_button.disabled = not (can and row is not None and row.state in ("running", "paused"))
        self.remove_button.disabled = not can
        if self._pending_remove is not None and self._pending_remove != chosen:
            self._cancel_remove()

    def _say(self, text: str, bad: bool = False) -> None:
        color = "#c0392b" if bad else "#333"
        self.message.value = f'<div role="status" aria-live="polite" style="color:{color}">{html.escape(text)}</div>'

    # ---- acting
    def act(self, action: str) -> str:
        """Start, stop or remove the selected container, as its button does; return what happened.

        Removing a container labkit did not make in this session (one typed in a terminal,
        say) asks for a second press; a running one must be stopped first, as ``docker rm``
        says. labkit's own infrastructure is never touched.
        """
        row = self.selected()
        if row is None:
            return self._report("pick a container first", bad=True)
        if row.protected:
            return self._report(f"{row.name} is labkit's own ({row.lesson}); manage it with `labkit {row.lesson}`", bad=True)
        container = self.client.containers.get  # the SDK object gives the CLI's behaviour (stop waits, then kills)
        try:
            with engine.converted():
                if action == "start":
                    container(row.id).start()
                    return self._report(f"started {row.name} (docker start {row.name})")
                if action == "stop":
                    self._say(f"stopping {row.name}: SIGTERM first, SIGKILL if it has not exited after its grace period (10 s by default)…")
                    container(row.id).stop()
                    return self._report(f"stopped {row.name} (docker stop {row.name})")
                if action == "remove":
                    if row.state in ("running", "paused"):
                        return self._report(
                            f"{row.name} is {row.state}: stop it first (docker rm refuses; docker rm -f stops and removes)", bad=True
                        )
                    if needs_confirmation(row, engine.session_id()) and self._pending_remove != row.id:
                        self._pending_remove = row.id
                        self.remove_button.description = f"Really remove {row.name}?"
                        self.cancel_button.layout.display = None
                        return self._report(f"{row.name} was not made by this lesson: press again to remove it, or Cancel")
                    self._cancel_remove()
                    container(row.id).remove(v=True)
                    return self._report(f"removed {row.name} (docker rm {row.name})")
        except docker.errors.NotFound:
            return self._report(f"{row.name} is already gone", bad=True)
        except LabkitError as e:
            return self._report(str(e), bad=True)
        raise ValueError(f"unknown action {action!r}")  # a bug in the caller, not a learner's mistake

    def _report(self, text: str, bad: bool = False) -> str:
        self._say(text, bad)
        return text

    def _cancel_remove(self) -> None:
        self._pending_remove = None
        self.remove_button.description = "Remove"
        self.cancel_button.layout.display = "none"

    # ---- ending
    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # already closed, or a transport that cannot cancel
                stream.close()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the threads (the widget stays on screen, frozen); return whether they ended in time."""
        self._stop.set()
        self._close_stream()  # unblocks the event thread's read at once
        self._details.put(None)  # and the details thread's wait
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        _open.discard(self)
        return not self.running

    def close(self) -> None:
        """Stop the threads, then close the widget (its views disappear)."""
        self.stop()
        super().close()

    def __str__(self) -> str:
        return table_text(self.visible(), datetime.now(UTC))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # Without a widget front end (an HTML export, nbval) the table and diagram show as a snapshot.
        bundle: dict[str, Any] = {"text/plain": str(self), "text/html": self.table.value + self.diagram.value}
        view = super()._repr_mimebundle_(**kwargs) or {}
        if "application/vnd.jupyter.widget-view+json" in view:
            bundle["application/vnd.jupyter.widget-view+json"] = view["application/vnd.jupyter.widget-view+json"]
        return bundle


def dashboard(scope: str = "all containers", *, replace_open: bool = True) -> Dashboard:
    """The live container dashboard.

    Args:
        scope: ``"all containers"`` (what ``docker ps -a`` shows, terminal-made ones included)
            or ``"this lesson"`` (what carries the current lesson's label).
        replace_open: close dashboards opened earlier in this kernel first, so re-running
            the cell never piles up event threads.

    Raises:
        DaemonUnavailable: the daemon did not answer.
    """
    if replace_open:
        close_all()
    return Dashboard(scope)


def close_all() -> None:
    """Stop every open dashboard (called at kernel exit)."""
    for board in list(_open):
        with contextlib.suppress(Exception):
            board.close()


atexit.register(close_all)


class _CallableModule(types.ModuleType):
    """This module, callable: ``labkit.dashboard()`` opens a dashboard.

    Importing ``labkit.dashboard`` (which the lazy ``labkit.dashboard()`` does) binds
    the package's name ``dashboard`` to this module, so a plain function of that name
    would work once and then be replaced by the module: re-running the cell would fail
    with "'module' object is not callable".
    """

    def __call__(self, scope: str = "all containers", *, replace_open: bool = True) -> Dashboard:
        return dashboard(scope, replace_open=replace_open)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "STATES",
    "Dashboard",
    "Row",
    "apply_event",
    "close_all",
    "dashboard",
    "diagram_state",
    "format_ports",
    "needs_confirmation",
    "row_from_inspect",
    "state_diagram_svg",
    "status_text",
    "table_html",
]
