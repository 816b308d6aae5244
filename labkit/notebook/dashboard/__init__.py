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

The package, by purpose: :mod:`.model` (rows and events, pure), :mod:`.render` (the
table and the SVG diagram), :mod:`.follower` (the two threads) and :mod:`.widget` (the
ipywidgets panel). Only the widget imports ipywidgets.

Example:
    >>> board = labkit.dashboard()  # doctest: +SKIP
    >>> board  # a table that updates by itself  # doctest: +SKIP
    >>> labkit.dashboard.close_all()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.notebook.dashboard.model import (
    SCOPES,
    STATES,
    Row,
    apply_event,
    diagram_state,
    format_ports,
    in_scope,
    needs_confirmation,
    ordered,
    row_from_inspect,
    status_text,
)
from labkit.notebook.dashboard.render import state_diagram_svg, table_html, table_text

if TYPE_CHECKING:
    from labkit.notebook.dashboard.widget import Dashboard


class Opener:
    """``labkit.dashboard``: call it to open the live dashboard; ``close_all()`` stops every open one.

    One object for both, so a notebook's ``labkit.dashboard()`` and
    ``labkit.dashboard.close_all()`` keep working however often their cells re-run.
    """

    def __call__(self, scope: str = "all containers", *, replace_open: bool = True) -> Dashboard:
        """Open the live container dashboard (see :func:`labkit.notebook.dashboard.widget.dashboard`).

        Raises:
            DaemonUnavailable: the daemon did not answer.
        """
        from labkit.notebook.dashboard import widget  # reason: ipywidgets takes ~0.3 s to import

        return widget.dashboard(scope, replace_open=replace_open)

    def close_all(self) -> None:
        """Stop every dashboard this kernel opened (their panels go)."""
        from labkit.notebook.dashboard import widget  # reason: ipywidgets takes ~0.3 s to import

        widget.close_all()

    def __repr__(self) -> str:
        return "<labkit.dashboard: call it to open the live container dashboard>"


#: What ``labkit.dashboard`` is.
dashboard = Opener()

__all__ = [
    "SCOPES",
    "STATES",
    "Opener",
    "Row",
    "apply_event",
    "dashboard",
    "diagram_state",
    "format_ports",
    "in_scope",
    "needs_confirmation",
    "ordered",
    "row_from_inspect",
    "state_diagram_svg",
    "status_text",
    "table_html",
    "table_text",
]
