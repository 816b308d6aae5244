"""The layer explorer (lesson 02): an image's layers beside the instructions that made them.

In JupyterLab it is a widget (pick a step to see its details); in an HTML export, under
nbval or in a terminal it shows the same content as a table or as text. The reading
and the matching of history to layers live in :mod:`labkit.features.layers`.

Example:
    >>> from labkit.notebook.layer_explorer import explore
    >>> explore("busybox")  # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Any

from labkit.core import fmt
from labkit.core.errors import LabkitError
from labkit.core.i18n import N_, _, ngettext
from labkit.features.layers import ImageLayers, read, short

_STYLE = "border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:12px"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
_METADATA_ONLY = N_("metadata only")


class LayerExplorer:
    """One image's layers with the instructions that made them.

    In JupyterLab it shows as a widget: pick a step to see its details. Where
    widgets cannot render (an HTML export, nbval, a terminal) it shows as a table
    (``text/html``) or plain text, with the same content.
    """

    def __init__(self, layers: ImageLayers) -> None:
        self.image = layers

    # text and HTML: deterministic for one image, apart from ids and sizes
    def headline(self) -> str:
        img = self.image
        n, m = len(img.diff_ids), len(img.metadata_steps)
        steps = len(img.steps)
        return _("{ref}: {layers} and {metadata} ({entries}, oldest first)").format(
            ref=img.ref,
            layers=ngettext("{n} filesystem layer", "{n} filesystem layers", n).format(n=n),
            metadata=ngettext("{n} metadata-only step", "{n} metadata-only steps", m).format(n=m),
            entries=ngettext("{n} history entry", "{n} history entries", steps).format(n=steps),
        )

    def rows(self) -> list[tuple[str, str, str, str]]:
        """``(number, what, instruction, size)`` per step, oldest first."""
        rows = []
        layer_no = 0
        for n, step in enumerate(self.image.steps, start=1):
            if step.layer is not None:
                layer_no += 1
                what = _("layer {number} {id}").format(number=layer_no, id=short(step.layer))
            else:
                what = _(_METADATA_ONLY)
            rows.append((str(n), what, step.label, fmt.size(step.size)))
        return rows

    def __str__(self) -> str:
        lines = [self.headline()]
        width = max((len(r[1]) for r in self.rows()), default=0)
        lines += [f"{num:>3}  {what:<{width}}  {text}  [{size}]" for num, what, text, size in self.rows()]
        if not self.image.exact:
            lines.append(_("note: history and layers do not line up one to one (a squashed or unusual image)"))
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="{_CELL}">{h}</th>' for h in ("#", _("layer"), _("instruction"), _("size")))
        body = []
        for num, what, text, size in self.rows():
            meta = what == _(_METADATA_ONLY)
            style = ' style="color:#777"' if meta else ""
            body.append(
                f'<tr{style}><td style="{_CELL}">{num}</td><td style="{_CELL}">{html.escape(what)}</td>'
                f'<td style="{_CELL}"><code>{html.escape(text)}</code></td><td style="{_CELL}">{size}</td></tr>'
            )
        note = (
            "" if self.image.exact else "<div><i>" + _("History and layers do not line up one to one.") + "</i></div>"
        )
        return (
            f'<div class="labkit-layers"><b>{html.escape(self.headline())}</b>'
            f'<table style="{_STYLE}"><tr>{head}</tr>{"".join(body)}</table>{note}</div>'
        )

    # the widget
    def detail_html(self, index: int) -> str:
        """The details of step ``index`` (0 = oldest), as HTML."""
        step = self.image.steps[index]
        kind = (
            _("metadata only: no files changed, no layer")
            if step.layer is None
            else _("filesystem layer {id}").format(id=step.layer)
        )
        rows = [
            (_("instruction"), step.label),
            (_("created by"), step.created_by or _("(not recorded: imported)")),
            (_("makes"), kind),
            (_("size"), fmt.size(step.size)),
        ]
        if step.comment:
            rows.append((_("comment"), step.comment))
        cells = "".join(
            f'<tr><th style="{_CELL}">{k}</th><td style="{_CELL}"><code>{html.escape(v)}</code></td></tr>'
            for k, v in rows
        )
        return f'<table style="{_STYLE}">{cells}</table>'

    def widget(self) -> Any:
        """An ipywidgets view: the steps in a list, the chosen one's details below.

        Raises:
            LabkitError: ipywidgets is not installed.
        """
        try:
            import ipywidgets as w  # reason: ipywidgets takes ~0.3 s to import; only a kernel's view needs it
        except ImportError as e:
            raise LabkitError(
                _("ipywidgets is not installed"), _("pip install ipywidgets (labkit depends on it)")
            ) from e
        options = [(f"{num:>2}  {what}  {text}  [{size}]", i) for i, (num, what, text, size) in enumerate(self.rows())]
        pick = w.Select(
            options=options,
            value=len(options) - 1 if options else None,
            rows=min(max(len(options), 2), 12),
            layout=w.Layout(width="100%"),
        )
        detail = w.HTML(self.detail_html(len(options) - 1) if options else "")

        def show(change: dict[str, Any]) -> None:
            if change.get("new") is not None:
                detail.value = self.detail_html(int(change["new"]))

        pick.observe(show, names="value")
        return w.VBox([w.HTML(f"<b>{html.escape(self.headline())}</b>"), pick, detail])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": str(self), "text/html": self._repr_html_()}
        if fmt.in_kernel():
            try:
                view = self.widget()._repr_mimebundle_()
            except LabkitError:
                view = {}
            key = "application/vnd.jupyter.widget-view+json"
            if key in view:
                bundle[key] = view[key]
        return bundle


def explore(image: str) -> LayerExplorer:
    """The layer explorer for ``image``: each layer, its size and the instruction that made it.

    Example:
        >>> explore("busybox")  # doctest: +SKIP

    Raises:
        ImageMissing: the daemon has no such image.
        DaemonUnavailable: the daemon did not answer.
    """
    return LayerExplorer(read(image))


__all__ = ["LayerExplorer", "explore"]
