"""A recorded trace as people read it: a table (text and HTML) and a sequence diagram.

Each call is matched to one of the six steps of ``docker run hello-world``; the
``stable`` views leave out what changes from run to run, so notebooks can compare them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.core import fmt
from labkit.core.i18n import N_, _, ngettext
from labkit.features.trace.log import _HEX_ID, Call, load, normalize_path

#: The six steps of ``docker run hello-world`` (lesson 00), by number.
STEPS = {
    1: N_("you type the command"),
    2: N_("the client reaches the daemon's API"),
    3: N_("the image is not found locally"),
    4: N_("the daemon pulls the image"),
    5: N_("the daemon creates the container"),
    6: N_("the daemon starts it; output streams back"),
}

_STEP_RULES: tuple[tuple[str, str, Callable[[int | None], bool], int, str], ...] = (
    ("HEAD", "/_ping", lambda s: True, 2, N_("ping: is a daemon there, which API version?")),
    ("GET", "/_ping", lambda s: True, 2, N_("ping: is a daemon there, which API version?")),
    ("GET", "/version", lambda s: True, 2, N_("version details")),
    ("POST", "/containers/create", lambda s: s == 404, 3, N_("create fails: no such image")),
    ("POST", "/images/create", lambda s: True, 4, N_("pull the image (progress streams back)")),
    ("POST", "/containers/create", lambda s: s is not None and 200 <= s < 300, 5, N_("create the container")),
    ("POST", "/containers/{id}/attach", lambda s: True, 6, N_("attach to its output (hijacked stream)")),
    ("POST", "/containers/{id}/wait", lambda s: True, 6, N_("wait for it to exit")),
    ("POST", "/containers/{id}/start", lambda s: True, 6, N_("start it")),
)


def step_of(call: Call) -> tuple[int | None, str]:
    """Which of the six steps a call belongs to, and what it does; ``(None, "other")`` otherwise.

    Example:
        >>> step_of(Call(1, 1, 0.0, "POST", "/v1.41/images/create?fromImage=hello-world&tag=latest", status=200))
        (4, 'pull the image (progress streams back)')
    """
    if call.refused:  # it never reached the daemon: no step of a run
        return None, N_("refused by the proxy")
    route = call.route
    for method, pattern, status_ok, step, what in _STEP_RULES:
        if call.method == method and route == pattern and status_ok(call.status):
            return step, what
    return None, N_("other")


def _short(value: str) -> str:
    return _HEX_ID.sub(lambda m: m.group(0)[:12], value)


@dataclass(frozen=True)
class Row:
    """A call as the views show it."""

    step: int | None
    what: str
    method: str
    path: str
    status: str
    conn: int = 0
    t: float = 0.0


#: Within step 6 the CLI attaches, then asks to wait, then starts; wait and start leave on
#: two connections at nearly the same moment, so their arrival order can swap.
_RUN_ORDER = {"/containers/{id}/attach": 0, "/containers/{id}/wait": 1, "/containers/{id}/start": 2}


def stable_order(calls: Sequence[Call]) -> list[Call]:
    """Calls in arrival order, except that each unbroken run of attach/wait/start is put in that order.

    Example:
        >>> calls = [Call(1, 1, 0.1, "POST", "/containers/" + "a" * 64 + "/start"), Call(2, 1, 0.0, "POST", "/containers/" + "a" * 64 + "/wait")]
        >>> [c.route for c in stable_order(calls)]
        ['/containers/{id}/wait', '/containers/{id}/start']
    """
    ordered = sorted(calls, key=lambda c: (c.t, c.conn, c.seq))
    result: list[Call] = []
    run: list[Call] = []
    for call in [*ordered, None]:
        if call is not None and call.method == "POST" and call.route in _RUN_ORDER:
            run.append(call)
            continue
        result.extend(sorted(run, key=lambda c: _RUN_ORDER[c.route]))
        run = []
        if call is not None:
            result.append(call)
    return result


class Trace:
    """A recorded trace, shown as a table (text and HTML) and as a sequence diagram.

    In ``stable`` mode (the default) what changes from run to run is left out, so a
    notebook can compare it: ids become ``{id}``, the ``/v1.NN`` prefix is dropped
    (the version is named once, above the table), times and connection numbers are
    not shown, and a run of attach/wait/start is listed in the order the CLI issues
    them (two of them race on separate connections). ``stable=False`` shows the
    calls as they arrived, with times, connection numbers and real paths.
    """

    def __init__(self, calls: Sequence[Call], stable: bool = True) -> None:
        self.stable = stable
        self.calls = stable_order(calls) if stable else sorted(calls, key=lambda c: (c.t, c.conn, c.seq))

    @property
    def api_versions(self) -> list[str]:
        return sorted({c.api for c in self.calls if c.api})

    def rows(self) -> list[Row]:
        rows = []
        for call in self.calls:
            step, what = step_of(call)
            path = normalize_path(call.path) if self.stable else _short(call.path)
            status = "—" if call.status is None else f"{call.status} {call.reason}".strip()
            if call.hijacked:
                status += " ⇄ raw stream"
            if call.exit is not None:
                status += f" (exit {call.exit})"
            if call.message and step is None:
                what = f"{'refused' if call.refused else 'other'}: {call.message}"
            rows.append(Row(step, what, call.method, path, status, call.conn, call.t))
        return rows

    def __len__(self) -> int:
        return len(self.calls)

    def _columns(self, row: Row) -> list[str]:
        cells = [str(row.step) if row.step else "–", f"{row.method} {row.path}", row.status, _(row.what)]
        return cells if self.stable else [f"{row.t:.3f}", str(row.conn), *cells]

    def _header(self) -> list[str]:
        # One message per header row ("|" between cells): "status" alone is another area's word.
        cells = _("step|request|status|what it does").split("|")
        return cells if self.stable else [*_("t (s)|conn").split("|"), *cells]

    def _title(self) -> str:
        n = len(self.calls)
        if self.api_versions:
            title = ngettext("{n} API call (API version {versions})", "{n} API calls (API version {versions})", n)
        else:
            title = ngettext("{n} API call", "{n} API calls", n)
        return title.format(n=n, versions=", ".join(self.api_versions))

    def __str__(self) -> str:
        if not self.calls:
            return _("no API calls recorded yet")
        table = [self._header()] + [self._columns(r) for r in self.rows()]
        widths = [max(fmt.columns(line[i]) for line in table) for i in range(len(table[0]) - 1)]
        lines = [self._title()]
        for line in table:
            lines.append(
                "  ".join([*(fmt.ljust(cell, w) for cell, w in zip(line, widths, strict=False)), line[-1]]).rstrip()
            )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        if not self.calls:
            return f"<p><i>{html.escape(_('no API calls recorded yet'))}</i></p>"
        esc = html.escape
        cell = "padding:2px 8px;text-align:left"
        head = "".join(f"<th style='{cell}'>{esc(h)}</th>" for h in self._header())
        body = []
        for row in self.rows():
            cells = self._columns(row)
            request = len(cells) - 3
            tds = "".join(
                f"<td style='{cell}'>" + (f"<code>{esc(c)}</code>" if i == request else esc(c)) + "</td>"
                for i, c in enumerate(cells)
            )
            body.append(f"<tr>{tds}</tr>")
        return (
            f"<div class='labkit-trace'><b>{esc(self._title())}</b>"
            f"<table style='border-collapse:collapse;font-size:90%'><tr>{head}</tr>{''.join(body)}</table></div>"
        )

    def diagram(self) -> Diagram:
        """The same calls as a sequence diagram: client and daemon lifelines, one arrow pair per call."""
        return Diagram(self.rows())


@dataclass(frozen=True)
class Diagram:
    """A sequence diagram as inline SVG; its structure depends only on the rows."""

    rows: list[Row] = field(default_factory=list)

    ROW = 44
    LEFT = 100
    RIGHT = 640
    WIDTH = 700

    def __str__(self) -> str:
        lines = ["docker CLI  →  dockerd"]
        for row in self.rows:
            step = f"[{row.step}]" if row.step else "[–]"
            lines.append(f"{step} → {row.method} {row.path}")
            lines.append(f"    ← {row.status}   — {_(row.what)}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        esc = html.escape
        height = 56 + self.ROW * len(self.rows)
        parts = [
            (
                f'<svg class="labkit-sequence" xmlns="http://www.w3.org/2000/svg" width="{self.WIDTH}" height="{height}" '
                'font-family="monospace" font-size="12">'
            ),
            (
                '<defs><marker id="lk-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
                'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>'
            ),
        ]
        for x, name in ((self.LEFT, "docker CLI"), (self.RIGHT, "dockerd")):
            parts.append(f'<rect x="{x - 50}" y="6" width="100" height="24" rx="4" fill="#eef3fb" stroke="#4a6fa5"/>')
            parts.append(f'<text x="{x}" y="22" text-anchor="middle" font-weight="bold">{name}</text>')
            parts.append(f'<line x1="{x}" y1="30" x2="{x}" y2="{height - 4}" stroke="#aaa" stroke-dasharray="4 3"/>')
        for n, row in enumerate(self.rows):
            y = 56 + self.ROW * n
            color = "#1e6b34" if row.step else "#777"
            label = f"{row.method} {row.path}"
            if len(label) > 74:
                label = label[:73] + "…"
            parts.append(f'<text x="12" y="{y + 8}" fill="{color}" font-weight="bold">{row.step or "–"}</text>')
            parts.append(f'<text x="{self.LEFT + 6}" y="{y - 4}" fill="{color}">{esc(label)}</text>')
            parts.append(
                f'<line x1="{self.LEFT}" y1="{y}" x2="{self.RIGHT}" y2="{y}" stroke="{color}" marker-end="url(#lk-arrow)"/>'
            )
            parts.append(
                f'<text x="{self.LEFT + 6}" y="{y + 13}" fill="#666" font-style="italic">{esc(_(row.what))}</text>'
            )
            parts.append(
                f'<text x="{self.RIGHT - 6}" y="{y + 13}" text-anchor="end" fill="#444">{esc(row.status)}</text>'
            )
            parts.append(
                f'<line x1="{self.RIGHT}" y1="{y + 18}" x2="{self.LEFT}" y2="{y + 18}" stroke="#444" '
                'stroke-dasharray="5 3" marker-end="url(#lk-arrow)"/>'
            )
        parts.append("</svg>")
        return "".join(parts)


def show(path: str | Path | None = None, stable: bool = True) -> Trace:
    """The trace recorded so far (by default labkit's own log), ready to display.

    Args:
        path: a trace log; the proxy's by default.
        stable: hide ids, versions and times, so the view is the same from run to run.
    """
    return Trace(load(path), stable=stable)
