"""Drawing the dashboard: the table (HTML and plain text) and the lifecycle diagram (SVG)."""

from __future__ import annotations

import html
from collections.abc import Set
from datetime import datetime

from labkit.core.i18n import _
from labkit.notebook.dashboard.model import STATES, Row, diagram_state, state_word, status_text

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
_COLORS = {"created": "#0366d6", "running": "#1e7e34", "paused": "#9a6700", "exited": "#6a737d", "removed": "#c0392b"}

_TABLE = "border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def table_html(rows: list[Row], now: datetime, selected: str | None = None, stopping: Set[str] = frozenset()) -> str:
    """The table: name, image, state, ports, status; the selected row in bold.

    A row whose id is in ``stopping`` (a Stop the learner pressed, still under way) says so
    after its state: ``● running (stopping…)``.
    """
    head = "".join(
        f'<th scope="col" style="{_CELL}">{h}</th>'
        for h in (_("name"), _("image"), _("state"), _("ports"), _("status"))
    )
    body = []
    for row in rows:
        weight = "font-weight:bold;" if row.id == selected else ""
        color = _COLORS.get(row.state, "#333")
        cells = (
            html.escape(row.name),
            html.escape(row.image),
            f'<span style="color:{color}">● {html.escape(state_word(row.state))}</span>'
            + (" <i>" + html.escape(_("(stopping…)")) + "</i>" if row.id in stopping else ""),
            html.escape(row.ports),
            html.escape(status_text(row, now)),
        )
        body.append(
            f'<tr data-id="{row.id[:12]}" data-state="{row.state}" style="{weight}">'
            + "".join(f'<td style="{_CELL}">{c}</td>' for c in cells)
            + "</tr>"
        )
    if not body:
        body.append(f'<tr><td colspan="5" style="{_CELL}"><i>{html.escape(_("no containers"))}</i></td></tr>')
    return f'<table class="labkit-dashboard" style="{_TABLE}"><tr>{head}</tr>{"".join(body)}</table>'


def table_text(rows: list[Row], now: datetime) -> str:
    """The same table as plain text."""
    if not rows:
        return _("no containers")
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
    label = f"{name}: {state_word(current)}" if name and current else _("pick a container to see its state")
    parts = [
        (
            f'<svg class="labkit-lifecycle" role="img" aria-label="{html.escape(_("Container lifecycle. {label}").format(label=label))}" '
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
            f'<text x="{x}" y="{y + 4}" text-anchor="middle" fill="{text}" font-weight="{"bold" if lit else "normal"}">{html.escape(state_word(state))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
