"""The dashboard widget: the live table, the lifecycle diagram and the Start, Stop and Remove buttons.

It draws what its :class:`~labkit.notebook.dashboard.follower.Follower` reads from the
daemon, and acts on the container the learner picks.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import threading
import weakref
from datetime import UTC, datetime
from typing import Any

import docker.errors
import ipywidgets as w

from labkit.core import engine
from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _
from labkit.notebook.dashboard.follower import Follower
from labkit.notebook.dashboard.model import SCOPES, Row, in_scope, needs_confirmation, ordered, state_word
from labkit.notebook.dashboard.render import state_diagram_svg, table_html, table_text

_open: weakref.WeakSet[Dashboard] = weakref.WeakSet()
_REMOVE = N_("Remove")


class Dashboard(w.VBox):  # type: ignore[misc]
    """The live table, the lifecycle diagram and the buttons. ``rows`` is a snapshot (id → :class:`Row`)."""

    def __init__(self, scope: str = "all containers") -> None:
        self.client = engine.client()
        self.follower = Follower(self.client, self._render, self._say)
        self._lock = self.follower.lock
        self.ready = self.follower.ready  # set once the event stream is open (tests wait on it)
        #: Seconds from the daemon's event to the table showing it, for the last events.
        self.lags = self.follower.lags
        self._pending_remove: str | None = None
        self._rendering = False
        self._last_pick: Row | None = None
        self._gone: str | None = None
        #: Containers a Stop press is stopping now (each in its own thread: the kernel stays free).
        self.stopping: set[str] = set()
        self._stops: list[threading.Thread] = []

        self.scope = w.ToggleButtons(
            options=[(_(s), s) for s in SCOPES], value=scope, tooltip=_("Which containers to list")
        )
        self.table = w.HTML()
        self.pick = w.Dropdown(options=[(_("(none)"), None)], value=None, description=_("Container:"))
        self.start_button = w.Button(description=_("Start"), icon="play", tooltip="docker start")
        self.stop_button = w.Button(description=_("Stop"), icon="stop", tooltip="docker stop")
        # wide enough for "Really remove NAME?" (a Button's default width cuts it off)
        self.remove_button = w.Button(
            description=_(_REMOVE),
            icon="trash",
            button_style="danger",
            tooltip="docker rm",
            layout=w.Layout(width="auto", min_width="90px"),
        )
        self.cancel_button = w.Button(description=_("Cancel"), layout=w.Layout(display="none"))
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
                w.HTML(
                    f"<b>{html.escape(_('Containers on your Docker daemon'))}</b> "
                    f"<i>{html.escape(_('(live: updates by itself)'))}</i>"
                ),
                self.scope,
                self.table,
                w.HBox([self.pick, self.start_button, self.stop_button, self.remove_button, self.cancel_button]),
                self.message,
                self.diagram,
            ]
        )
        self.add_class("labkit-dashboard")
        self.follower.start()
        _open.add(self)

    # ---- state
    @property
    def rows(self) -> dict[str, Row]:
        return self.follower.rows

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
        raise LabkitError(
            _("no container {name!r} in the dashboard").format(name=name_or_id), _("check the name with `docker ps -a`")
        )

    @property
    def running(self) -> bool:
        """Whether the event thread is still following the daemon."""
        return self.follower.running

    def resync(self) -> None:
        """Read every container afresh."""
        self.follower.resync()

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
        options = [(f"{r.name} ({state_word(r.state)})", r.id) for r in rows]
        picked = self.pick.value
        if (
            picked is not None
            and picked not in self.follower.live
            and self._last_pick is not None
            and self._last_pick.id == picked
        ):
            self._gone = self._last_pick.name  # the chosen container was removed: light "removed" for it
        elif picked is not None:
            self._gone = None
        chosen = picked if picked in {r.id for r in rows} else None
        self.stopping &= set(self.follower.live)
        self.table.value = table_html(rows, datetime.now(UTC), chosen, self.stopping)
        if [("(none)", None), *options] != list(self.pick.options):
            self.pick.options = [("(none)", None), *options]
            self.pick.value = chosen
        row = self.follower.live.get(chosen) if chosen else None
        if row is not None:
            self._last_pick = row
            self.diagram.value = state_diagram_svg(row.state, row.name)
        else:
            self.diagram.value = state_diagram_svg("removed" if self._gone else None, self._gone)
        can = row is not None and not row.protected
        self.start_button.disabled = not (can and row is not None and row.state in ("created", "exited"))
        self.stop_button.disabled = not (
            can and row is not None and row.state in ("running", "paused") and row.id not in self.stopping
        )
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
            return self._report(_("pick a container first"), bad=True)
        if row.protected:
            return self._report(
                _("{name} is labkit's own ({lesson}); manage it with `labkit {lesson}`").format(
                    name=row.name, lesson=row.lesson
                ),
                bad=True,
            )
        container = self.client.containers.get  # the SDK object gives the CLI's behaviour (stop waits, then kills)
        try:
            with engine.converted():
                if action == "start":
                    container(row.id).start()
                    return self._report(_("started {name} (docker start {name})").format(name=row.name))
                if action == "stop":
                    return self._stop_in_background(row)
                if action == "remove":
                    if row.state in ("running", "paused"):
                        return self._report(
                            _(
                                "{name} is {state}: stop it first (docker rm refuses; docker rm -f stops and removes)"
                            ).format(name=row.name, state=state_word(row.state)),
                            bad=True,
                        )
                    if needs_confirmation(row, engine.session_id()) and self._pending_remove != row.id:
                        self._pending_remove = row.id
                        self.remove_button.description = _("Really remove {name}?").format(name=row.name)
                        self.cancel_button.layout.display = None
                        return self._report(
                            _("{name} was not made by this lesson: press again to remove it, or Cancel").format(
                                name=row.name
                            )
                        )
                    self._cancel_remove()
                    container(row.id).remove(v=True)
                    return self._report(_("removed {name} (docker rm {name})").format(name=row.name))
        except docker.errors.NotFound:
            return self._report(_("{name} is already gone").format(name=row.name), bad=True)
        except LabkitError as e:
            return self._report(str(e), bad=True)
        raise ValueError(f"unknown action {action!r}")  # a bug in the caller, not a learner's mistake

    def _stop_in_background(self, row: Row) -> str:
        """``docker stop`` in a thread: it can take the whole grace period, and the kernel must stay free.

        The row says "stopping…" until the container has exited; the message then says it stopped.
        """
        if row.id in self.stopping:
            return self._report(_("{name} is already stopping").format(name=row.name))
        self.stopping.add(row.id)
        thread = threading.Thread(
            target=self._stop_container, args=(row,), name=f"labkit-dashboard-stop-{row.name}", daemon=True
        )
        self._stops = [t for t in self._stops if t.is_alive()] + [thread]
        thread.start()
        self._render()
        return self._report(
            _(
                "stopping {name}: SIGTERM first, SIGKILL if it has not exited after its grace period (10 s by default)…"
            ).format(name=row.name)
        )

    def _stop_container(self, row: Row) -> None:
        try:
            with engine.converted():
                self.client.containers.get(row.id).stop()
            self._say(_("stopped {name} (docker stop {name})").format(name=row.name))
        except docker.errors.NotFound:
            self._say(_("{name} is already gone").format(name=row.name), bad=True)
        except LabkitError as e:
            self._say(str(e), bad=True)
        finally:
            self.stopping.discard(row.id)
            self._render()

    def wait_for_stops(self, timeout: float | None = None) -> bool:
        """Wait for the Stop presses under way to finish; return whether they all did."""
        for thread in list(self._stops):
            thread.join(timeout)
        return not any(t.is_alive() for t in self._stops)

    def _report(self, text: str, bad: bool = False) -> str:
        self._say(text, bad)
        return text

    def _cancel_remove(self) -> None:
        self._pending_remove = None
        self.remove_button.description = _(_REMOVE)
        self.cancel_button.layout.display = "none"

    # ---- ending
    def stop(self, timeout: float = 5.0) -> bool:
        """End the threads (the widget stays on screen, frozen); return whether they ended in time."""
        stopped = self.follower.stop(timeout)
        _open.discard(self)
        return stopped

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
